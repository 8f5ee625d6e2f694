"""Telegram input channel on python-telegram-bot 22, at /webhooks/telegram/webhook (or long polling).

Rasa 3.6's own Telegram channel (aiogram) checks no webhook secret and never answers callback queries;
this one:

- is configured from the environment (bot.settings): TELEGRAM_TOKEN, TELEGRAM_WEBHOOK_SECRET,
  TELEGRAM_MODE, TELEGRAM_API_BASE. `telegram_status(settings)` says in one line whether it is on and,
  if not, what to set. In webhook mode (the default) it needs the token and the secret, and the secret
  must be what Telegram accepts as setWebhook's secret_token: 1-256 characters of A-Z a-z 0-9 _ -.
  Otherwise every request gets 503 and nothing is processed (a secret Telegram would refuse is logged
  as an error naming the rule, never the secret);
- refuses a request whose `X-Telegram-Bot-Api-Secret-Token` is not the webhook secret (403,
  constant-time compare) and bodies over 1 MB (413);
- answers 200 to malformed JSON and to updates it cannot use, so Telegram does not retry them forever;
- processes each `update_id` once;
- hands text, button presses (callback queries, answered before anything else so the button's spinner
  stops at once), photos, videos and `/start` deep links to the conversation (`/start link_<token>` →
  `/link_account{"link_token": "<token>"}`, `/start ref_<code>` → `/claim_referral{"referral_code":
  "<code>"}`), and answers stickers, voice and other media with a short note. A photo or video is a
  content submission: the text `/submit_content` with metadata `content` = {"kind": "photo" | "video",
  "channel": "telegram", "telegram_file_id": <the file_id; of a photo its largest size>, "file_size":
  <bytes or null>, "mime_type": <a video's, or null>, "caption": <the cleaned caption or "">}. Images and
  videos sent as files count the same; other files get a note saying what is accepted, and a photo over
  MAX_PHOTO_BYTES or a video over MAX_VIDEO_BYTES gets a note with the limit, not a turn;
- renders replies natively: text split at 4096 characters, buttons as an inline keyboard, images with
  sendPhoto, product cards (Rasa `elements`) as a photo with a caption and an inline keyboard of link
  and payload buttons; 429 answers are retried after the time Telegram asks for; messages to one chat
  are paced (about one a second) and all messages together are held to about 30 a second (Telegram's
  overall limit; counted per process).

Long polling (TELEGRAM_MODE=polling, for local development without a public https URL): when the server
starts, the webhook is deleted and a background task asks Telegram for updates (getUpdates, 25 s long
polls), handing each through the same path as a webhook update (dedupe included); errors back off
exponentially up to a minute. The webhook route then answers 409. Only the token is needed.

Shared state (bot.channel_state): the update ids seen (`telegram:update:<id>`, kept 24 h) and the long
button payloads (callback_data is limited to 64 bytes; a longer payload is sent as an unguessable random
key, `telegram:button:<key>`, kept 30 days, and looked up when pressed). With REDIS_URL set both live in
Redis: every Rasa process behind the webhook shares them and they survive restarts. Without it they are
in this process's memory (the `make run` default): a replay to another process or after a restart may be
processed again, and a button sent before a restart answers "that button has expired".

Proactive notices (`NoticeDelivery`): while the channel is on, a background task every
NOTICE_DELIVERY_SECONDS (default 30; 0 = off) claims the due chat notices (bot.notices.claim_for_channel:
a review approved, a referral rewarded, "How was your order #1042?" with its score buttons, …) of customers
linked to a Telegram chat and sends them through `TelegramOutput`. Claiming marks them sent before sending (at most once: a crash loses a notice rather
than repeating it, and two processes never claim the same one); a send Telegram refuses (bot blocked,
chat not found, network) marks it failed. Logs carry the notice id, never the text. A failing tick (the
store unreachable) is logged and retried with backoff; the task stops with the server, finishing the
notices it already claimed for up to `stop_grace` seconds.

The `telegram.Bot` is created and initialised inside the server's own event loop (a
`before_server_start` listener, or lazily on the first request when the listener could not reach
Telegram) and shut down after the server stops. The bot token is never logged (httpx, which would log
request URLs that contain it, is kept at WARNING).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import time
import warnings
from collections import deque
from datetime import timedelta
from typing import Any, Awaitable, Callable, Deque, Dict, Iterable, List, Optional, Text, Tuple, TypeVar

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.exceptions import PayloadTooLarge
from sanic.response import HTTPResponse
from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.channel_state import ChannelState, channel_state_for
from bot.clock import now as utc_now
from bot.db import Database
from bot.log import get_logger
from bot.notices import PendingDelivery, claim_deliveries, delivery_failed
from bot.settings import Settings, get_settings
from bot.shared.text import EMPTY_MESSAGE_REPLY, clean_chat_text, too_long_reply
from channels.render import ProductCard, product_cards, split_text

log = get_logger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry URLs with the bot token

CHANNEL_NAME = "telegram"
WEBHOOK_PATH = "/webhooks/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query")
MAX_BODY_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024
MAX_CALLBACK_DATA_BYTES = 64
# A callback_data that starts with this is a key into the shared state, never a payload itself.
SHORT_KEY_PREFIX = "~k:"
UPDATE_TTL_SECONDS = 24 * 60 * 60
BUTTON_TTL_SECONDS = 30 * 24 * 60 * 60
MESSAGES_PER_SECOND = 30
POLL_TIMEOUT_SECONDS = 25

SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
SECRET_RULE = "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -"
MISSING_WEBHOOK_SETTINGS = "set TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET"
MISSING_TOKEN = "set TELEGRAM_TOKEN"
TOKEN_REJECTED = "Telegram rejected TELEGRAM_TOKEN (401 Unauthorized): check the token @BotFather gave you"
# Deep-link values after link_ / ref_ (Telegram's own start-parameter charset).
DEEP_LINK_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SHORT_KEY = re.compile(r"[A-Za-z0-9_-]{1,43}")

NOT_CONFIGURED = "telegram channel is not configured"
POLLING_MODE = (
    "telegram channel is in long-polling mode (TELEGRAM_MODE=polling): it fetches updates itself and "
    "accepts none on the webhook; set TELEGRAM_MODE=webhook to use the webhook"
)
# What a photo reaches the conversation as (intent submit_content; the photo is in metadata["content"]).
SUBMIT_CONTENT = "/submit_content"
UNSUPPORTED_REPLY = "Sorry, I can only read text, photos and videos here. Please type your question."
# Bot API bots may download files up to 20 MB (getFile), so a larger upload could never be reviewed.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 20 * 1024 * 1024
EXPIRED_BUTTON_REPLY = "That button has expired. Please ask me again and I'll show fresh options."
ERROR_REPLY = "Sorry, something went wrong on my side. Please try again in a moment."

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


# -- configuration ----------------------------------------------------------------------------------


def valid_webhook_secret(secret: Optional[str]) -> bool:
    """Whether Telegram accepts `secret` as setWebhook's secret_token."""
    return bool(secret) and SECRET_PATTERN.fullmatch(secret or "") is not None


