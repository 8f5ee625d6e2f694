"""The Telegram input channel: the webhook (secret checked, each update once) or long polling, updates
parsed into conversation turns (text, button presses, photos and videos, /start deep links), and the
bot's lifecycle inside the Rasa server's loop.

Every update a real client sends gets an answer or a reason to have none: stickers, voice, locations,
contacts and edits get a short reply saying what the bot reads; a pin or another service message is left
alone; `my_chat_member` (the shopper blocked or unblocked the bot) is recorded for the linked customer so
no notice is pushed to a chat that refuses them. An update the bot could not answer (the turn failed
before anything was sent: the tracker store, the lock store or Telegram down) is reported as failed:
the webhook answers 503 and forgets the update id so Telegram's redelivery is handled, long polling
fetches it again after a back-off; after MAX_UPDATE_ATTEMPTS failures the shopper gets an apology."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import warnings
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Bot, CallbackQuery, ChatMember, ChatMemberUpdated, Message, Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError
from telegram.warnings import PTBUserWarning

from bot.channel_state import ChannelState, channel_state_for
from bot.clock import now as utc_now
from bot.db import Database
from bot.identity import chat_reachability
from bot.log import get_logger
from bot.settings import Settings, get_settings
from bot.shared.text import EMPTY_MESSAGE_REPLY, clean_chat_text, too_long_reply
from bot.handoff import PendingReply
from channels.handoff import ReplyDelivery, kept_for_a_person
from channels.telegram.config import (
    ALLOWED_UPDATES, CHANNEL_NAME, NOT_CONFIGURED, POLLING_MODE, SECRET_HEADER, SECRET_RULE, TOKEN_REJECTED,
    TokenRejected, telegram_problem,
)
from channels.telegram.notices import NoticeDelivery
from channels.telegram.outbound import MESSAGES_PER_SECOND, ChatPacer, RateLimiter, TelegramOutput, retry_seconds
from channels.telegram.state import UPDATE_TTL_SECONDS, StateUnavailable, attempts_key, payload_for, update_key

log = get_logger(__name__)
Sleep = Callable[[float], Awaitable[Any]]
logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry URLs with the bot token
MAX_BODY_BYTES = 1024 * 1024
POLL_TIMEOUT_SECONDS = 25
# A long poll's read waits this much longer than the poll itself before the connection counts as lost.
POLL_READ_MARGIN_SECONDS = 10
# Deep-link values after link_ / ref_ (Telegram's own start-parameter charset).
DEEP_LINK_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What a photo reaches the conversation as (intent submit_content; the photo is in metadata["content"]).
SUBMIT_CONTENT = "/submit_content"
UNSUPPORTED_REPLY = "Sorry, I can only read text, photos and videos here. Please type your question."
# What the bot says to the media real clients send that it cannot read (media_of takes photos and videos).
STICKER_REPLY = "Nice one! I can't read stickers or GIFs, though. Type your question, or send a photo of your order."
VOICE_REPLY = "I can't listen to voice messages or audio. Please type your question and I'll answer right away."
LOCATION_REPLY = ("Thanks, but I don't use locations. Ask me \"how long does delivery take?\" "
                  "or about returns if that's what you need.")
CONTACT_REPLY = ("Thanks, but I don't need a phone number. To link this chat to your account, send me the "
                 "one-time code from the store's account page.")
EDITED_REPLY = ("I only see new messages, not edits. If you changed your question, send it again as a new "
                "message and I'll answer that.")
# Handling an update that failed is tried this many times in all (Telegram's redelivery, or the next poll);
# then the shopper is told.
MAX_UPDATE_ATTEMPTS = 3
# The bot's member status in a private chat after the shopper blocked it.
BLOCKED_STATUSES = frozenset({ChatMember.BANNED, ChatMember.LEFT})
# Bot API bots may download files up to 20 MB (getFile), so a larger upload could never be reviewed.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 20 * 1024 * 1024
EXPIRED_BUTTON_REPLY = "That button has expired. Please ask me again and I'll show fresh options."
ERROR_REPLY = "Sorry, something went wrong on my side. Please try again in a moment."


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
        # The team's replies to live handoffs (bot/handoff.py), sent as they are written.
        self._database = database
        self.replies = ReplyDelivery(CHANNEL_NAME, self.send_reply, database=database)

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

    async def send_reply(self, reply: PendingReply) -> Optional[str]:
        """A person's reply to a live handoff, through the bot's own sending (split, paced, 429s retried);
        None when sent, else why not."""
        bot = await self.start_bot()
        if bot is None:
            return "Telegram is not configured"
        try:
            await self.output(bot).send_text_message(reply.recipient, reply.text)
        except TelegramError as error:  # blocked by the shopper, chat not found, …
            return f"Telegram refused it: {type(error).__name__}"
        return None

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
            self.replies.start()
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
            await self.replies.stop()

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
        update = read_update(data, bot)
        if update is None:  # refused before it is marked as seen: nothing of it is handled
            return response.json({"ok": True, "processed": False})
        try:
            processed = await self.process_update(update, bot, on_new_message)
        except StateUnavailable:
            return response.json({"error": "temporarily unavailable"}, status=503)
        except RetryLater:
            # Telegram redelivers an update its webhook did not take (the id was forgotten: it is handled then).
            return response.json({"error": "the bot could not answer this update now; retry later"}, status=503)
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
                # The raw updates, each read on its own as the webhook reads it (PTB's get_updates fails the
                # whole batch on one update it cannot read, which would then come back forever).
                asked: Dict[str, Any] = {"timeout": self.poll_timeout, "allowed_updates": list(ALLOWED_UPDATES)}
                if self.poll_offset is not None:
                    asked["offset"] = self.poll_offset
                with warnings.catch_warnings():  # PTB suggests get_updates: read above why not
                    warnings.simplefilter("ignore", PTBUserWarning)
                    raw_updates = await bot.do_api_request(
                        "getUpdates", api_kwargs=asked, read_timeout=self.poll_timeout + POLL_READ_MARGIN_SECONDS
                    )
                for raw in raw_updates if isinstance(raw_updates, list) else []:
                    data = raw if isinstance(raw, dict) else {}
                    update_id = data.get("update_id")
                    if not isinstance(update_id, int) or isinstance(update_id, bool):
                        log.warning("telegram.update.malformed", reason="no_update_id")
                        continue
                    update = read_update(data, bot)
                    if update is not None:
                        # Raises when the shared state is down or the bot could not answer: the update (and
                        # those after it) is fetched again after the back-off.
                        await self.process_update(update, bot, on_new_message)
                    self.poll_offset = update_id + 1  # confirmed to Telegram by the next call
                delay = first_delay
                continue
            except asyncio.CancelledError:
                raise
            except RetryLater:
                log.info("telegram.polling.retry_later", retry_in=delay)
            except RetryAfter as error:
                wait = min(retry_seconds(error), max_delay)
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
        try:
            return await self.handle_update(update, bot, on_new_message)
        except Exception as error:
            return await self._failed(update, bot, error)

    async def _failed(self, update: Update, bot: Bot, error: Exception) -> bool:
        """Handling `update` failed before the shopper got anything: RetryLater while attempts remain (its id
        forgotten, so the redelivery is handled), else an apology to the chat and False."""
        update_id = update.update_id
        try:
            attempts = await self.state.increment(attempts_key(update_id), UPDATE_TTL_SECONDS)
            if attempts < MAX_UPDATE_ATTEMPTS:
                await self.state.delete(update_key(update_id))
                log.warning("telegram.update.retry_later", update_id=update_id, attempt=attempts,
                            error=type(error).__name__, exc_info=error)
                raise RetryLater(update_id) from error
        except RetryLater:
            raise
        except Exception:  # the state is down too: the redelivery would be skipped, so this is the last try
            log.warning("telegram.state.unavailable", update_id=update_id, exc_info=True)
            attempts = MAX_UPDATE_ATTEMPTS
        log.error("telegram.update.failed", update_id=update_id, attempts=attempts, exc_info=error)
        chat_id = private_chat_id(update)
        if chat_id is not None:
            try:
                await self.output(bot).send_text_message(chat_id, ERROR_REPLY)
            except Exception:
                log.warning("telegram.error_reply.failed", update_id=update_id, exc_info=True)
        return False

    async def handle_update(
        self, update: Update, bot: Bot, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> bool:
        output = self.output(bot)
        if update.my_chat_member is not None:
            await self._record_membership(update.my_chat_member, update.update_id)
            return False
        if update.callback_query is not None:
            return await self._handle_press(update.callback_query, update.update_id, output, on_new_message)
        if update.edited_message is not None:
            edited = update.edited_message
            if edited.chat.type == "private":
                log.info("telegram.update.edit_refused", update_id=update.update_id)
                await output.send_text_message(str(edited.chat.id), EDITED_REPLY)
            return False

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

        reply = unreadable_reply(message)
        if reply is None:  # a service message (a pin, a web app's write access): nothing the shopper said
            log.info("telegram.update.ignored", update_id=update.update_id, kind="service_message")
            return False
        log.info("telegram.update.unsupported", update_id=update.update_id)
        await output.send_text_message(sender, reply)
        return False

    async def _record_membership(self, change: ChatMemberUpdated, update_id: int) -> None:
        """The shopper blocked (or unblocked) the bot: record it for the linked customer. Raises when the
        store is down, so the update is retried."""
        if change.chat.type != "private":
            log.info("telegram.update.ignored", update_id=update_id, kind="member_change_outside_private_chat")
            return
        reachable = change.new_chat_member.status not in BLOCKED_STATUSES
        linked = await asyncio.to_thread(chat_reachability, CHANNEL_NAME, str(change.chat.id), reachable,
                                         utc_now(), database=self._database)
        log.info("telegram.chat.reachability", update_id=update_id, reachable=reachable, linked=linked)

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
        shown = metadata.get("content", {}).get("caption") if text == SUBMIT_CONTENT else None
        if await kept_for_a_person(CHANNEL_NAME, sender, text if not shown else f"{text} {shown}",
                                   lambda reply: output.send_text_message(sender, reply), self._database):
            return True
        sent_before = output.sent
        try:
            await on_new_message(UserMessage(text, output, sender, input_channel=CHANNEL_NAME, metadata=metadata))
            return True
        except Exception:
            if output.sent == sent_before:
                raise  # nothing reached the shopper: process_update has it retried (see the module docstring)
            # Part of the answer reached the shopper: a retry would send it again.
            log.exception("telegram.message.failed_after_reply", update_id=update_id)
            return True


class RetryLater(RuntimeError):
    """Handling an update failed before the shopper got anything: Telegram (or the next poll) should deliver
    it again; its id is no longer marked as seen."""


def read_update(data: Dict[str, Any], bot: Bot) -> Optional[Update]:
    """An update (a dict with an integer update_id) as PTB reads it; when a field has a shape this PTB does not
    know (a newer Bot API's, or a broken one), its message's core fields (readable_part) so the shopper still
    gets an answer; None (logged) when it is unusable even so."""
    update_id = data.get("update_id")
    try:
        update: Optional[Update] = Update.de_json(data, bot)
    except Exception:
        update = readable_part(data, bot)
        if update is None:
            log.warning("telegram.update.malformed", update_id=update_id, exc_info=True)
            return None
        log.info("telegram.update.partly_read", update_id=update_id)
    assert update is not None
    problem = malformed_reason(update)
    if problem is not None:
        log.warning("telegram.update.malformed", update_id=update_id, reason=problem)
        return None
    return update


def malformed_reason(update: Update) -> Optional[str]:
    """Why an update PTB could read is still unusable (a message or member change without its chat), or None.
    Checked before the update is marked as seen."""
    for message in (update.message, update.edited_message):
        if message is not None and (message.chat is None or message.chat.id is None or not message.chat.type):
            return "message_without_chat"
    query = update.callback_query
    if query is not None and query.message is not None and getattr(query.message, "chat", None) is None:
        return "callback_without_chat"
    change = update.my_chat_member
    if change is not None and (change.chat is None or change.new_chat_member is None):
        return "member_change_without_chat"
    return None


def private_chat_id(update: Update) -> Optional[str]:
    """The private chat an update came from, to answer in; None for other chats and for member changes (a chat
    that blocked the bot takes no messages)."""
    if update.my_chat_member is not None:
        return None
    message = update.effective_message
    chat = getattr(message, "chat", None) if message is not None else None
    if chat is None or chat.type != "private":
        return None
    return str(chat.id)


# Message fields readable_part keeps: who, where, when and the words.
CORE_MESSAGE_FIELDS = ("message_id", "date", "chat", "from", "text", "caption", "edit_date")
UNREAD_PREFIX = "unread_"
# Message fields that are something the shopper sent (rather than a service message: a pin, a web app's
# write access, a payment's receipt), and what the bot says to those it cannot read.
SENT_CONTENT = frozenset({"sticker", "animation", "dice", "voice", "audio", "location", "venue", "contact", "poll",
                          "game", "story", "invoice", "paid_media", "checklist", "document", "photo", "video",
                          "video_note"})
UNREADABLE_REPLIES = ((frozenset({"sticker", "animation", "dice"}), STICKER_REPLY),
                      (frozenset({"voice", "audio"}), VOICE_REPLY),
                      (frozenset({"location", "venue"}), LOCATION_REPLY),
                      (frozenset({"contact"}), CONTACT_REPLY))


def readable_part(data: Dict[str, Any], bot: Bot) -> Optional[Update]:
    """The update with its message cut to CORE_MESSAGE_FIELDS, the other fields' names kept in api_kwargs as
    unread_<name> (so unreadable_reply knows what was sent); None when even that cannot be read."""
    for kind in ("message", "edited_message"):
        raw = data.get(kind)
        if not isinstance(raw, dict):
            continue
        core = {key: raw[key] for key in CORE_MESSAGE_FIELDS if key in raw}
        unread = {UNREAD_PREFIX + str(key)[:40]: True for key in raw if key not in CORE_MESSAGE_FIELDS}
        try:
            return Update.de_json({"update_id": data["update_id"], kind: {**core, **unread}}, bot)
        except Exception:
            return None
    return None


def unreadable_reply(message: Message) -> Optional[str]:
    """What to say to a message the bot cannot read (not text, not a photo or video); None for a service
    message, which the shopper did not write."""
    sent = {name for name in SENT_CONTENT if getattr(message, name, None)}
    sent |= {key[len(UNREAD_PREFIX):] for key in message.api_kwargs if key.startswith(UNREAD_PREFIX)} & SENT_CONTENT
    if not sent:
        return None
    for kinds, reply in UNREADABLE_REPLIES:
        if sent & kinds:
            return reply
    return UNSUPPORTED_REPLY


def media_content(kind: str, file_id: str, caption: Optional[str], file_size: Optional[int] = None,
                  mime_type: Optional[str] = None) -> Dict[str, Any]:
    """The content submission a photo or video stands for (metadata["content"] of /submit_content)."""
    return {"kind": kind, "channel": CHANNEL_NAME, "telegram_file_id": file_id, "file_size": file_size,
            "mime_type": mime_type, "caption": clean_chat_text(caption or "")}


def media_of(message: Message) -> "Optional[Dict[str, Any] | str]":
    """The photo or video a message carries as content, a note saying why it cannot be taken (too large,
    not an image or video), or None when it carries neither."""
    if message.animation is not None:  # a GIF: sent with a video/mp4 document, but no video of an order
        return None
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
