"""Instagram DMs: a Rasa input channel at /webhooks/instagram/webhook and an aiohttp sender to the Graph API.

Rasa 3.6 has no Instagram channel, and its Facebook channel (the nearest) ignores `X-Hub-Signature-256`,
answers 200 to forged requests and handles only the first event of a batch. This one:

- GET: Meta's verification handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`); 403 otherwise.
- POST: `X-Hub-Signature-256` must be `sha256=` + HMAC-SHA256(app secret, raw body) (constant-time compare);
  a bad or missing signature is a 403 and nothing is processed. Bodies over 1 MB are a 413. Malformed JSON or
  an object other than "instagram" gets a 200 (Meta retries anything else, for days) and a log line.
- Every entry and every messaging event of a batch is handled, in order. Echoes of our own messages (with or
  without attachments), reads, reactions, deleted messages and messages the bot cannot use (stickers, voice,
  video, shares, story replies without text) are ignored. Quick replies and postbacks become their payload;
  an image becomes the text "/photo" with metadata {"image_url": ...}.
- A message id (`mid`) is processed once: Meta redelivers on timeouts. The ids are kept in a bounded
  in-memory LRU (`RECENT_MIDS`, per process): a redelivery after that many newer messages, or after a
  restart, or to another worker, is not caught. Move it to Redis for several workers.
- Replies go through the Instagram API with Instagram Login, `POST {INSTAGRAM_API_BASE}/me/messages` with
  the access token as a bearer header. Text is split at 1000 UTF-8 bytes; up to 13 buttons become quick
  replies (titles cut to 20 characters), more become a numbered text list; images are image attachments;
  product cards a generic template when Instagram can show them, text otherwise.
- Meta lets a business answer only within 24 hours of the shopper's last message. The time of each
  shopper's last message is kept in memory (bounded LRU, per process; lost on restart, so after a restart the
  bot sends nothing until the shopper writes again). A message outside the window is not sent: it is kept
  in `InstagramState.pending` (in memory, bounded, oldest dropped first) and logged, for a person or a
  later job to follow up. The 7-day HUMAN_AGENT tag is not used.

Configuration (bot.settings): INSTAGRAM_APP_SECRET, INSTAGRAM_VERIFY_TOKEN, INSTAGRAM_ACCESS_TOKEN and
INSTAGRAM_API_BASE. Without the three secrets the webhook answers 503 and processes nothing.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Text

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.log import get_logger
from bot.settings import get_settings
from channels.render import numbered_options, split_text, utf8_length

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
RECENT_MIDS = 10_000
KNOWN_SENDERS = 100_000
PENDING_MAX = 1_000
SEND_TIMEOUT_SECONDS = 15

Clock = Callable[[], float]


@dataclass(frozen=True)
class InstagramConfig:
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    access_token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE


def config_from_settings() -> Optional[InstagramConfig]:
    """The channel's configuration, or None while any of its secrets is unset (channel off)."""
    settings = get_settings()
    secret = getattr(settings, "instagram_app_secret", None)
    verify = getattr(settings, "instagram_verify_token", None)
    token = getattr(settings, "instagram_access_token", None)
    if not (secret and verify and token):
        return None
    base = getattr(settings, "instagram_api_base", None) or DEFAULT_API_BASE
    return InstagramConfig(secret, verify, token, base.rstrip("/"))


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


@dataclass(frozen=True)
class Ignored:
    reason: str
    mid: Optional[str] = None


def parse_event(event: Any) -> "Incoming | Ignored":
    """One element of `entry[].messaging[]` → a message for the bot, or why it is ignored."""
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
            return Incoming(sender_id, payload.strip(), mid)
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
        return Ignored("unsupported", mid)
    quick_reply = message.get("quick_reply")
    if isinstance(quick_reply, dict):
        payload = quick_reply.get("payload")
        if isinstance(payload, str) and payload.strip():
            return Incoming(sender_id, payload.strip(), mid)
    text = message.get("text")
    if isinstance(text, str) and text.strip():
        return Incoming(sender_id, text.strip(), mid)
    images = _image_urls(message.get("attachments"))
    if images:
        metadata: Dict[str, Any] = {"image_url": images[0]}
        if len(images) > 1:
            metadata["image_urls"] = images
        return Incoming(sender_id, "/photo", mid, metadata)
    return Ignored("unsupported_message", mid)


def _mid(container: Dict[str, Any]) -> Optional[str]:
    mid = container.get("mid")
    return mid if isinstance(mid, str) and mid else None


