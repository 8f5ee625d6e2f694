"""Instagram DMs: a Rasa input channel at /webhooks/instagram/webhook and an aiohttp sender to the Graph API.

Rasa 3.6 has no Instagram channel, and its Facebook channel (the nearest) ignores `X-Hub-Signature-256`,
answers 200 to forged requests and handles only the first event of a batch. This one:

- GET: Meta's verification handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`); 403 otherwise.
- POST: `X-Hub-Signature-256` must be `sha256=` + HMAC-SHA256(app secret, raw body) (constant-time compare);
  a bad or missing signature is a 403 and nothing is processed. Bodies over 1 MB are a 413. Malformed JSON or
  an object other than "instagram" gets a 200 (Meta retries anything else, for days) and a log line.
- Every entry and every messaging event of a batch is handled, in order. Echoes of our own messages (with or
  without attachments), reads, reactions, deleted messages, story mentions and empty messages are ignored.
  Quick replies and postbacks become their payload. Images are a content submission: the text
  "/submit_content" with metadata {"content": {"kind": "photo", "channel": "instagram", "urls": [...],
  "caption": <the message's text or "">}} (and, as before, "image_url"/"image_urls"); a message with videos
  and no image is one with "kind": "video". Messages the bot cannot read (stickers, voice, shares, reels,
  files, Meta's "unsupported") do not reach the conversation;
  the shopper gets UNSUPPORTED_REPLY, sent like any reply (they wrote, so the window is open again).
- The state store (below) failing is answered 503, so Meta redelivers the batch: the messages already
  handed to the conversation are skipped then (by `mid`), and one that failed before that is forgotten so
  the redelivery processes it. Any other failure of one message is logged and the batch goes on (200).
- Replies go through the Instagram API with Instagram Login, `POST {INSTAGRAM_API_BASE}/me/messages` with
  the access token as a bearer header. Text is split at 1000 UTF-8 bytes; up to 13 buttons become quick
  replies (titles cut to 20 characters); images are image attachments; product cards a generic template
  when every card fits Instagram's limits.
- Numbered choices: buttons Instagram cannot show as quick replies (more than 13, a payload over 1000
  characters) and the postback buttons of cards that fell back to text are sent as a numbered list. The
  list's payloads are remembered per shopper for 24 hours, so a reply of "2" (or "2." / " 2 ") reaches the
  conversation as the second option's payload. Other text, and numbers outside the list, pass through
  unchanged and keep the list; a newer list replaces it, and quick replies or card buttons (choices the
  shopper taps) forget it.
- Sends are retried on 429 and 5xx, at most 3 attempts, after 1 s then 2 s or after the `Retry-After`
  seconds the API asks for, capped at 10 s (the webhook request waits on it). Other 4xx answers are not
  retried. A send that still fails is logged (status and Meta's error code, never the token) and dropped,
  except Meta's "outside of allowed window" answer (code 10, subcode 2018278 or 2534022): then the shopper is
  treated as outside the window and the message is held as below.
- Meta lets a business answer only within 24 hours of the shopper's last message (the 7-day HUMAN_AGENT tag
  is not used). Outside it nothing is sent: the message is held for that shopper (up to 50, for 7 days;
  the oldest go first) and delivered, in order, as soon as the shopper writes again, before the reply to
  that new message.

What the channel remembers lives in `bot.channel_state` (Redis when REDIS_URL is set, so it is shared by
every Rasa process and survives restarts; otherwise bounded process memory), under "instagram:…" keys:
processed message ids (`mid`, 24 h: Meta redelivers on timeouts), each shopper's last message time (8 days),
held messages (7 days) and numbered choices (24 h).

Configuration (bot.settings): INSTAGRAM_APP_SECRET, INSTAGRAM_VERIFY_TOKEN, INSTAGRAM_ACCESS_TOKEN and
INSTAGRAM_API_BASE. Without the three secrets the webhook answers 503 and processes nothing
(`instagram_status` says which are missing).
"""
from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Sequence, Text, TypeVar

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channel_state import ChannelState, channel_state_for
from bot.log import get_logger
from bot.settings import Settings, get_settings
from bot.shared.text import clean_chat_text, too_long_reply
from channels.render import ProductCard, cards_as_text, numbered_options, product_cards, split_text, utf8_length

