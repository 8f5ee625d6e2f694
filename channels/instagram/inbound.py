"""The Instagram input channel: Meta's verification handshake and the signed webhook, every event of a
batch parsed (text, quick replies, postbacks, photos and videos; echoes, reads and reactions ignored) and
handed to the conversation once; a state outage answers 503 so Meta redelivers.

A turn that failed before the shopper got anything (the tracker or lock store down) is reported too: the
rest of the batch is handled, the failed message's id is forgotten and the webhook answers 503, so Meta's
redelivery hands it to the conversation again (what was handled is skipped); after MAX_MESSAGE_ATTEMPTS
the shopper gets an apology. Replies the Graph API could not take (5xx, 429, no connection) are held and
sent when the shopper next writes (channels/instagram/outbound.py)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channel_state import ChannelState, channel_state_for
from bot.db import Database
from bot.handoff import PendingReply
from bot.log import get_logger
from bot.rasa_hooks import OPENS_SESSION
from bot.settings import get_settings
from bot.shared.text import clean_chat_text, has_control_characters, has_lone_surrogate, too_long_reply
from channels.instagram.config import InstagramConfig, config_from_settings
from channels.handoff import ReplyDelivery, kept_for_a_person
from channels.instagram.outbound import TEXT_MAX_BYTES, GraphApiSender, InstagramOutput, SendOutcome
from channels.instagram.outbox import InstagramOutboxDelivery
from channels.render import split_text, utf8_length
from channels.instagram.state import InstagramState, StateUnavailable

log = get_logger(__name__)
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
MAX_BODY_BYTES = 1024 * 1024
MAX_SENDER_CHARS = 128
UNSUPPORTED_REPLY = "Sorry, I can only read text, photos and videos here. Please type your question."
ERROR_REPLY = "Sorry, something went wrong on my side. Please try again in a moment."
# Handling a message whose turn failed is tried this many times in all (Meta's redeliveries); then the
# shopper gets ERROR_REPLY.
MAX_MESSAGE_ATTEMPTS = 3
# What an image or video reaches the conversation as (intent submit_content; the image is in metadata["content"]).
SUBMIT_CONTENT = "/submit_content"
# Attachments that are not the shopper writing to the bot (they mentioned the business in their story).
SILENT_ATTACHMENTS = frozenset({"story_mention"})


def signature_is_valid(app_secret: str, body: bytes, header: Optional[str]) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`."""
    if not header:
        return False
    expected = "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.strip().lower().encode("utf-8", "surrogateescape"), expected.encode("ascii"))


def verify_token_matches(expected: str, given: Optional[str]) -> bool:
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


@dataclass(frozen=True)
class Incoming:
    """One shopper message the conversation should see."""

    sender_id: str
    text: str
    mid: Optional[str]
    metadata: Optional[Dict[str, Any]] = None
    # A quick reply or postback payload: never read as a numbered choice.
    from_button: bool = False


@dataclass(frozen=True)
class Unsupported:
    """A shopper message the bot cannot read (sticker, voice, video, share, file…): it gets a short note."""

    sender_id: str
    mid: Optional[str]
    reason: str


@dataclass(frozen=True)
class Ignored:
    reason: str
    mid: Optional[str] = None