def telegram_problem(settings: Settings) -> Optional[str]:
    """Why the channel is off (what to set), or None when it is on."""
    if settings.telegram_mode == "polling":
        return None if settings.telegram_token else MISSING_TOKEN
    if not (settings.telegram_token and settings.telegram_webhook_secret):
        return MISSING_WEBHOOK_SETTINGS
    if not valid_webhook_secret(settings.telegram_webhook_secret):
        return SECRET_RULE
    return None


def telegram_status(settings: Settings) -> str:
    """One line for the operator, e.g. "telegram: on (webhook)" or "telegram: off — set TELEGRAM_TOKEN …"."""
    problem = telegram_problem(settings)
    if problem is not None:
        return f"telegram: off — {problem}"
    return "telegram: on (long polling)" if settings.telegram_mode == "polling" else "telegram: on (webhook)"


class TokenRejected(RuntimeError):
    """Telegram refused the bot token (the message never contains the token)."""


class StateUnavailable(RuntimeError):
    """The shared channel state (Redis) could not be reached."""


# -- shared state -----------------------------------------------------------------------------------


def update_key(update_id: int) -> str:
    return f"telegram:update:{update_id}"


def button_key(key: str) -> str:
    return f"telegram:button:{key}"


async def callback_data_for(state: ChannelState, payload: str) -> str:
    """The callback_data for a button payload: itself if it fits in 64 bytes, else a short random key."""
    if len(payload.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES and not payload.startswith(SHORT_KEY_PREFIX):
        return payload
    key = secrets.token_urlsafe(16)  # 128 random bits: not guessable
    await state.put(button_key(key), payload, BUTTON_TTL_SECONDS)
    return SHORT_KEY_PREFIX + key


async def payload_for(state: ChannelState, callback_data: str) -> Optional[str]:
    """The payload a pressed button carried; None for a short key that has expired or never existed."""
    if not callback_data.startswith(SHORT_KEY_PREFIX):
        return callback_data
    key = callback_data[len(SHORT_KEY_PREFIX):]
    if not SHORT_KEY.fullmatch(key):
        return None
    return await state.get(button_key(key))


# -- pacing -----------------------------------------------------------------------------------------


class RateLimiter:
    """At most `max_calls` in any `period` seconds (a sliding window), callers served in turn.

    Telegram allows a bot about 30 messages a second overall; `acquire()` waits until one more fits.
    """

    def __init__(
        self, max_calls: int = MESSAGES_PER_SECOND, period: float = 1.0, clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be at least 1 and period positive")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: Deque[float] = deque()
        self._lock: Optional[asyncio.Lock] = None

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: a waiter holds the line, later callers queue behind it
            now = self._clock()
            while self._sent and self._sent[0] + self.period <= now:
                self._sent.popleft()
            if len(self._sent) >= self.max_calls:
                # Wait until the oldest of the window leaves it; that frees exactly one place.
                await self._sleep(self._sent[0] + self.period - now)
                self._sent.popleft()
            self._sent.append(self._clock())


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


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def card_caption(card: ProductCard) -> str:
    """A product card's caption: title, then subtitle (its links are buttons), within 1024 characters."""
    text = f"{card.title}\n{card.subtitle}" if card.subtitle else card.title
    return _shorten(text, MAX_CAPTION_CHARS)


# -- output -----------------------------------------------------------------------------------------


class TelegramOutput(OutputChannel):
    """Sends the bot's responses to one Telegram chat."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(
        self,
        bot: Bot,
        state: ChannelState,
        pacer: ChatPacer,
        limiter: RateLimiter,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
    ) -> None:
        self.bot = bot
        self.state = state
        self.pacer = pacer
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait

    async def _send(self, chat_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """One message: paced per chat and overall, retried after 429 RetryAfter up to `max_attempts` times."""

        async def limited() -> T:
            await self.limiter.acquire()
            return await call()

        attempt = 1
        while True:
            try:
                return await self.pacer.run(chat_id, limited)
            except RetryAfter as error:
                wait = _seconds(error)
                if attempt >= self.max_attempts or wait > self.max_retry_wait:
                    log.warning("telegram.send.rate_limited", attempts=attempt, retry_after=wait)
                    raise
                log.info("telegram.send.retry_after", attempt=attempt, retry_after=wait)
                await asyncio.sleep(wait)
                attempt += 1

    async def _keyboard(self, buttons: Iterable[Dict[Text, Any]]) -> InlineKeyboardMarkup:
        rows = []
        for button in buttons:
            payload = str(button.get("payload", button.get("title", "")))
            data = await callback_data_for(self.state, payload)
            rows.append([InlineKeyboardButton(str(button.get("title", "")), callback_data=data)])
        return InlineKeyboardMarkup(rows)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for part in split_text(text, MAX_TEXT_CHARS):
            await self._send(recipient_id, lambda part=part: self.bot.send_message(chat_id=recipient_id, text=part))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        parts = split_text(text, MAX_TEXT_CHARS) or ["Please choose:"]
        markup = await self._keyboard(buttons)
        for part in parts[:-1]:
            await self._send(recipient_id, lambda part=part: self.bot.send_message(chat_id=recipient_id, text=part))
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

    async def send_elements(self, recipient_id: Text, elements: Iterable[Any], **kwargs: Any) -> None:
        """Product cards: each a photo (or, without one, a message) with its buttons as an inline keyboard."""
        cards = product_cards(list(elements) if elements is not None else [])
        if not cards:
            log.info("telegram.send.no_cards")
            return
        for card in cards:
            await self._send_card(recipient_id, card)

    async def _send_card(self, recipient_id: Text, card: ProductCard) -> None:
        rows = []
        for button in card.buttons:
            if button.url:
                rows.append([InlineKeyboardButton(button.title, url=button.url)])
            elif button.payload:
                data = await callback_data_for(self.state, button.payload)
                rows.append([InlineKeyboardButton(button.title, callback_data=data)])
        markup = InlineKeyboardMarkup(rows) if rows else None
        caption = card_caption(card)
        if card.image_url:
            try:
                await self._send(
                    recipient_id,
                    lambda: self.bot.send_photo(chat_id=recipient_id, photo=card.image_url, caption=caption, reply_markup=markup),
                )
                return
            except BadRequest as error:  # e.g. Telegram could not fetch the image: the card as a message
                log.warning("telegram.send.card_photo_refused", error=str(error))
        await self._send(
            recipient_id, lambda: self.bot.send_message(chat_id=recipient_id, text=caption, reply_markup=markup)
        )

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        text = json_message.get("text") if isinstance(json_message, dict) else None
        if isinstance(text, str) and text.strip():
            await self.send_text_message(recipient_id, text)
        else:
            log.info("telegram.send.custom_ignored", reason="no text")

    async def answer_callback(self, callback_query_id: str) -> bool:
        """Stop the pressed button's spinner; False (logged) when Telegram could not be told."""
        try:
            await self.bot.answer_callback_query(callback_query_id)
            return True
        except TelegramError:
            log.warning("telegram.callback.answer_failed", exc_info=True)
            return False


# -- proactive notices ------------------------------------------------------------------------------


class NoticeDelivery:
    """Sends due chat notices to linked Telegram chats every `interval` seconds; see the module docstring."""

    def __init__(
        self, channel: "TelegramInput", interval: Optional[float] = None, database: Optional[Database] = None,
        batch: int = 20, max_backoff: float = 300.0, stop_grace: float = 5.0,
    ) -> None:
        self.channel = channel
        self._interval = interval  # None: settings.notice_delivery_seconds
        self._database = database
        self.batch = batch
        self.max_backoff = max_backoff
        self.stop_grace = stop_grace
        self._task: Optional["asyncio.Task[None]"] = None
        self._stopping: Optional[asyncio.Event] = None

    @property
    def interval(self) -> float:
        return self.channel.settings.notice_delivery_seconds if self._interval is None else self._interval

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.interval <= 0 or self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="telegram-notices")
        log.info("telegram.notice.delivery_started", interval=self.interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        assert self._stopping is not None
        self._stopping.set()  # a sleeping loop ends at once; a tick sends what it has claimed
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_grace)
        except asyncio.TimeoutError:
            task.cancel()
            try:
                await task
            except BaseException:  # cancelled (or failed) while stopping: nothing more to do
                pass
        log.info("telegram.notice.delivery_stopped")

    async def _run(self) -> None:
        assert self._stopping is not None
        failures = 0
        while not self._stopping.is_set():
            delay = min(self.interval * 2 ** min(max(failures - 1, 0), 16), max(self.max_backoff, self.interval))
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the store or Telegram unreachable: next tick, then backing off
                failures += 1
                log.warning("telegram.notice.tick_failed", failures=failures, exc_info=True)

    async def run_once(self) -> int:
        """One tick: claim the due notices in batches and send them; how many were sent."""
        bot = await self.channel.start_bot()
        if bot is None:
            return 0
        output = self.channel.output(bot)
        sent = 0
        while True:
            deliveries = await asyncio.to_thread(self._claim)
            for delivery in deliveries:
                sent += await self._send(output, delivery)
            if len(deliveries) < self.batch or (self._stopping is not None and self._stopping.is_set()):
                return sent

    def _claim(self) -> List[PendingDelivery]:
        return claim_deliveries(CHANNEL_NAME, utc_now(), self.batch, database=self._database)

    async def _send(self, output: TelegramOutput, delivery: PendingDelivery) -> int:
        try:
            if delivery.buttons:  # a question with its answers (a feedback request's scores)
                await output.send_text_with_buttons(delivery.external_id, delivery.text, list(delivery.buttons))
            else:
                await output.send_text_message(delivery.external_id, delivery.text)
        except Exception as error:  # Forbidden (blocked), BadRequest (chat not found), NetworkError, …
            reason = f"{type(error).__name__}: {error}"
            token = self.channel.settings.telegram_token
            if token:
                reason = reason.replace(token, "<token>")
            log.warning("telegram.notice.failed", notice_id=delivery.notice_id, error=reason)
            try:
                await asyncio.to_thread(self._mark_failed, delivery.notice_id, reason)
            except Exception:  # it stays "sent": never retried
                log.warning("telegram.notice.mark_failed_failed", notice_id=delivery.notice_id, exc_info=True)
            return 0
        log.info("telegram.notice.sent", notice_id=delivery.notice_id, customer_id=delivery.customer_id)
        return 1

    def _mark_failed(self, notice_id: int, reason: str) -> None:
        delivery_failed(notice_id, reason, database=self._database)


# -- input ------------------------------------------------------------------------------------------


class TelegramInput(InputChannel):
    """Telegram webhook (or long-polling) channel; see the module docstring."""

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
        state: Optional[ChannelState] = None,
        pacing_interval: float = 1.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        messages_per_second: int = MESSAGES_PER_SECOND,
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
        poll_backoff: Tuple[float, float] = (1.0, 60.0),
        sleep: Sleep = asyncio.sleep,
        notice_interval: Optional[float] = None,
        database: Optional[Database] = None,
    ) -> None:
        self._settings = settings
        self._state = state
        self.pacer = ChatPacer(pacing_interval)
        self.limiter = RateLimiter(messages_per_second, 1.0)
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self.poll_timeout = poll_timeout
        self.poll_backoff = poll_backoff
        self.poll_offset: Optional[int] = None
        self._sleep = sleep  # the polling back-off's
        self.bot: Optional[Bot] = None
        self._bot_lock: Optional[asyncio.Lock] = None
        self._poller: Optional["asyncio.Task[None]"] = None
        # Proactive chat notices; notice_interval None = settings.notice_delivery_seconds.
        self.notices = NoticeDelivery(self, notice_interval, database)

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @property
    def state(self) -> ChannelState:
        return self._state if self._state is not None else channel_state_for(self.settings)

    @property
    def problem(self) -> Optional[str]:
        return telegram_problem(self.settings)

    @property
    def configured(self) -> bool:
        return self.problem is None

    @property
    def polling(self) -> bool:
        return self.settings.telegram_mode == "polling"

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
                bot = Bot(self.settings.telegram_token or "", base_url=self.settings.telegram_api_base)
                try:
                    await bot.initialize()
                except BaseException as error:
                    await _quietly_shut_down(bot)
                    if isinstance(error, InvalidToken):  # PTB's message quotes the token
                        raise TokenRejected(TOKEN_REJECTED) from None
                    raise
                self.bot = bot
                log.info("telegram.bot.started", username=bot.username, mode=self.settings.telegram_mode)
        return self.bot

    async def stop_bot(self) -> None:
        await self.stop_polling()
        await self.notices.stop()
        bot, self.bot = self.bot, None
        self._bot_lock = None
        if bot is not None:
            await _quietly_shut_down(bot)

    def output(self, bot: Bot) -> TelegramOutput:
        return TelegramOutput(bot, self.state, self.pacer, self.limiter, self.max_attempts, self.max_retry_wait)

    def get_output_channel(self) -> Optional[OutputChannel]:
        return self.output(self.bot) if self.bot is not None else None

    # -- the webhook --------------------------------------------------------------------------------

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint(CHANNEL_NAME, __name__)

        @webhook.listener("before_server_start")
        async def start(_app: Any, _loop: Any) -> None:
            problem = self.problem
            if problem == SECRET_RULE:
                log.error("telegram.channel.disabled", reason=SECRET_RULE)
                return
            if problem is not None:
                log.info("telegram.channel.disabled", reason=problem)
                return
            self.notices.start()  # its ticks start the Bot themselves when it is not up yet
            if self.polling:
                self.start_polling(on_new_message)  # starts the Bot itself, retrying until Telegram answers
                return
            try:
                await self.start_bot()
            except TokenRejected as error:
                log.error("telegram.bot.start_failed", reason=str(error))
            except Exception:  # Telegram unreachable at start: retried on the first update
                log.warning("telegram.bot.start_failed", exc_info=True)

        @webhook.listener("before_server_stop")
        async def stop_polling(_app: Any, _loop: Any) -> None:
            await self.stop_polling()
            await self.notices.stop()  # while the Bot is still up: the claimed notices go out

        @webhook.listener("after_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self.stop_bot()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            if not self.configured:
                return response.json({"status": "not configured"})
            return response.json({"status": "ok", "mode": self.settings.telegram_mode})

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
        if self.polling:
            log.info("telegram.request.refused", status=409, reason="polling mode")
            return response.json({"error": POLLING_MODE}, status=409)
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
        try:
            bot = await self.start_bot()
        except Exception as error:
            # Not reachable now: 503, so Telegram retries the update later (it was not marked as seen).
            if isinstance(error, TokenRejected):
                log.error("telegram.bot.unavailable", update_id=update_id, reason=str(error))
            else:
                log.exception("telegram.bot.unavailable", update_id=update_id)
            return response.json({"error": "telegram is not reachable"}, status=503)
        assert bot is not None
        try:
            update = Update.de_json(data, bot)
        except Exception:
            log.warning("telegram.update.malformed", update_id=update_id, exc_info=True)
            return response.json({"ok": True, "processed": False})
        try:
            processed = await self.process_update(update, bot, on_new_message)
        except StateUnavailable:
            return response.json({"error": "temporarily unavailable"}, status=503)
        return response.json({"ok": True, "processed": processed})

    # -- long polling -------------------------------------------------------------------------------

    def start_polling(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(on_new_message), name="telegram-polling")

    async def stop_polling(self) -> None:
        task, self._poller = self._poller, None
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.warning("telegram.polling.stop_failed", exc_info=True)
        log.info("telegram.polling.stopped")

    async def _poll(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """getUpdates in a loop until cancelled; see the module docstring."""
        first_delay, max_delay = self.poll_backoff
        delay = first_delay
        webhook_deleted = False
        while True:
            try:
                bot = await self.start_bot()
                assert bot is not None
                if not webhook_deleted:
                    await bot.delete_webhook()  # getUpdates is refused while a webhook is set
                    webhook_deleted = True
                    log.info("telegram.polling.started", username=bot.username)
                updates = await bot.get_updates(
                    offset=self.poll_offset, timeout=self.poll_timeout, allowed_updates=list(ALLOWED_UPDATES)
                )
                for update in updates:
                    # Raises only when the shared state is down: the update is fetched again later.
                    await self.process_update(update, bot, on_new_message)
                    self.poll_offset = update.update_id + 1  # confirmed to Telegram by the next call
                delay = first_delay
                continue
            except asyncio.CancelledError:
                raise
            except RetryAfter as error:
                wait = min(_seconds(error), max_delay)
                log.info("telegram.polling.retry_after", retry_after=wait)
                await self._sleep(wait)
                continue
            except TokenRejected as error:
                log.error("telegram.polling.failed", reason=str(error), retry_in=delay)
            except Conflict as error:  # a webhook was set meanwhile, or another process polls this bot
                webhook_deleted = False
                log.error(
                    "telegram.polling.conflict", error=str(error), retry_in=delay,
                    hint="only one process may poll a bot, and not while a webhook is set",
                )
            except Exception:
                log.warning("telegram.polling.failed", retry_in=delay, exc_info=True)
            await self._sleep(delay)
            delay = min(delay * 2, max_delay)

    # -- one update, from the webhook or from polling ----------------------------------------------------

    async def process_update(
        self, update: Update, bot: Bot, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> bool:
        """Handle an update unless this update_id was seen before (by any process sharing the state)."""
        try:
            fresh = await self.state.first_time(update_key(update.update_id), UPDATE_TTL_SECONDS)
        except Exception as error:
            log.exception("telegram.state.unavailable", update_id=update.update_id)
            raise StateUnavailable(str(error)) from error
        if not fresh:
            log.info("telegram.update.duplicate", update_id=update.update_id)
            return False
        return await self.handle_update(update, bot, on_new_message)

    async def handle_update(
        self, update: Update, bot: Bot, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> bool:
        output = self.output(bot)
        if update.callback_query is not None:
            return await self._handle_press(update.callback_query, update.update_id, output, on_new_message)

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
            text = clean_chat_text(message.text)
            command, _, argument = text.partition(" ")
            if command.split("@", 1)[0] == "/start":
                text = _start_text(argument.strip(), metadata)
            if not text:
                await output.send_text_message(sender, EMPTY_MESSAGE_REPLY)
                return False
            too_long = too_long_reply(len(text), self.settings.max_message_chars)
            if too_long is not None:
                await output.send_text_message(sender, too_long)
                return False
            return await self._deliver(on_new_message, output, text, sender, metadata, update.update_id)

        media = media_of(message)
        if isinstance(media, str):  # a file the bot cannot take: the reason, not a turn
            log.info("telegram.update.media_refused", update_id=update.update_id)
            await output.send_text_message(sender, media)
            return False
        if media is not None:
            if media["kind"] == "photo":
                metadata["photo_file_id"] = media["telegram_file_id"]
            metadata["content"] = media
            log.info("telegram.content.media", update_id=update.update_id, kind=media["kind"],
                     has_caption=bool(media["caption"]))
            return await self._deliver(on_new_message, output, SUBMIT_CONTENT, sender, metadata, update.update_id)

        log.info("telegram.update.unsupported", update_id=update.update_id)
        await output.send_text_message(sender, UNSUPPORTED_REPLY)
        return False

    async def _handle_press(
        self,
        query: CallbackQuery,
        update_id: int,
        output: TelegramOutput,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> bool:
        """A button press. Answered first: the spinner stops at once, however long the turn takes."""
        answered = await output.answer_callback(query.id)
        try:
            message = query.message
            if message is None or message.chat.type != "private":
                log.info("telegram.update.ignored", update_id=update_id, kind="callback_outside_private_chat")
                return False
            sender = str(message.chat.id)
            try:
                payload = await payload_for(self.state, query.data or "")
            except Exception:
                log.exception("telegram.state.unavailable", update_id=update_id)
                await output.send_text_message(sender, ERROR_REPLY)
                return False
            if not payload:
                await output.send_text_message(sender, EXPIRED_BUTTON_REPLY)
                return False
            metadata = _metadata(query.from_user.id if query.from_user else None, message.chat.type)
            return await self._deliver(on_new_message, output, payload, sender, metadata, update_id)
        finally:
            if not answered:  # one more try (e.g. a network blip), or the button keeps spinning until it times out
                await output.answer_callback(query.id)

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


def media_content(kind: str, file_id: str, caption: Optional[str], file_size: Optional[int] = None,
                  mime_type: Optional[str] = None) -> Dict[str, Any]:
    """The content submission a photo or video stands for (metadata["content"] of /submit_content)."""
    return {"kind": kind, "channel": CHANNEL_NAME, "telegram_file_id": file_id, "file_size": file_size,
            "mime_type": mime_type, "caption": clean_chat_text(caption or "")}


def media_of(message: Message) -> "Optional[Dict[str, Any] | str]":
    """The photo or video a message carries as content, a note saying why it cannot be taken (too large,
    not an image or video), or None when it carries neither."""
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        return _sized("photo", largest.file_id, message.caption, largest.file_size, None)
    video = message.video or message.video_note
    if video is not None:
        return _sized("video", video.file_id, message.caption, video.file_size, getattr(video, "mime_type", None))
    document = message.document
    if document is not None:
        mime = (document.mime_type or "").lower()
        if mime.startswith(("image/", "video/")) and mime != "image/svg+xml":
            kind = "photo" if mime.startswith("image/") else "video"
            return _sized(kind, document.file_id, message.caption, document.file_size, mime)
        return ("I can only take photos and videos here — that file isn't one. "
                "Send a photo or a video of your order, or type your question.")
    return None


def _sized(kind: str, file_id: str, caption: Optional[str], size: Optional[int],
           mime: Optional[str]) -> "Dict[str, Any] | str":
    limit = MAX_PHOTO_BYTES if kind == "photo" else MAX_VIDEO_BYTES
    if size is not None and size > limit:
        return (f"That {kind} is too large for me ({size / 1024 / 1024:.1f} MB). "
                f"Please send one under {limit // (1024 * 1024)} MB.")
    return media_content(kind, file_id, caption, size, mime)


def _start_text(argument: str, metadata: Dict[str, Any]) -> str:
    """The message a `/start [argument]` stands for; deep links add to `metadata`.

    `link_<token>` → /link_account{"link_token": token}; `ref_<code>` → /claim_referral{"referral_code": code};
    anything else (or a token or code outside [A-Za-z0-9_-]{1,64}) → /greet.
    """
    kind, _, value = argument.partition("_")
    if kind in ("link", "ref") and DEEP_LINK_VALUE.fullmatch(value):
        metadata["deep_link"] = argument
        if kind == "link":
            return "/link_account" + json.dumps({"link_token": value})
        metadata["referral_code"] = value
        return "/claim_referral" + json.dumps({"referral_code": value})
    return "/greet"


async def _quietly_shut_down(bot: Bot) -> None:
    try:
        await bot.shutdown()
    except Exception:  # stopping must not fail the server's shutdown
        log.warning("telegram.bot.shutdown_failed", exc_info=True)


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