log = get_logger(__name__)

DEFAULT_API_BASE = "https://graph.instagram.com/v21.0"
MAX_BODY_BYTES = 1024 * 1024
TEXT_MAX_BYTES = 1000
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000
TEMPLATE_ELEMENTS_MAX = 10
TEMPLATE_TEXT_MAX = 80
TEMPLATE_BUTTONS_MAX = 3
REPLY_WINDOW_SECONDS = 24 * 60 * 60
SEND_TIMEOUT_SECONDS = 15

# Channel state: how long each kind of entry lives, and how many held messages a shopper may have.
SEEN_MID_TTL_SECONDS = 24 * 60 * 60
LAST_SEEN_TTL_SECONDS = 8 * 24 * 60 * 60
PENDING_TTL_SECONDS = 7 * 24 * 60 * 60
PENDING_MAX_PER_SHOPPER = 50
CHOICES_TTL_SECONDS = 24 * 60 * 60

# Graph API retries: attempts in all, exponential backoff (base, cap) and the longest Retry-After honoured.
SEND_ATTEMPTS = 3
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0
# Meta's "This message is sent outside of allowed window" (Messenger Platform error codes: code 10 with
# one of these subcodes).
OUTSIDE_WINDOW_CODE = 10
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278, 2534022})

CHOICE_HINT = "Reply with the number of your choice."
UNSUPPORTED_REPLY = "Sorry, I can only read text, photos and videos here. Please type your question."
# What an image or video reaches the conversation as (intent submit_content; the image is in metadata["content"]).
SUBMIT_CONTENT = "/submit_content"
# Attachments that are not the shopper writing to the bot (they mentioned the business in their story).
SILENT_ATTACHMENTS = frozenset({"story_mention"})
SECRET_VARIABLES = ("INSTAGRAM_APP_SECRET", "INSTAGRAM_VERIFY_TOKEN", "INSTAGRAM_ACCESS_TOKEN")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
T = TypeVar("T")


class StateUnavailable(RuntimeError):
    """The shared channel state (Redis) could not be read or written."""


@dataclass(frozen=True)
class InstagramConfig:
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    access_token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE


def config_from(settings: Settings) -> Optional[InstagramConfig]:
    """The channel's configuration, or None while any of its secrets is unset (channel off)."""
    secret, verify, token = settings.instagram_app_secret, settings.instagram_verify_token, settings.instagram_access_token
    if not (secret and verify and token):
        return None
    return InstagramConfig(secret, verify, token, (settings.instagram_api_base or DEFAULT_API_BASE).rstrip("/"))


def config_from_settings() -> Optional[InstagramConfig]:
    return config_from(get_settings())


def instagram_status(settings: Settings) -> str:
    """One line for `make run`: whether the channel is on, and if not which variables to set."""
    values = (settings.instagram_app_secret, settings.instagram_verify_token, settings.instagram_access_token)
    missing = [name for name, value in zip(SECRET_VARIABLES, values) if not value]
    if not missing:
        return "instagram: on"
    names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
    return f"instagram: off — set {names}"


# ---------------------------------------------------------------- incoming


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

    postback = event.get("postback")
    if isinstance(postback, dict):
        mid = _mid(postback)
        payload = postback.get("payload")
        if isinstance(payload, str) and payload.strip():
            return Incoming(sender_id, payload.strip(), mid, from_button=True)
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
        payload = quick_reply.get("payload")
        if isinstance(payload, str) and payload.strip():
            return Incoming(sender_id, payload.strip(), mid, from_button=True)
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


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class Outgoing:
    """One Send API `message`, and the payloads of the numbered list it shows, if any.

    `choices` None leaves what the shopper's numbers mean as it is; a list replaces it once the message is
    delivered (an empty list forgets it: the shopper now has buttons to tap instead)."""

    message: Dict[str, Any]
    choices: Optional[List[str]] = None

    def to_json(self) -> Dict[str, Any]:
        return {"message": self.message, "choices": self.choices}

    @classmethod
    def from_json(cls, raw: Any) -> Optional["Outgoing"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("message"), dict):
            return None
        choices = raw.get("choices")
        if not (isinstance(choices, list) and all(isinstance(choice, str) for choice in choices)):
            choices = None
        return cls(raw["message"], choices)