def parse_event(event: Any) -> "Incoming | Unsupported | Ignored":
    """One element of `entry[].messaging[]` → a message for the bot, one it cannot read, or why it is ignored."""
    if not isinstance(event, dict):
        return Ignored("not_an_object")
    sender = event.get("sender")
    sender_id = sender.get("id") if isinstance(sender, dict) else None
    if not isinstance(sender_id, (str, int)) or isinstance(sender_id, bool) or not str(sender_id).strip():
        return Ignored("no_sender")
    sender_id = str(sender_id).strip()
    # Meta's ids are digits; one no database could store (a lone surrogate, a control character) is forged.
    if len(sender_id) > MAX_SENDER_CHARS or has_lone_surrogate(sender_id) or has_control_characters(sender_id):
        return Ignored("bad_sender")

    postback = event.get("postback")
    if isinstance(postback, dict):
        mid = _mid(postback)
        payload = clean_chat_text(postback["payload"]) if isinstance(postback.get("payload"), str) else ""
        if payload:
            return Incoming(sender_id, payload, mid, from_button=True)
        return Ignored("postback_without_payload", mid)

    message = event.get("message")
    if not isinstance(message, dict):
        for kind in ("read", "reaction", "delivery", "referral", "optin"):
            if kind in event:
                return Ignored(kind)
        return Ignored("unsupported_event")
    mid = _mid(message)
    if message.get("is_echo"):
        return Ignored("echo", mid)
    if message.get("is_deleted"):
        return Ignored("deleted", mid)
    if message.get("is_unsupported"):
        return Unsupported(sender_id, mid, "unsupported")
    quick_reply = message.get("quick_reply")
    if isinstance(quick_reply, dict):
        payload = clean_chat_text(quick_reply["payload"]) if isinstance(quick_reply.get("payload"), str) else ""
        if payload:
            return Incoming(sender_id, payload, mid, from_button=True)
    text = message.get("text")
    text = clean_chat_text(text) if isinstance(text, str) else ""
    attachments = message.get("attachments")
    images = _attachment_urls(attachments, "image")
    if images:
        return Incoming(sender_id, SUBMIT_CONTENT, mid, _photo_metadata(images, text))
    videos = _attachment_urls(attachments, "video")
    if videos:
        content = {"kind": "video", "channel": "instagram", "urls": videos, "caption": text}
        return Incoming(sender_id, SUBMIT_CONTENT, mid, {"content": content})
    if text:
        return Incoming(sender_id, text, mid)
    kinds = _attachment_kinds(attachments)
    if kinds and kinds <= SILENT_ATTACHMENTS:
        return Ignored("story_mention", mid)
    if kinds:
        return Unsupported(sender_id, mid, "unsupported_message")
    return Ignored("empty_message", mid)


def _photo_metadata(urls: List[str], caption: str) -> Dict[str, Any]:
    """The content submission an image message stands for, with the image keys the channel always set."""
    metadata: Dict[str, Any] = {
        "content": {"kind": "photo", "channel": "instagram", "urls": urls, "caption": caption},
        "image_url": urls[0],
    }
    if len(urls) > 1:
        metadata["image_urls"] = urls
    return metadata


def _attachment_kinds(attachments: Any) -> "frozenset[str]":
    if not isinstance(attachments, list):
        return frozenset()
    return frozenset(
        str(attachment.get("type") or "unknown") for attachment in attachments if isinstance(attachment, dict)
    )


def _mid(container: Dict[str, Any]) -> Optional[str]:
    mid = container.get("mid")
    return mid if isinstance(mid, str) and mid else None


def _attachment_urls(attachments: Any, kind: str) -> List[str]:
    """The URLs of the message's attachments of one type (image or video)."""
    if not isinstance(attachments, list):
        return []
    urls = []
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("type") != kind:
            continue
        payload = attachment.get("payload")
        if isinstance(payload, dict) and payload.get("sticker_id"):
            continue  # Meta sends stickers as images with a sticker_id: not a photo of the shopper's
        url = payload.get("url") if isinstance(payload, dict) else None
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            urls.append(url)
    return urls


def events_of(payload: Any) -> Iterable[Any]:
    """Every messaging event of every entry, in delivery order."""
    entries = payload.get("entry") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        messaging = entry.get("messaging")
        if isinstance(messaging, list):
            yield from messaging


class RetryLater(RuntimeError):
    """A message's turn failed before the shopper got anything: the webhook answers 503 so Meta redelivers."""


