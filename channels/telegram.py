"""Telegram input channel on python-telegram-bot 22 (webhook mode), at /webhooks/telegram/webhook.

Rasa 3.6's own Telegram channel (aiogram) checks no webhook secret and never answers callback queries;
this one:

- is configured from the environment (bot.settings: TELEGRAM_TOKEN, TELEGRAM_WEBHOOK_SECRET,
  TELEGRAM_API_BASE); unset, every request gets 503 and nothing is processed;
- refuses a request whose `X-Telegram-Bot-Api-Secret-Token` is not the webhook secret (403,
  constant-time compare) and bodies over 1 MB (413);
- answers 200 to malformed JSON and to updates it cannot use, so Telegram does not retry them forever;
- processes each `update_id` once;
- hands text, button presses (callback queries, always answered), photos and `/start` deep links to the
  conversation, and answers stickers, voice and other media with a short note;
- renders replies natively: text split at 4096 characters, buttons as an inline keyboard, images with
  sendPhoto; 429 answers are retried after the time Telegram asks for, and messages to one chat are
  paced (about one a second).

Per-process memory, by design for now (documented limits): the recent `update_id`s (dedup) and the
long button payloads (callback_data is limited to 64 bytes; a longer payload is sent as a short random
key and looked up when pressed) are kept in bounded in-memory maps. With several Rasa processes behind
one webhook, or after a restart, a replayed update may be processed again and a button sent before the
restart answers "that button has expired". A shared store (Redis) would lift both limits.

The `telegram.Bot` is created and initialised inside the server's own event loop (a
`before_server_start` listener, or lazily on the first request when the listener could not reach
Telegram) and shut down after the server stops.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
import warnings
from collections import OrderedDict
from datetime import timedelta
from typing import Any, Awaitable, Callable, Dict, Hashable, List, Optional, Text, Tuple, TypeVar

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.exceptions import PayloadTooLarge
from sanic.response import HTTPResponse
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.log import get_logger
from bot.settings import Settings, get_settings
from channels.render import split_text
from channels.rest import clean_text

log = get_logger(__name__)

CHANNEL_NAME = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 4096
MAX_CALLBACK_DATA_BYTES = 64
# A callback_data that starts with this is a key into the long-payload store, never a payload itself.
SHORT_KEY_PREFIX = "~k:"
RECENT_UPDATES = 10_000
STORED_PAYLOADS = 10_000
NOT_CONFIGURED = "telegram channel is not configured"
UNSUPPORTED_REPLY = "Sorry, I can only read text and photos here. Please type your question."
EXPIRED_BUTTON_REPLY = "That button has expired. Please ask me again and I'll show fresh options."
ERROR_REPLY = "Sorry, something went wrong on my side. Please try again in a moment."

T = TypeVar("T")


class BoundedLru:
    """Insertion-ordered map that forgets its oldest entries beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: "OrderedDict[Hashable, Any]" = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: Any = True) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._items.pop(key, None)

    def add_if_new(self, key: Hashable) -> bool:
        """Remember `key`; False if it was already remembered."""
        if key in self._items:
            self._items.move_to_end(key)
            return False
        self.put(key)
        return True