def _image_urls(attachments: Any) -> List[str]:
    if not isinstance(attachments, list):
        return []
    urls = []
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("type") != "image":
            continue
        payload = attachment.get("payload")
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


class BoundedLRU:
    """A dict that forgets its least recently used keys past `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: "OrderedDict[str, Any]" = OrderedDict()

    def get(self, key: str) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: str, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Pending:
    recipient_id: str
    message: Dict[str, Any]
    created_at: float


class InstagramState:
    """What the channel remembers in this process: processed message ids, each shopper's last message
    time (for the 24-hour window) and the replies held back outside it."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self.recent_mids = BoundedLRU(RECENT_MIDS)
        self.last_message_at = BoundedLRU(KNOWN_SENDERS)
        self.pending: Deque[Pending] = deque(maxlen=PENDING_MAX)

    def first_time(self, mid: Optional[str]) -> bool:
        """True the first time a message id is seen (messages without an id are always new)."""
        if mid is None:
            return True
        if mid in self.recent_mids:
            return False
        self.recent_mids.put(mid, True)
        return True

    def shopper_wrote(self, sender_id: str) -> None:
        self.last_message_at.put(sender_id, self.clock())

    def within_window(self, recipient_id: str) -> bool:
        last = self.last_message_at.get(recipient_id)
        return last is not None and self.clock() - last <= REPLY_WINDOW_SECONDS


# ---------------------------------------------------------------- outgoing


class GraphApiSender:
    """POSTs messages to the Instagram Graph API with one aiohttp session, made in the running loop."""

    def __init__(self, config: InstagramConfig) -> None:
        self.config = config
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def url(self) -> str:
        return f"{self.config.api_base}/me/messages"

    async def send(self, recipient_id: str, message: Dict[str, Any]) -> bool:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS))
        body = {"recipient": {"id": recipient_id}, "message": message}
        headers = {"Authorization": f"Bearer {self.config.access_token}"}
        try:
            async with self._session.post(self.url, json=body, headers=headers) as reply:
                if reply.status >= 400:
                    detail = (await reply.text())[:500]
                    log.warning("instagram.send.failed", status=reply.status, detail=detail)
                    return False
                return True
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            log.warning("instagram.send.failed", error=type(error).__name__)
            return False
        except Exception as error:  # noqa: BLE001 - a failed send must not end the conversation turn
            log.warning("instagram.send.failed", error=type(error).__name__)
            return False

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _truncate(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quick_replies_for(buttons: Sequence[Dict[str, Any]]) -> Optional[List[Dict[str, str]]]:
    """Rasa buttons → Instagram quick replies, or None when Instagram cannot show them as such."""
    if not buttons or len(buttons) > QUICK_REPLIES_MAX:
        return None
    replies = []
    for button in buttons:
        title = str(button.get("title") or "").strip()
        payload = str(button.get("payload") or title).strip()
        if not title or not payload or len(payload) > QUICK_REPLY_PAYLOAD_MAX:
            return None
        replies.append({"content_type": "text", "title": _truncate(title, QUICK_REPLY_TITLE_MAX), "payload": payload})
    return replies


def generic_template_for(elements: Sequence[Any]) -> Optional[Dict[str, Any]]:
    """Product cards → a generic template when every card fits Instagram's limits, else None."""
    if not elements or len(elements) > TEMPLATE_ELEMENTS_MAX:
        return None
    cards = []
    for element in elements:
        if not isinstance(element, dict):
            return None
        title = element.get("title")
        subtitle = element.get("subtitle")
        image_url = element.get("image_url")
        buttons = element.get("buttons") or []
        if not isinstance(title, str) or not title.strip() or len(title) > TEMPLATE_TEXT_MAX:
            return None
        if subtitle is not None and (not isinstance(subtitle, str) or len(subtitle) > TEMPLATE_TEXT_MAX):
            return None
        if image_url is not None and not (isinstance(image_url, str) and image_url.startswith("https://")):
            return None
        if not isinstance(buttons, list) or len(buttons) > TEMPLATE_BUTTONS_MAX:
            return None
        card: Dict[str, Any] = {"title": title.strip()}
        if subtitle:
            card["subtitle"] = subtitle
        if image_url:
            card["image_url"] = image_url
        converted = []
        for button in buttons:
            converted_button = _template_button(button)
            if converted_button is None:
                return None
            converted.append(converted_button)
        if converted:
            card["buttons"] = converted
        cards.append(card)
    return {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": cards}}}


def _template_button(button: Any) -> Optional[Dict[str, str]]:
    if not isinstance(button, dict):
        return None
    title = button.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > QUICK_REPLY_TITLE_MAX:
        return None
    url = button.get("url")
    if button.get("type") == "web_url" or (url and not button.get("payload")):
        if isinstance(url, str) and url.startswith("https://"):
            return {"type": "web_url", "url": url, "title": title}
        return None
    payload = button.get("payload")
    if isinstance(payload, str) and payload and len(payload) <= QUICK_REPLY_PAYLOAD_MAX:
        return {"type": "postback", "payload": payload, "title": title}
    return None


def cards_as_text(elements: Sequence[Any]) -> str:
    lines = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        line = str(element.get("title") or "").strip()
        if element.get("subtitle"):
            line = f"{line} — {str(element['subtitle']).strip()}" if line else str(element["subtitle"]).strip()
        links = [b.get("url") for b in element.get("buttons") or [] if isinstance(b, dict) and b.get("url")]
        if links:
            line = f"{line} {links[0]}"
        if line:
            lines.append(f"• {line}")
    return "\n".join(lines)


class InstagramOutput(OutputChannel):
    """Renders Rasa responses as Instagram messages; sends only inside the 24-hour window."""

    @classmethod
    def name(cls) -> Text:
        return "instagram"

    def __init__(self, sender: GraphApiSender, state: InstagramState) -> None:
        self.sender = sender
        self.state = state

    async def _deliver(self, recipient_id: str, messages: List[Dict[str, Any]]) -> None:
        for message in messages:
            if not self.state.within_window(recipient_id):
                self.state.pending.append(Pending(recipient_id, message, self.state.clock()))
                log.info(
                    "instagram.reply.held_outside_window",
                    recipient_chars=len(recipient_id),
                    pending=len(self.state.pending),
                )
                continue
            await self.sender.send(recipient_id, message)

    @staticmethod
    def _texts(text: str) -> List[Dict[str, Any]]:
        return [{"text": part} for part in split_text(text, TEXT_MAX_BYTES, measure=utf8_length)]

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, self._texts(text))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        replies = quick_replies_for(buttons)
        if replies is None:
            await self._deliver(recipient_id, self._texts(numbered_options(text, buttons)))
            return
        messages = self._texts(text) or [{"text": "Choose one:"}]
        messages[-1]["quick_replies"] = replies  # quick replies belong to the last part
        await self._deliver(recipient_id, messages)

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, [{"attachment": {"type": "image", "payload": {"url": image}}}])

    async def send_elements(self, recipient_id: Text, elements: Iterable[Any], **kwargs: Any) -> None:
        elements = list(elements)
        template = generic_template_for(elements)
        if template is not None:
            await self._deliver(recipient_id, [template])
        else:
            await self._deliver(recipient_id, self._texts(cards_as_text(elements)))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        # A custom response is an Instagram `message` object, sent as it is.
        if isinstance(json_message, dict) and json_message:
            await self._deliver(recipient_id, [json_message])

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        if isinstance(attachment, dict):
            await self._deliver(recipient_id, [{"attachment": attachment}])
        elif isinstance(attachment, str) and attachment.startswith("https://"):
            await self.send_image_url(recipient_id, attachment)