_NUMBER_REPLY = re.compile(r"\s*(\d{1,3})\s*[.)]?\s*")


def chosen_number(text: str) -> Optional[int]:
    """The number a reply like "2", "2." or " 2 " picks, or None for any other text."""
    match = _NUMBER_REPLY.fullmatch(text)
    return int(match.group(1)) if match else None


class InstagramState:
    """What the channel remembers between requests, kept in a `bot.channel_state` store (shared by every
    process and kept across restarts when that store is Redis). Times come from `clock` (seconds since the
    epoch) so tests can move them; entries expire by the store's own time to live."""

    def __init__(self, store: ChannelState, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    async def _guarded(operation: str, call: Awaitable[T]) -> T:
        """The store's answer; its failure as StateUnavailable (the webhook answers 503 so Meta retries)."""
        try:
            return await call
        except Exception as error:
            # The type only: a client's message may name the Redis URL.
            log.warning("instagram.state.unavailable", operation=operation, error=type(error).__name__)
            raise StateUnavailable(operation) from error

    async def first_time(self, mid: Optional[str]) -> bool:
        """True the first time a message id is seen (messages without an id are always new)."""
        if mid is None:
            return True
        return await self._guarded("first_time", self.store.first_time(f"instagram:mid:{mid}", SEEN_MID_TTL_SECONDS))

    async def forget(self, mid: Optional[str]) -> None:
        """Best effort: a message that failed before reaching the conversation is processed when redelivered."""
        if mid is None:
            return
        try:
            await self.store.delete(f"instagram:mid:{mid}")
        except Exception as error:  # the store is likely still down: Meta's redelivery is skipped as a duplicate
            log.warning("instagram.state.forget_failed", error=type(error).__name__)

    async def shopper_wrote(self, sender_id: str) -> None:
        await self._guarded(
            "shopper_wrote",
            self.store.put(f"instagram:last_seen:{sender_id}", repr(self.clock()), LAST_SEEN_TTL_SECONDS),
        )

    async def within_window(self, recipient_id: str) -> bool:
        raw = await self._guarded("within_window", self.store.get(f"instagram:last_seen:{recipient_id}"))
        try:
            last = float(raw) if raw is not None else None
        except ValueError:
            last = None
        return last is not None and self.clock() - last <= REPLY_WINDOW_SECONDS

    async def mark_outside_window(self, recipient_id: str) -> None:
        """Meta says the window is closed: hold everything for this shopper until they write again."""
        await self._guarded("mark_outside_window", self.store.delete(f"instagram:last_seen:{recipient_id}"))

    async def hold(self, recipient_id: str, outgoing: Outgoing) -> None:
        key = f"instagram:pending:{recipient_id}"
        push = self.store.push(key, outgoing.to_json(), PENDING_TTL_SECONDS, PENDING_MAX_PER_SHOPPER)
        await self._guarded("hold", push)

    async def take_held(self, recipient_id: str) -> List[Outgoing]:
        """Every message held for this shopper, oldest first; they are no longer held after this."""
        raw_items = await self._guarded("take_held", self.store.pop_all(f"instagram:pending:{recipient_id}"))
        return [item for item in map(Outgoing.from_json, raw_items) if item is not None]

    async def remember_choices(self, recipient_id: str, payloads: List[str]) -> None:
        key = f"instagram:choices:{recipient_id}"
        if payloads:
            await self._guarded("remember_choices", self.store.put(key, json.dumps(payloads), CHOICES_TTL_SECONDS))
        else:
            await self._guarded("remember_choices", self.store.delete(key))

    async def payload_chosen(self, recipient_id: str, text: str) -> Optional[str]:
        """The payload of the numbered option this reply picks, or None (not a number, no list, out of range)."""
        number = chosen_number(text)
        if number is None:
            return None
        raw = await self._guarded("payload_chosen", self.store.get(f"instagram:choices:{recipient_id}"))
        try:
            payloads = json.loads(raw) if raw else []
        except ValueError:
            return None
        if not isinstance(payloads, list) or not 1 <= number <= len(payloads):
            return None
        payload = payloads[number - 1]
        return payload if isinstance(payload, str) and payload else None


# ---------------------------------------------------------------- outgoing


class SendOutcome(enum.Enum):
    SENT = "sent"
    OUTSIDE_WINDOW = "outside_window"  # Meta refused: the 24-hour window is closed; hold the message
    FAILED = "failed"  # logged and dropped


@dataclass(frozen=True)
class GraphError:
    """The `error` object of a failed Graph API answer (whatever of it could be read)."""

    code: Optional[int] = None
    subcode: Optional[int] = None
    kind: Optional[str] = None
    message: str = ""

    @classmethod
    def parse(cls, body: bytes) -> "GraphError":
        try:
            error = json.loads(body.decode("utf-8", "replace")).get("error")
        except (ValueError, AttributeError, RecursionError):
            return cls()
        if not isinstance(error, dict):
            return cls()

        def number(value: Any) -> Optional[int]:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        kind = error.get("type")
        message = error.get("message")
        return cls(
            code=number(error.get("code")),
            subcode=number(error.get("error_subcode")),
            kind=kind[:60] if isinstance(kind, str) else None,
            message=message[:200] if isinstance(message, str) else "",
        )

    @property
    def outside_window(self) -> bool:
        return self.code == OUTSIDE_WINDOW_CODE and self.subcode in OUTSIDE_WINDOW_SUBCODES


def retry_delay(attempt: int, retry_after: Optional[str]) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): the `Retry-After` seconds when the
    API gave them, else 1 s, 2 s, 4 s…; never more than RETRY_MAX_SECONDS (the webhook request waits)."""
    if retry_after is not None:
        try:
            asked = float(retry_after.strip())
        except ValueError:
            asked = -1.0
        if 0 <= asked < float("inf"):
            return min(asked, RETRY_MAX_SECONDS)
    return min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS)


class GraphApiSender:
    """POSTs messages to the Instagram Graph API with one aiohttp session, made in the running loop;
    retries 429 and 5xx answers (see the module docstring). `sleep` is injectable for tests."""

    def __init__(self, config: InstagramConfig, sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def url(self) -> str:
        return f"{self.config.api_base}/me/messages"

    async def send(self, recipient_id: str, message: Dict[str, Any]) -> SendOutcome:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS))
        body = {"recipient": {"id": recipient_id}, "message": message}
        headers = {"Authorization": f"Bearer {self.config.access_token}"}
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                async with self._session.post(self.url, json=body, headers=headers) as reply:
                    status = reply.status
                    retry_after = reply.headers.get("Retry-After")
                    answer = await reply.read() if status >= 400 else b""
            # A timed-out or cut connection may have delivered the message: not retried, so never sent twice.
            except Exception as error:  # noqa: BLE001 - a failed send must not end the conversation turn
                log.warning("instagram.send.failed", error=type(error).__name__, attempts=attempt)
                return SendOutcome.FAILED
            if status < 400:
                return SendOutcome.SENT
            retryable = status == 429 or status >= 500
            if retryable and attempt < SEND_ATTEMPTS:
                delay = retry_delay(attempt, retry_after)
                log.info("instagram.send.retry", status=status, attempt=attempt, delay_seconds=delay)
                await self._sleep(delay)
                continue
            error = GraphError.parse(answer)
            details = dict(
                status=status,
                attempts=attempt,
                code=error.code,
                subcode=error.subcode,
                error_type=error.kind,
                # Meta's messages do not carry the token, but a proxy's might: never log it.
                detail=error.message.replace(self.config.access_token, "[token]"),
            )
            if not retryable and error.outside_window:
                log.info("instagram.send.outside_window", **details)
                return SendOutcome.OUTSIDE_WINDOW
            log.warning("instagram.send.failed", **details)
            return SendOutcome.FAILED
        return SendOutcome.FAILED  # not reached: the last attempt always returns

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


@dataclass(frozen=True)
class Choice:
    """One option the shopper can pick: shown as a quick reply, or as a numbered line."""

    title: str
    payload: str


def choices_from_buttons(buttons: Any) -> List[Choice]:
    """Rasa buttons ({"title", "payload"}) → choices; buttons without a title are skipped, a missing
    payload is the title (what the shopper would have typed)."""
    if not isinstance(buttons, (list, tuple)):
        return []
    choices = []
    for button in buttons:
        if not isinstance(button, dict):
            continue
        title = " ".join(str(button.get("title") or "").split())
        payload = button.get("payload")
        payload = payload.strip() if isinstance(payload, str) and payload.strip() else title
        if title:
            choices.append(Choice(title, payload))
    return choices


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quick_replies_for(choices: Sequence[Choice]) -> Optional[List[Dict[str, str]]]:
    """Choices → Instagram quick replies, or None when Instagram cannot show them as such."""
    if not choices or len(choices) > QUICK_REPLIES_MAX:
        return None
    if any(len(choice.payload) > QUICK_REPLY_PAYLOAD_MAX for choice in choices):
        return None
    return [
        {"content_type": "text", "title": _truncate(choice.title, QUICK_REPLY_TITLE_MAX), "payload": choice.payload}
        for choice in choices
    ]


def numbered_text(text: str, choices: Sequence[Choice]) -> str:
    """The text with the choices as a numbered list and how to answer it."""
    return f"{numbered_options(text, [{'title': choice.title} for choice in choices])}\n{CHOICE_HINT}".strip()


def generic_template_for(elements: Any) -> Optional[Dict[str, Any]]:
    """Product cards → a generic template when every card fits Instagram's limits, else None."""
    return _template_of(product_cards(elements))