class InstagramInput(InputChannel):
    """Instagram DMs at /webhooks/instagram/webhook. Configured from the environment (bot.settings);
    credentials.yml only enables it: `channels.instagram.InstagramInput: {}`.

    `state` is the channel-state store (tests pass their own; by default `channel_state_for(settings)`),
    `clock` the time for the 24-hour window and `sleep` what the sender waits with between retries."""

    @classmethod
    def name(cls) -> Text:
        return "instagram"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls()

    def __init__(
        self,
        config: Optional[InstagramConfig] = None,
        clock: Clock = time.time,
        state: Optional[ChannelState] = None,
        sleep: Sleep = asyncio.sleep,
        database: Optional[Database] = None,
    ) -> None:
        self._config = config
        self._database = database
        self._clock = clock
        self._store = state
        self._sleep = sleep
        self._state: Optional[InstagramState] = None
        self._sender: Optional[GraphApiSender] = None
        # The team's replies to live handoffs (bot/handoff.py), sent as they are written.
        self.replies = ReplyDelivery(self.name(), self.send_reply, database=database)
        # Proactive messages the outbox routed here (bot/outbox/), inside the 24-hour window only.
        self.outbox = InstagramOutboxDelivery(self, database=database)

    @property
    def state(self) -> InstagramState:
        # Made on first use, not in __init__: Rasa builds channels before the settings of a test are set.
        if self._state is None:
            self._state = InstagramState(self._store or channel_state_for(get_settings()), self._clock)
        return self._state

    def config(self) -> Optional[InstagramConfig]:
        return self._config or config_from_settings()

    def sender(self, config: InstagramConfig) -> GraphApiSender:
        if self._sender is None or self._sender.config != config:
            self._sender = GraphApiSender(config, sleep=self._sleep)
        return self._sender

    def get_output_channel(self) -> Optional[OutputChannel]:
        config = self.config()
        return InstagramOutput(self.sender(config), self.state) if config else None

    async def send_reply(self, reply: PendingReply) -> Optional[str]:
        """A person's reply to a live handoff: split like the bot's text, tagged HUMAN_AGENT when it goes out
        between 24 hours and 7 days after the shopper's last message (bot/handoff.py decides); None when
        sent, else why not."""
        config = self.config()
        if config is None:
            return "Instagram is not configured"
        sender = self.sender(config)
        for part in split_text(reply.text, TEXT_MAX_BYTES, measure=utf8_length):
            outcome = await sender.send(reply.recipient, {"text": part}, tag=reply.tag)
            if outcome is SendOutcome.OUTSIDE_WINDOW:
                return "Instagram refused it: outside the allowed window"
            if outcome is SendOutcome.UNAVAILABLE:
                return "Instagram was unavailable: not delivered, send it again"
            if outcome is not SendOutcome.SENT:
                return "Instagram refused it (see the channel's log)"
        return None

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("instagram_webhook", __name__)

        @webhook.listener("after_server_start")
        async def start_replies(*_: Any) -> None:
            if self.config() is not None:
                self.replies.start()
                self.outbox.interval = get_settings().notice_delivery_seconds
                self.outbox.start()

        @webhook.listener("before_server_stop")
        async def stop_replies(*_: Any) -> None:
            await self.replies.stop()
            await self.outbox.stop()

        @webhook.listener("after_server_stop")
        async def close_session(*_: Any) -> None:
            await self.close()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.config() else "not configured"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            config = self.config()
            if config is None:
                return response.text("Instagram channel is not configured", status=503)
            mode = request.args.get("hub.mode")
            token = request.args.get("hub.verify_token")
            challenge = request.args.get("hub.challenge", "")
            if mode == "subscribe" and verify_token_matches(config.verify_token, token):
                log.info("instagram.webhook.verified")
                return response.text(challenge)
            log.info("instagram.webhook.verify_refused", mode=mode)
            return response.text("verification failed", status=403)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            config = self.config()
            if config is None:
                return response.json({"error": "Instagram channel is not configured"}, status=503)
            body = request.body or b""
            if len(body) > MAX_BODY_BYTES:
                log.info("instagram.request.too_large", bytes=len(body))
                return response.json({"error": f"request body too large: the limit is {MAX_BODY_BYTES} bytes"}, status=413)
            if not signature_is_valid(config.app_secret, body, request.headers.get("X-Hub-Signature-256")):
                log.warning("instagram.request.bad_signature", has_header="X-Hub-Signature-256" in request.headers)
                return response.json({"error": "missing or wrong X-Hub-Signature-256"}, status=403)
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                log.warning("instagram.request.malformed", bytes=len(body))
                return response.json({"status": "ignored"})
            if not isinstance(payload, dict) or payload.get("object") != "instagram":
                kind = payload.get("object") if isinstance(payload, dict) else type(payload).__name__
                log.warning("instagram.request.unknown_object", object=str(kind)[:40])
                return response.json({"status": "ignored"})
            try:
                handled = await self._handle(payload, config, on_new_message)
            except StateUnavailable:
                # Meta redelivers on anything but 200; the messages already handled are skipped then.
                return response.json({"error": "temporarily unavailable"}, status=503)
            except RetryLater:
                return response.json({"error": "the bot could not answer every message now; retry later"},
                                     status=503)
            return response.json({"status": "ok", "handled": handled})

        return webhook

    async def _handle(
        self, payload: Dict[str, Any], config: InstagramConfig, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> int:
        handled = 0
        retry = False
        for event in events_of(payload):
            parsed = parse_event(event)
            if isinstance(parsed, Ignored):
                log.info("instagram.event.ignored", reason=parsed.reason)
                continue
            try:
                if await self._handle_message(parsed, config, on_new_message):
                    handled += 1
            except StateUnavailable:
                raise  # the whole batch is answered 503 and redelivered (see the module docstring)
            except RetryLater:  # the rest of the batch goes on; the redelivery skips what was handled
                retry = True
        if retry:
            raise RetryLater()
        return handled

    async def _handle_message(
        self,
        message: "Incoming | Unsupported",
        config: InstagramConfig,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> bool:
        """Hand one message to the conversation (True), or answer an unreadable one with a note (False)."""
        if not await self.state.first_time(message.mid):
            log.info("instagram.event.duplicate")
            return False
        output = InstagramOutput(self.sender(config), self.state)
        try:
            text = await self._conversation_text(message) if isinstance(message, Incoming) else ""
            opens_session = await self.state.shopper_wrote(message.sender_id)
            # Held messages first, then the reply: the shopper reads them in the order they were meant.
            await output.deliver_held(message.sender_id)
        except StateUnavailable:
            await self.state.forget(message.mid)  # nothing reached the conversation: let the redelivery in
            raise
        await self._outbox_window_opened(message.sender_id)
        if isinstance(message, Unsupported):
            log.info("instagram.event.unsupported", reason=message.reason)
            await output.send_text_message(message.sender_id, UNSUPPORTED_REPLY)
            return False
        too_long = too_long_reply(len(text), get_settings().max_message_chars)
        if too_long is not None:
            log.info("instagram.message.too_long", chars=len(text))
            await output.send_text_message(message.sender_id, too_long)
            return False
        try:
            if await kept_for_a_person(self.name(), message.sender_id, text,
                                       lambda reply: output.send_text_message(message.sender_id, reply),
                                       self._database):
                return True
            metadata = message.metadata
            if opens_session:  # the first message of a session is greeted, as the widget's opening and /start are
                metadata = {**(metadata or {}), OPENS_SESSION: True}
            await on_new_message(
                UserMessage(text, output, message.sender_id, input_channel=self.name(), metadata=metadata)
            )
        except StateUnavailable:
            raise
        except Exception as error:
            return await self._failed(message, output, error)
        return True

    async def _outbox_window_opened(self, sender_id: str) -> None:
        """The shopper wrote: the proactive messages waiting for their window go out before the reply. Best
        effort: a store outage leaves them waiting, the conversation goes on."""
        try:
            await self.outbox.shopper_wrote(sender_id)
        except Exception:  # noqa: BLE001
            log.warning("instagram.outbox.window_opened_failed", exc_info=True)

    async def _failed(self, message: "Incoming", output: InstagramOutput, error: Exception) -> bool:
        """The turn failed. Before anything reached the shopper: RetryLater while attempts remain (the message
        id forgotten, so Meta's redelivery is handled), then an apology. After part of an answer: nothing more
        (a retry would send that part again)."""
        if output.answered:
            log.error("instagram.message.failed_after_reply", exc_info=error)
            return True
        attempts = MAX_MESSAGE_ATTEMPTS
        if message.mid is not None:  # a message without an id could not be told from its redelivery
            try:
                attempts = await self.state.failed_attempt(message.mid)
                if attempts < MAX_MESSAGE_ATTEMPTS:
                    await self.state.unmark(message.mid)
                    log.warning("instagram.message.retry_later", attempt=attempts, error=type(error).__name__,
                                exc_info=error)
                    raise RetryLater() from error
            except StateUnavailable:
                attempts = MAX_MESSAGE_ATTEMPTS  # the redelivery would be skipped: this was the last try
            except RetryLater:
                raise
            except Exception:
                attempts = MAX_MESSAGE_ATTEMPTS
        log.error("instagram.message.failed", attempts=attempts, exc_info=error)
        try:
            await output.send_text_message(message.sender_id, ERROR_REPLY)
        except Exception:
            log.warning("instagram.error_reply.failed", exc_info=True)
        return False

    async def _conversation_text(self, message: Incoming) -> str:
        """The message's text, or the payload of the numbered option it picks."""
        if message.from_button or message.metadata is not None:
            return message.text
        # Read before anything is delivered: a held message may carry a newer list than the one answered.
        chosen = await self.state.payload_chosen(message.sender_id, message.text)
        if chosen is None:
            return message.text
        log.info("instagram.choice.numbered")
        return chosen