class PayloadStore:
    """Button payloads → callback_data of at most 64 bytes, and back."""

    def __init__(self, capacity: int = STORED_PAYLOADS) -> None:
        self._long = BoundedLru(capacity)

    def callback_data(self, payload: str) -> str:
        if len(payload.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES and not payload.startswith(SHORT_KEY_PREFIX):
            return payload
        key = SHORT_KEY_PREFIX + secrets.token_urlsafe(12)
        self._long.put(key, payload)
        return key

    def payload(self, callback_data: str) -> Optional[str]:
        """The payload a button carried; None for a short key this process no longer knows."""
        if callback_data.startswith(SHORT_KEY_PREFIX):
            return self._long.get(callback_data)
        return callback_data


class ChatPacer:
    """At most one message per `interval` seconds to each chat (Telegram's per-chat limit is ~1/s)."""

    def __init__(self, interval: float = 1.0, capacity: int = 10_000) -> None:
        self.interval = interval
        self.capacity = capacity
        self._chats: Dict[str, Tuple[asyncio.Lock, List[float]]] = {}

    async def run(self, chat_id: str, send: Callable[[], Awaitable[T]]) -> T:
        lock, last = self._slot(chat_id)
        async with lock:
            wait = last[0] + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await send()
            finally:
                last[0] = time.monotonic()

    def _slot(self, chat_id: str) -> Tuple[asyncio.Lock, List[float]]:
        slot = self._chats.get(chat_id)
        if slot is None:
            if len(self._chats) >= self.capacity:
                idle = time.monotonic() - max(self.interval, 1.0)
                for key, (lock, last) in list(self._chats.items()):
                    if not lock.locked() and last[0] < idle:
                        del self._chats[key]
            slot = self._chats[chat_id] = (asyncio.Lock(), [0.0])
        return slot


def _seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta; both are handled
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        retry_after = error.retry_after
    if isinstance(retry_after, timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


class TelegramOutput(OutputChannel):
    """Sends the bot's responses to one Telegram chat."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(
        self,
        bot: Bot,
        payloads: PayloadStore,
        pacer: ChatPacer,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
    ) -> None:
        self.bot = bot
        self.payloads = payloads
        self.pacer = pacer
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait

    async def _send(self, chat_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """One API call, paced per chat, retried after 429 RetryAfter up to `max_attempts` times."""
        attempt = 1
        while True:
            try:
                return await self.pacer.run(chat_id, call)
            except RetryAfter as error:
                wait = _seconds(error)
                if attempt >= self.max_attempts or wait > self.max_retry_wait:
                    log.warning("telegram.send.rate_limited", attempts=attempt, retry_after=wait)
                    raise
                log.info("telegram.send.retry_after", attempt=attempt, retry_after=wait)
                await asyncio.sleep(wait)
                attempt += 1

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for part in split_text(text, MAX_TEXT_CHARS):
            await self._send(recipient_id, lambda part=part: self.bot.send_message(chat_id=recipient_id, text=part))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        parts = split_text(text, MAX_TEXT_CHARS) or ["Please choose:"]
        rows = [
            [InlineKeyboardButton(str(button.get("title", "")), callback_data=self.payloads.callback_data(str(button.get("payload", button.get("title", "")))))]
            for button in buttons
        ]
        for part in parts[:-1]:
            await self._send(recipient_id, lambda part=part: self.bot.send_message(chat_id=recipient_id, text=part))
        markup = InlineKeyboardMarkup(rows)
        await self._send(
            recipient_id,
            lambda: self.bot.send_message(chat_id=recipient_id, text=parts[-1], reply_markup=markup),
        )

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._send(recipient_id, lambda: self.bot.send_photo(chat_id=recipient_id, photo=image))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        log.info("telegram.send.custom_ignored")

    async def answer_callback(self, callback_query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(callback_query_id)
        except TelegramError:
            log.warning("telegram.callback.answer_failed", exc_info=True)


class TelegramInput(InputChannel):
    """Telegram webhook channel; see the module docstring."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "TelegramInput":
        # Secrets come from the environment (bot.settings), never from credentials.yml.
        return cls()

    def __init__(
        self,
        settings: Optional[Settings] = None,
        pacing_interval: float = 1.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
    ) -> None:
        self._settings = settings
        self.payloads = PayloadStore()
        self.pacer = ChatPacer(pacing_interval)
        self.recent_updates = BoundedLru(RECENT_UPDATES)
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self.bot: Optional[Bot] = None
        self._bot_lock: Optional[asyncio.Lock] = None

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @property
    def configured(self) -> bool:
        return bool(self.settings.telegram_token and self.settings.telegram_webhook_secret)

    # -- the Bot's life, inside the server's event loop -------------------------------------------

    async def start_bot(self) -> Optional[Bot]:
        """The initialised Bot, created on first use in the running loop; None if not configured."""
        if not self.configured:
            return None
        if self.bot is not None:
            return self.bot
        if self._bot_lock is None:
            self._bot_lock = asyncio.Lock()
        async with self._bot_lock:
            if self.bot is None:
                bot = Bot(self.settings.telegram_token, base_url=self.settings.telegram_api_base)
                await bot.initialize()
                self.bot = bot
                log.info("telegram.bot.started", username=bot.username)
        return self.bot

    async def stop_bot(self) -> None:
        bot, self.bot = self.bot, None
        self._bot_lock = None
        if bot is not None:
            try:
                await bot.shutdown()
            except Exception:  # stopping must not fail the server's shutdown
                log.warning("telegram.bot.shutdown_failed", exc_info=True)

    def output(self, bot: Bot) -> TelegramOutput:
        return TelegramOutput(bot, self.payloads, self.pacer, self.max_attempts, self.max_retry_wait)

    def get_output_channel(self) -> Optional[OutputChannel]:
        return self.output(self.bot) if self.bot is not None else None

    # -- the webhook --------------------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint(CHANNEL_NAME, __name__)

        @webhook.listener("before_server_start")
        async def start(_app: Any, _loop: Any) -> None:
            if not self.configured:
                log.info("telegram.channel.disabled", reason=NOT_CONFIGURED)
                return
            try:
                await self.start_bot()
            except Exception:  # Telegram unreachable at start: retried on the first update
                log.warning("telegram.bot.start_failed", exc_info=True)

        @webhook.listener("after_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self.stop_bot()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.configured else "not configured"})

        # Streamed: the secret and Content-Length are checked before the body is read, and no more than
        # MAX_BODY_BYTES of it is ever buffered.
        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_request(request, on_new_message)

        return webhook

    async def handle_request(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        settings = self.settings
        if not self.configured:
            return response.json({"error": NOT_CONFIGURED}, status=503)
        given = request.headers.get(SECRET_HEADER, "")
        expected = settings.telegram_webhook_secret or ""
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
            log.info("telegram.request.refused", status=403, secret_given=bool(given))
            return response.json({"error": "missing or wrong secret token"}, status=403)
        if request.stream is not None and hasattr(request.stream, "request_max_size"):
            # Sanic drains an unread body up to its own 100 MB limit; cap that for this route.
            request.stream.request_max_size = min(request.stream.request_max_size, MAX_BODY_BYTES)
        declared = request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _too_large(int(declared))
        body = await _read_body(request)
        if body is None:
            return _too_large(None)

        data = _parse_update(body)
        if data is None:
            log.warning("telegram.update.malformed", bytes=len(body))
            return response.json({"ok": True, "processed": False})
        update_id = data["update_id"]
        if not self.recent_updates.add_if_new(update_id):
            log.info("telegram.update.duplicate", update_id=update_id)
            return response.json({"ok": True, "processed": False})
        try:
            bot = await self.start_bot()
        except Exception:
            # Not reachable now: forget the update so Telegram's retry (after a 5xx) is processed.
            self.recent_updates.discard(update_id)
            log.exception("telegram.bot.unavailable", update_id=update_id)
            return response.json({"error": "telegram is not reachable"}, status=503)
        assert bot is not None
        try:
            update = Update.de_json(data, bot)
        except Exception:
            log.warning("telegram.update.malformed", update_id=update_id, exc_info=True)
            return response.json({"ok": True, "processed": False})
        processed = await self.handle_update(update, bot, on_new_message)
        return response.json({"ok": True, "processed": processed})

    async def handle_update(
        self, update: Update, bot: Bot, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> bool:
        output = self.output(bot)
        if update.callback_query is not None:
            query = update.callback_query
            try:
                message = query.message
                if message is None or message.chat.type != "private":
                    log.info("telegram.update.ignored", update_id=update.update_id, kind="callback_outside_private_chat")
                    return False
                sender = str(message.chat.id)
                payload = self.payloads.payload(query.data or "")
                if not payload:
                    await output.send_text_message(sender, EXPIRED_BUTTON_REPLY)
                    return False
                metadata = _metadata(query.from_user.id if query.from_user else None, message.chat.type)
                return await self._deliver(on_new_message, output, payload, sender, metadata, update.update_id)
            finally:
                await output.answer_callback(query.id)

        message = update.message
        if message is None:
            log.info("telegram.update.ignored", update_id=update.update_id, kind="not_a_message")
            return False
        if message.chat.type != "private":
            log.info("telegram.update.ignored", update_id=update.update_id, kind="not_a_private_chat")
            return False
        sender = str(message.chat.id)
        metadata = _metadata(message.from_user.id if message.from_user else None, message.chat.type)
        if message.from_user is not None and message.from_user.language_code:
            metadata["language_code"] = message.from_user.language_code

        if message.text is not None:
            text = clean_text(message.text)
            command, _, argument = text.partition(" ")
            if command.split("@", 1)[0] == "/start":
                argument = argument.strip()
                if argument.startswith(("ref_", "link_")):
                    metadata["deep_link"] = argument
                    text = "/start"
                else:
                    text = "/greet"
            if not text:
                await output.send_text_message(sender, "I received an empty message. What can I help you with?")
                return False
            if len(text) > self.settings.max_message_chars:
                await output.send_text_message(
                    sender,
                    f"That message is too long for me ({len(text):,} characters). "
                    f"Please keep it under {self.settings.max_message_chars:,} characters and I'll gladly help.",
                )
                return False
            return await self._deliver(on_new_message, output, text, sender, metadata, update.update_id)

        if message.photo:
            metadata["photo_file_id"] = message.photo[-1].file_id  # the largest size
            text = clean_text(message.caption or "") or "/photo"
            return await self._deliver(on_new_message, output, text, sender, metadata, update.update_id)

        log.info("telegram.update.unsupported", update_id=update.update_id)
        await output.send_text_message(sender, UNSUPPORTED_REPLY)
        return False

    async def _deliver(
        self,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        output: TelegramOutput,
        text: str,
        sender: str,
        metadata: Dict[str, Any],
        update_id: int,
    ) -> bool:
        try:
            await on_new_message(UserMessage(text, output, sender, input_channel=CHANNEL_NAME, metadata=metadata))
            return True
        except Exception:  # answer 200 all the same: Telegram would resend the update forever
            log.exception("telegram.message.failed", update_id=update_id)
            try:
                await output.send_text_message(sender, ERROR_REPLY)
            except Exception:
                log.warning("telegram.error_reply.failed", update_id=update_id, exc_info=True)
            return False


def _too_large(size: Optional[int]) -> HTTPResponse:
    log.info("telegram.request.rejected", status=413, declared_bytes=size)
    return response.json({"error": f"request body too large: the limit is {MAX_BODY_BYTES} bytes"}, status=413)


async def _read_body(request: Request) -> Optional[bytes]:
    """The whole body, or None once it passes MAX_BODY_BYTES (the rest is left unread)."""
    if request.stream is None:  # not a streamed request (already read)
        body = request.body or b""
        return body if len(body) <= MAX_BODY_BYTES else None
    chunks: List[bytes] = []
    size = 0
    try:
        while True:
            chunk = await request.stream.read()
            if chunk is None:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
    except PayloadTooLarge:
        return None
    return b"".join(chunks)


def _metadata(user_id: Optional[int], chat_type: str) -> Dict[str, Any]:
    return {"telegram_user_id": user_id, "telegram_chat_type": chat_type}


def _parse_update(body: bytes) -> Optional[Dict[str, Any]]:
    """The update as a dict, or None if the body is not a JSON object with an integer update_id."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    return data