def _template_of(cards: Sequence[ProductCard]) -> Optional[Dict[str, Any]]:
    if not cards or len(cards) > TEMPLATE_ELEMENTS_MAX:
        return None
    elements = []
    for card in cards:
        if len(card.title) > TEMPLATE_TEXT_MAX or (card.subtitle and len(card.subtitle) > TEMPLATE_TEXT_MAX):
            return None
        if card.image_url and not card.image_url.startswith("https://"):
            return None
        if len(card.buttons) > TEMPLATE_BUTTONS_MAX:
            return None
        element: Dict[str, Any] = {"title": card.title}
        if card.subtitle:
            element["subtitle"] = card.subtitle
        if card.image_url:
            element["image_url"] = card.image_url
        buttons = []
        for button in card.buttons:
            if len(button.title) > QUICK_REPLY_TITLE_MAX:
                return None
            if button.url:
                if not button.url.startswith("https://"):
                    return None
                buttons.append({"type": "web_url", "url": button.url, "title": button.title})
            elif button.payload and len(button.payload) <= QUICK_REPLY_PAYLOAD_MAX:
                buttons.append({"type": "postback", "payload": button.payload, "title": button.title})
            else:
                return None
        if buttons:
            element["buttons"] = buttons
        elements.append(element)
    return {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": elements}}}


def card_choices(cards: Sequence[ProductCard]) -> List[Choice]:
    """The cards' postback buttons as choices, named after their card ("Standing desk: Redeem")."""
    return [Choice(f"{card.title}: {button.title}", button.payload) for card in cards for button in card.actions if button.payload]


class InstagramOutput(OutputChannel):
    """Renders Rasa responses as Instagram messages; sends only inside the 24-hour window and holds the
    rest for when the shopper writes again."""

    @classmethod
    def name(cls) -> Text:
        return "instagram"

    def __init__(self, sender: GraphApiSender, state: InstagramState) -> None:
        self.sender = sender
        self.state = state

    async def _deliver(self, recipient_id: str, messages: Sequence[Outgoing]) -> None:
        for outgoing in messages:
            if not await self.state.within_window(recipient_id):
                await self._hold(recipient_id, outgoing)
                continue
            outcome = await self.sender.send(recipient_id, outgoing.message)
            if outcome is SendOutcome.SENT:
                if outgoing.choices is not None:
                    await self.state.remember_choices(recipient_id, outgoing.choices)
            elif outcome is SendOutcome.OUTSIDE_WINDOW:
                await self.state.mark_outside_window(recipient_id)
                await self._hold(recipient_id, outgoing)

    async def _hold(self, recipient_id: str, outgoing: Outgoing) -> None:
        await self.state.hold(recipient_id, outgoing)
        log.info("instagram.reply.held_outside_window", recipient_chars=len(recipient_id))

    async def deliver_held(self, recipient_id: str) -> int:
        """Send the messages held for this shopper, oldest first (they just wrote: the window is open)."""
        held = await self.state.take_held(recipient_id)
        if held:
            log.info("instagram.reply.delivering_held", messages=len(held))
            await self._deliver(recipient_id, held)
        return len(held)

    @staticmethod
    def _texts(text: str, choices: Optional[List[str]] = None) -> List[Outgoing]:
        parts = split_text(text, TEXT_MAX_BYTES, measure=utf8_length)
        # The choices belong to the last part: the one that ends with the list.
        return [Outgoing({"text": part}, choices if index == len(parts) - 1 else None) for index, part in enumerate(parts)]

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, self._texts(text))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        choices = choices_from_buttons(buttons)
        if not choices:
            await self.send_text_message(recipient_id, text)
            return
        replies = quick_replies_for(choices)
        if replies is None:
            await self._deliver(recipient_id, self._texts(numbered_text(text, choices), [c.payload for c in choices]))
            return
        messages = self._texts(text) or [Outgoing({"text": "Choose one:"})]
        # Quick replies belong to the last part; the shopper now taps, so older numbered options are forgotten.
        messages[-1] = Outgoing(dict(messages[-1].message, quick_replies=replies), choices=[])
        await self._deliver(recipient_id, messages)

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, [Outgoing({"attachment": {"type": "image", "payload": {"url": image}}})])

    async def send_elements(self, recipient_id: Text, elements: Iterable[Any], **kwargs: Any) -> None:
        elements = list(elements)
        cards = product_cards(elements)
        if not cards:
            log.info("instagram.reply.no_usable_cards", elements=len(elements))
            return
        template = _template_of(cards)
        if template is not None:
            taps = [] if any(card.actions for card in cards) else None
            await self._deliver(recipient_id, [Outgoing(template, taps)])
            return
        choices = card_choices(cards)
        text = cards_as_text(elements)
        if choices:
            await self._deliver(recipient_id, self._texts(numbered_text(text, choices), [c.payload for c in choices]))
        else:
            await self._deliver(recipient_id, self._texts(text))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        # A custom response is an Instagram `message` object, sent as it is.
        if isinstance(json_message, dict) and json_message:
            await self._deliver(recipient_id, [Outgoing(json_message)])

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        if isinstance(attachment, dict):
            await self._deliver(recipient_id, [Outgoing({"attachment": attachment})])
        elif isinstance(attachment, str) and attachment.startswith("https://"):
            await self.send_image_url(recipient_id, attachment)