# ---------------------------------------------------------------- input channel


class InstagramInput(InputChannel):
    """Instagram DMs at /webhooks/instagram/webhook. Configured from the environment (bot.settings);
    credentials.yml only enables it: `channels.instagram.InstagramInput: {}`."""

    @classmethod
    def name(cls) -> Text:
        return "instagram"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls()

    def __init__(self, config: Optional[InstagramConfig] = None, clock: Clock = time.time) -> None:
        self._config = config
        self.state = InstagramState(clock)
        self._sender: Optional[GraphApiSender] = None

    def config(self) -> Optional[InstagramConfig]:
        return self._config or config_from_settings()

    def sender(self, config: InstagramConfig) -> GraphApiSender:
        if self._sender is None or self._sender.config != config:
            self._sender = GraphApiSender(config)
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
            handled = await self._handle(payload, config, on_new_message)
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
            if not self.state.first_time(parsed.mid):
                log.info("instagram.event.duplicate")
                continue
            self.state.shopper_wrote(parsed.sender_id)
            output = InstagramOutput(self.sender(config), self.state)
            try:
                await on_new_message(
                    UserMessage(
                        parsed.text,
                        output,
                        parsed.sender_id,
                        input_channel=self.name(),
                        metadata=parsed.metadata,
                    )
                )
                handled += 1
            except Exception:  # one failed turn must not lose the rest of the batch (Meta will not resend it)
                log.exception("instagram.message.failed")
        return handled