# ---------------------------------------------------------------- input channel


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
    ) -> None:
        self._config = config
        self._clock = clock
        self._store = state
        self._sleep = sleep
        self._state: Optional[InstagramState] = None
        self._sender: Optional[GraphApiSender] = None

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

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("instagram_webhook", __name__)

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
            return response.json({"status": "ok", "handled": handled})

        return webhook

    async def _handle(
        self, payload: Dict[str, Any], config: InstagramConfig, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> int:
        handled = 0
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
            except Exception:  # one failed turn must not lose the rest of the batch (Meta will not resend it)
                log.exception("instagram.message.failed")
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
            await self.state.shopper_wrote(message.sender_id)
            # Held messages first, then the reply: the shopper reads them in the order they were meant.
            await output.deliver_held(message.sender_id)
        except StateUnavailable:
            await self.state.forget(message.mid)  # nothing reached the conversation: let the redelivery in
            raise
        if isinstance(message, Unsupported):
            log.info("instagram.event.unsupported", reason=message.reason)
            await output.send_text_message(message.sender_id, UNSUPPORTED_REPLY)
            return False
        too_long = too_long_reply(len(text), get_settings().max_message_chars)
        if too_long is not None:
            log.info("instagram.message.too_long", chars=len(text))
            await output.send_text_message(message.sender_id, too_long)
            return False
        await on_new_message(
            UserMessage(text, output, message.sender_id, input_channel=self.name(), metadata=message.metadata)
        )
        return True

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
