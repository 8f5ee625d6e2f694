"""The store's website widget: a socket.io input channel with server-issued, signed sessions, and the
widget's own script, at /webhooks/widget/ (socket.io itself at /socket.io, its default path).

Rasa 3.6's SocketIOInput is not used: it calls python-socketio 5's `enter_room` coroutine without
awaiting it (with session persistence, replies never arrive) and takes whatever `session_id` a client
puts in each message as the conversation — anyone who learns an id can read and write that chat.

Protocol (the default namespace; compatible with the rasa-webchat 1.0.1 widget):

  client → server
    connect           auth {device_key, customer_id?, customer_token?} from our widget; none from rasa-webchat
    session_request   {session_id: <token or null>, customData?: {customer_id, customer_token}}
    user_uttered      {message, customData?, display?}; a `session_id` field is ignored: the sender is
                      always the conversation the server attached to this socket
  server → client
    session_confirm   "<token>" — the client keeps it and sends it back in its next session_request
    session_history   [{sender: "user" | "bot", ...message}] — the transcript, after every session_confirm
                      of a session_request (our widget re-renders; rasa-webchat ignores unknown events);
                      after a provisional resume (below), only once the first message proved the customer
    bot_uttered       {text, quick_replies?} | {attachment: image | generic template}
    user_echo         {text} — a message typed in another tab of the same conversation
    session_error     {error} — refused: invalid customer token, no session yet, server trouble

Sessions: token = "<conversation id>.<signature>", the conversation id 32 random hex characters and the
signature HMAC-SHA256 over (conversation id, the store's customer id or "", a hash of the browser's
device key or "") with a key derived from WIDGET_SIGNING_SECRET. A missing, forged or copied token, or
one bound to another device or another shopper, starts a new conversation; never the old one.

Identity: the store may pass its customer id and customer_token = hex HMAC-SHA256(WIDGET_SIGNING_SECRET,
customer id) (as Intercom's user_hash). Valid: the conversation is linked to the customer with that
`external_id` (created when new to us) and its token bound to them. Invalid: session_error and nothing is
processed. None: a guest. Our widget sends them with every connect, so a shopper who signed out of the
store (or another one on the same browser) never resumes the signed-in conversation. A guest who signs in
keeps the conversation under a new token bound to them. A guest-bound token resumes its conversation
even when it got linked meanwhile (a one-time code typed in it): for a guest the token is the credential.

rasa-webchat sends neither a device key nor the customer at connect (1.0.1: only {session_id} in
session_request, customData only with user_uttered). For a guest-bound token the token alone is the
credential, as a session cookie is. A customer-bound token is not enough on its own (None means guest): a
socket without a device key that names no customer when it resumes one resumes it only provisionally —
session_confirm with the same token, but neither the transcript nor the conversation's room (other tabs'
replies and echoes). Its first user_uttered must carry customData proving that same customer; then the
socket joins the conversation, gets session_history and the message is processed in it. Without it (a
shopper who signed out, or a copied token), the socket gets a NEW guest conversation (session_confirm with
its token, session_history []) and the message is processed there; with another customer's, a new
conversation of theirs. Never the customer-bound one. An invalid customer token is refused as always.

Per process: which socket is in which conversation is kept in this process, as socket.io itself requires
(several Rasa processes need sticky sessions in front of socket.io).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Text, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer
from socketio.exceptions import ConnectionRefusedError as SocketConnectionRefused
from bot.db import Database
from bot.identity import ChatOwner, chat_owner, link_chat_to_store_customer
from bot.identity.customer_tokens import verify_customer_token
from bot.log import get_logger
from bot.settings import Settings, get_settings
from bot.shared.text import EMPTY_MESSAGE_REPLY, clean_chat_text, too_long_reply
from channels.render import ProductCard, card_button, product_cards

log = get_logger(__name__)

CHANNEL_NAME = "widget"
SOCKETIO_PATH = "/socket.io"
BOT_EVENT = "bot_uttered"
# One socket.io frame (or long-polling body) at most; a larger one closes the connection unread.
MAX_FRAME_BYTES = 64 * 1024
HISTORY_LIMIT = 200
MAX_DISPLAY_CHARS = 200

ASSETS_DIR = Path(__file__).resolve().parent / "widget_assets"
WIDGET_SCRIPT = ASSETS_DIR / "widget.js"
# Fetched by scripts/setup.sh from the npm registry (git-ignored).
VENDOR_DIR = ASSETS_DIR / "vendor"
SOCKET_IO_CLIENT = VENDOR_DIR / "socket.io.min.js"
RASA_WEBCHAT_BUNDLE = VENDOR_DIR / "rasa-webchat.js"

NOT_CONFIGURED = "the website widget is off: set WIDGET_SIGNING_SECRET to turn it on"
CLIENT_MISSING = "the socket.io client is not installed: run scripts/setup.sh"
INVALID_CUSTOMER_TOKEN = "invalid customer token"
INVALID_DEVICE_KEY = "invalid device key"
NO_SESSION = "no session: send session_request first"
INVALID_MESSAGE = "a message needs a 'message' text"
SERVER_ERROR = "the chat is unavailable right now; please try again in a moment"
ERROR_REPLY = "Sorry, something went wrong on my side. Please try again in a moment."

# -- signed sessions and customer tokens (pure functions) -------------------------------------------

SESSION_KEY_CONTEXT = b"rapport-widget-session"
DEVICE_HASH_CONTEXT = b"rapport-widget-device:"
_CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_DEVICE_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")
TOKEN_CHARS = 32 + 1 + 64
MAX_CUSTOMER_ID_CHARS = 64  # Customer.external_id


def session_key(secret: str) -> bytes:
    """The key of session signatures, derived from the secret: a session signature can never pass as a
    customer token (those are keyed with the secret itself), nor the reverse."""
    return hmac.new(secret.encode("utf-8"), SESSION_KEY_CONTEXT, hashlib.sha256).digest()


def new_conversation_id() -> str:
    return secrets.token_hex(16)


def device_hash(device_key: str) -> str:
    return hashlib.sha256(DEVICE_HASH_CONTEXT + device_key.encode("utf-8")).hexdigest()


def valid_device_key(value: Any) -> bool:
    return isinstance(value, str) and _DEVICE_KEY.fullmatch(value) is not None


def _binding(conversation_id: str, customer_id: Optional[str], device: Optional[str]) -> bytes:
    # Each field length-prefixed, so that no two different bindings are the same bytes.
    parts = (conversation_id, customer_id or "", device or "")
    return b"".join(b"%d:%s" % (len(part.encode("utf-8")), part.encode("utf-8")) for part in parts)


def sign_session(secret: str, conversation_id: str, customer_id: Optional[str] = None,
                 device: Optional[str] = None) -> str:
    """The token of a conversation bound to a store customer ("" or None: a guest) and a device hash."""
    signature = hmac.new(session_key(secret), _binding(conversation_id, customer_id, device), hashlib.sha256)
    return f"{conversation_id}.{signature.hexdigest()}"


def conversation_of(token: Any) -> Optional[str]:
    """The conversation id of a well-formed token; its signature is NOT checked here."""
    if not isinstance(token, str) or len(token) != TOKEN_CHARS:
        return None
    conversation_id, _, signature = token.partition(".")
    if _CONVERSATION_ID.fullmatch(conversation_id) and _HEX_SHA256.fullmatch(signature):
        return conversation_id
    return None


def verify_session(secret: str, token: Any, customer_id: Optional[str] = None,
                   device: Optional[str] = None) -> Optional[str]:
    """The conversation id if `token` was issued for exactly this customer and device, else None."""
    conversation_id = conversation_of(token)
    if conversation_id is None:
        return None
    expected = sign_session(secret, conversation_id, customer_id, device)
    return conversation_id if hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")) else None


@dataclass(frozen=True)
class CustomerClaim:
    """What a client said about its shopper: a verified store customer id, or why it was refused."""

    customer_id: Optional[str] = None
    error: Optional[str] = None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def store_customer_id(value: Any) -> Optional[str]:
    """The store's customer id as text (JSON numbers accepted), or None if it cannot be one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    # Taken as given (the token signs exactly these characters): no padding, no control characters.
    if not value or value != value.strip() or len(value) > MAX_CUSTOMER_ID_CHARS or not value.isprintable():
        return None
    return value


def customer_claim(secret: str, data: Any) -> Optional[CustomerClaim]:
    """None when `data` names no customer (a guest); else the verified id or the refusal."""
    if not isinstance(data, Mapping):
        return None
    raw_id, raw_token = data.get("customer_id"), data.get("customer_token")
    if _blank(raw_id) and _blank(raw_token):
        return None
    customer_id = store_customer_id(raw_id)
    if customer_id is None or not verify_customer_token(secret, customer_id, raw_token):
        return CustomerClaim(error=INVALID_CUSTOMER_TOKEN)
    return CustomerClaim(customer_id=customer_id)


# -- Rasa responses → widget messages (pure functions) -----------------------------------------------

_HTTP = ("https://", "http://")


def quick_replies(buttons: Any) -> List[Dict[str, str]]:
    """Rasa buttons as rasa-webchat quick replies: payload buttons and web_url links; others dropped."""
    replies: List[Dict[str, str]] = []
    for button in filter(None, map(card_button, buttons if isinstance(buttons, (list, tuple)) else [])):
        if button.url:
            replies.append({"content_type": "text", "type": "web_url", "title": button.title, "url": button.url})
        else:
            replies.append({"content_type": "text", "title": button.title, "payload": button.payload or ""})
    return replies


def text_message(text: Any, buttons: Any = None) -> Optional[Dict[str, Any]]:
    replies = quick_replies(buttons)
    body = text.strip() if isinstance(text, str) else ""
    if not body and not replies:
        return None
    message: Dict[str, Any] = {"text": body}
    if replies:
        message["quick_replies"] = replies
    return message


def image_message(url: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(url, str) or not url.startswith(_HTTP):
        return None
    return {"attachment": {"type": "image", "payload": {"src": url}}}


def _card(card: ProductCard) -> Dict[str, Any]:
    element: Dict[str, Any] = {"title": card.title}
    if card.subtitle:
        element["subtitle"] = card.subtitle
    if card.image_url:
        element["image_url"] = card.image_url
    element["buttons"] = [
        {"type": "web_url", "title": button.title, "url": button.url} if button.url
        else {"type": "postback", "title": button.title, "payload": button.payload}
        for button in card.buttons
    ]
    return element


def cards_message(elements: Any) -> Optional[Dict[str, Any]]:
    """Every product card in ONE generic-template message (Rasa's socket.io channel sends one per card)."""
    cards = product_cards(elements)
    if not cards:
        return None
    return {"attachment": {"type": "template", "payload": {"template_type": "generic",
                                                            "elements": [_card(card) for card in cards]}}}


def attachment_message(attachment: Any) -> Optional[Dict[str, Any]]:
    if isinstance(attachment, str):  # Rasa responses may give a bare URL
        return text_message(attachment) if attachment.startswith(_HTTP) else None
    if not isinstance(attachment, Mapping):
        return None
    payload = attachment.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    if attachment.get("type") == "image":
        return image_message(payload.get("src") or payload.get("url"))
    if attachment.get("type") == "template" and payload.get("template_type") == "generic":
        return cards_message(payload.get("elements"))
    return None


# What a `custom` response may carry to be shown as it is (after the same checks as any response).
CUSTOM_KEYS = frozenset({"text", "quick_replies", "buttons", "image", "attachment", "elements"})


def custom_messages(custom: Any) -> List[Dict[str, Any]]:
    if not isinstance(custom, Mapping) or not custom:
        return []
    if set(custom) <= CUSTOM_KEYS:
        return widget_messages(custom)
    fallback = text_message(custom.get("text"))
    log.info("widget.send.custom_unsupported", keys=sorted(str(key) for key in custom)[:10], fallback=bool(fallback))
    return [fallback] if fallback else []


def widget_messages(response: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """A Rasa bot response {text, buttons | quick_replies, custom, image, attachment, elements} as the
    messages the widget shows, in the order Rasa's OutputChannel.send_response sends them."""
    candidates: List[Optional[Dict[str, Any]]] = [
        text_message(response.get("text"), response.get("quick_replies") or response.get("buttons"))
    ]
    if "custom" in response:
        candidates.extend(custom_messages(response.get("custom")))
    candidates.append(image_message(response.get("image")))
    candidates.append(attachment_message(response.get("attachment")))
    candidates.append(cards_message(response.get("elements")))
    return [message for message in candidates if message]


def transcript(events: Iterable[Any], limit: int = HISTORY_LIMIT) -> List[Dict[str, Any]]:
    """A conversation's tracker events as the widget's transcript (the last `limit` entries). A button
    press is shown as the button's title, as the widget showed it when it was pressed."""
    titles: Dict[str, str] = {}
    entries: List[Dict[str, Any]] = []
    for event in events:
        if isinstance(event, UserUttered):
            text = (event.text or "").strip()
            if text:
                entries.append({"sender": "user", "text": titles.get(text, text)})
        elif isinstance(event, BotUttered):
            for message in widget_messages({**(event.data or {}), "text": event.text}):
                for reply in message.get("quick_replies", []):
                    if "payload" in reply:
                        titles[reply["payload"]] = reply["title"]
                entries.append({"sender": "bot", **message})
    return entries[-limit:]


# -- output -----------------------------------------------------------------------------------------


class WidgetOutput(OutputChannel):
    """Sends bot messages to every socket of a conversation (its room): all tabs see the replies."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(self, sio: AsyncServer) -> None:
        self.sio = sio

    async def _emit(self, recipient_id: Text, message: Optional[Dict[str, Any]]) -> None:
        if message:
            await self.sio.emit(BOT_EVENT, message, room=recipient_id)

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        for part in widget_messages(message):
            await self._emit(recipient_id, part)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, text_message(text))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self._emit(recipient_id, text_message(text, buttons))

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self._emit(recipient_id, text_message(text, quick_replies))

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, image_message(image))

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:  # type: ignore[override]
        await self._emit(recipient_id, attachment_message(attachment))

    async def send_elements(self, recipient_id: Text, elements: Iterable[Dict[Text, Any]], **kwargs: Any) -> None:
        await self._emit(recipient_id, cards_message(list(elements)))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        for part in custom_messages(json_message):
            await self._emit(recipient_id, part)


# -- the input channel --------------------------------------------------------------------------------


@dataclass
class SocketSession:
    """What the server knows about one connected socket."""

    device: Optional[str]  # hash of the browser's device key; None: a client without one (rasa-webchat)
    claim: Optional[str] = None  # verified store customer id; "" = a guest said so; None = nothing said
    refusal: Optional[str] = None  # set: every request of this socket is refused with it
    conversation_id: Optional[str] = None
    customer_id: str = ""  # the store customer the session token is bound to ("" a guest)
    # Resumed a customer-bound token without naming the customer (rasa-webchat): not in the conversation's
    # room yet; the first message must prove that customer, or the socket gets a new guest conversation.
    provisional: bool = False


@dataclass(frozen=True)
class OpenedSession:
    conversation_id: str
    token: str
    customer_id: str
    resumed: bool
    provisional: bool = False  # see SocketSession.provisional


@dataclass(frozen=True)
class Asset:
    body: bytes
    etag: str
    stamp: Tuple[int, int]


OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class WidgetInput(InputChannel):
    """The website widget's channel; see the module docstring."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "WidgetInput":
        # The secret comes from the environment (bot.settings), never from credentials.yml.
        return cls()

    def __init__(self, settings: Optional[Settings] = None, database: Optional[Database] = None) -> None:
        self._settings = settings
        self._database = database
        self.sio: Optional[AsyncServer] = None
        self.sockets: Dict[str, SocketSession] = {}
        self._app: Any = None
        self._assets: Dict[Path, Asset] = {}

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.widget_signing_secret)

    @property
    def secret(self) -> str:
        secret = self.settings.widget_signing_secret
        if not secret:
            raise RuntimeError(NOT_CONFIGURED)
        return secret

    def get_output_channel(self) -> Optional[OutputChannel]:
        return WidgetOutput(self.sio) if self.sio is not None else None

    # -- HTTP ---------------------------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        origins = list(self.settings.widget_allowed_origins)
        sio = AsyncServer(
            async_mode="sanic",
            # The signed session is the authentication; WIDGET_ALLOWED_ORIGINS only narrows who may embed.
            cors_allowed_origins=origins or "*",
            max_http_buffer_size=MAX_FRAME_BYTES,
            logger=False,
            engineio_logger=False,
        )
        self.sio = sio
        webhook = SocketBlueprint(sio, SOCKETIO_PATH, "widget_webhook", __name__)

        @webhook.listener("before_server_start")
        async def remember_app(app: Any, _loop: Any) -> None:
            self._app = app  # its ctx.agent (set by Rasa) holds the tracker store the history comes from
            log.info("widget.channel." + ("enabled" if self.enabled else "disabled"),
                     socket_io_client=SOCKET_IO_CLIENT.is_file())

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            if not self.enabled:
                return response.json({"error": NOT_CONFIGURED}, status=503)
            return response.json({"status": "ok"})

        @webhook.route("/widget.js", methods=["GET"])
        async def widget_script(request: Request) -> HTTPResponse:
            return self.asset_response(request, WIDGET_SCRIPT, max_age=300)

        @webhook.route("/socket.io.min.js", methods=["GET"])
        async def socket_io_client(request: Request) -> HTTPResponse:
            return self.asset_response(request, SOCKET_IO_CLIENT, max_age=86400)

        @sio.on("connect")
        async def connect(sid: str, _environ: Dict[str, Any], auth: Any = None) -> bool:
            return self.on_connect(sid, auth)

        @sio.on("disconnect")
        async def disconnect(sid: str, *_reason: Any) -> None:
            self.sockets.pop(sid, None)

        @sio.on("session_request")
        async def session_request(sid: str, data: Any = None) -> None:
            await self.on_session_request(sid, data)

        @sio.on("user_uttered")
        async def user_uttered(sid: str, data: Any = None) -> None:
            await self.on_user_uttered(sid, data, on_new_message)

        return webhook

    def asset_response(self, request: Request, path: Path, max_age: int) -> HTTPResponse:
        if not self.enabled:
            return response.json({"error": NOT_CONFIGURED}, status=503)
        asset = self._asset(path)
        if asset is None:
            log.warning("widget.asset.missing", path=str(path))
            return response.json({"error": CLIENT_MISSING}, status=503)
        headers = {
            "Cache-Control": f"public, max-age={max_age}",
            "ETag": asset.etag,
            "X-Content-Type-Options": "nosniff",
            # Store pages load it from another origin; let pages that isolate themselves (COEP) do so too.
            "Cross-Origin-Resource-Policy": "cross-origin",
            "Access-Control-Allow-Origin": "*",
        }
        if asset.etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            return response.empty(status=304, headers=headers)
        return response.raw(asset.body, content_type="application/javascript; charset=utf-8", headers=headers)

    def _asset(self, path: Path) -> Optional[Asset]:
        try:
            status = path.stat()
        except OSError:
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        cached = self._assets.get(path)
        if cached is None or cached.stamp != stamp:
            body = path.read_bytes()
            cached = Asset(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', stamp)
            self._assets[path] = cached
        return cached

    # -- socket events --------------------------------------------------------------------------------

    def on_connect(self, sid: str, auth: Any) -> bool:
        if not self.enabled:
            log.info("widget.connect.refused", reason="widget_off")
            raise SocketConnectionRefused(NOT_CONFIGURED, {"error": NOT_CONFIGURED})  # message, data
        auth = auth if isinstance(auth, Mapping) else {}
        device_key = auth.get("device_key")
        state = SocketSession(device=device_hash(device_key) if valid_device_key(device_key) else None)
        if device_key is not None and state.device is None:
            state.refusal = INVALID_DEVICE_KEY
        claim = customer_claim(self.secret, auth)
        if claim is not None and claim.error:
            state.refusal = claim.error
        elif claim is not None:
            state.claim = claim.customer_id
        elif state.device is not None:
            state.claim = ""  # our widget names the shopper at every connect: naming none means a guest
        if state.refusal:
            log.info("widget.connect.refused_identity", reason=state.refusal)
        self.sockets[sid] = state
        return True

    async def on_session_request(self, sid: str, data: Any) -> None:
        state = self.sockets.get(sid)
        if state is None:
            return
        data = data if isinstance(data, Mapping) else {}
        if state.claim is None and state.refusal is None:
            claim = customer_claim(self.secret, data.get("customData"))
            if claim is not None:
                state.refusal, state.claim = claim.error, claim.customer_id
        if state.refusal:
            await self._refuse(sid, state.refusal)
            return
        try:
            opened = await self.open_session(state, data.get("session_id"))
        except Exception:
            log.exception("widget.session.failed")
            await self._refuse(sid, SERVER_ERROR)
            return
        if self.sockets.get(sid) is state:  # still connected
            await self._attach(sid, state, opened)

    async def on_user_uttered(self, sid: str, data: Any, on_new_message: OnNewMessage) -> None:
        state = self.sockets.get(sid)
        if state is None:
            return
        if state.refusal:
            await self._refuse(sid, state.refusal)
            return
        if state.conversation_id is None:
            log.info("widget.message.refused", reason="no_session")
            await self._refuse(sid, NO_SESSION)
            return
        data = data if isinstance(data, Mapping) else {}
        raw = data.get("message")
        if not isinstance(raw, str):
            await self._refuse(sid, INVALID_MESSAGE)
            return
        claim = customer_claim(self.secret, data.get("customData"))
        if claim is not None and claim.error:
            log.info("widget.message.refused", reason="invalid_customer_token", conversation=state.conversation_id)
            await self._refuse(sid, claim.error)
            return
        try:
            if state.provisional:
                await self._settle_provisional(sid, state, claim)
            elif claim is not None and claim.customer_id != state.customer_id:
                await self._change_customer(sid, state, claim.customer_id or "")
        except Exception:
            log.exception("widget.session.failed", conversation=state.conversation_id)
            await self._refuse(sid, SERVER_ERROR)
            return
        if state.conversation_id is None:  # a concurrent message is still moving the socket on
            await self._refuse(sid, NO_SESSION)
            return

        text = clean_chat_text(raw)
        limit = self.settings.max_message_chars
        if not text:
            await self._reply_to_socket(sid, EMPTY_MESSAGE_REPLY)
            return
        too_long = too_long_reply(len(text), limit)
        if too_long is not None:
            log.info("widget.message.too_long", conversation=state.conversation_id, chars=len(text))
            await self._reply_to_socket(sid, too_long)
            return
        conversation_id = state.conversation_id
        assert conversation_id is not None and self.sio is not None
        display = clean_chat_text(data.get("display")) if isinstance(data.get("display"), str) else ""
        await self.sio.emit("user_echo", {"text": display[:MAX_DISPLAY_CHARS] or text}, room=conversation_id, skip_sid=sid)
        output = WidgetOutput(self.sio)
        try:
            await on_new_message(UserMessage(text, output, conversation_id, input_channel=CHANNEL_NAME))
        except Exception:  # the shopper gets an answer even when a turn fails
            log.exception("widget.message.failed", conversation=conversation_id)
            await output.send_text_message(conversation_id, ERROR_REPLY)

    # -- sessions ---------------------------------------------------------------------------------

    async def open_session(self, state: SocketSession, token: Any) -> OpenedSession:
        """The conversation `token` proves this socket may continue, or a new one."""
        conversation_id = conversation_of(token)
        if conversation_id is not None:
            resumed = await self._resume(state, token, conversation_id)
            if resumed is not None:
                return resumed
        elif token is not None:
            log.info("widget.session.refused", reason="malformed_token")
        return await self._start(state)

    async def _resume(self, state: SocketSession, token: str, conversation_id: str) -> Optional[OpenedSession]:
        linked = await self._linked(conversation_id)
        # A customer-bound session of this conversation must name the store customer ("" when the customer
        # has no store id).
        owner = (linked.store_id or "") if linked is not None else ""
        if state.claim is not None:
            bindings = [state.claim]
        else:  # a client that names nobody at connect (rasa-webchat): the conversation's own customer
            bindings = sorted({"", owner})
        for binding in bindings:
            if verify_session(self.secret, token, binding, state.device) is None:
                continue
            if binding and binding != owner:
                # Bound to a customer the conversation no longer belongs to (erased, say): not theirs.
                log.info("widget.session.refused", reason="conversation_of_another_customer",
                         conversation=conversation_id)
                return None
            if binding and state.claim is None:
                # rasa-webchat names the customer only with its messages: the first one must prove them.
                log.info("widget.session.provisional", conversation=conversation_id)
                return OpenedSession(conversation_id, token, binding, resumed=True, provisional=True)
            log.info("widget.session.resumed", conversation=conversation_id, customer=bool(binding))
            return OpenedSession(conversation_id, token, binding, resumed=True)
        unlinked_or_theirs = linked is None or linked.store_id == state.claim
        if state.claim and unlinked_or_theirs and verify_session(self.secret, token, "", state.device):
            # A guest's conversation whose shopper has signed in to the store since: kept, and theirs now.
            await self._link(conversation_id, state.claim)
            log.info("widget.session.upgraded", conversation=conversation_id)
            return OpenedSession(conversation_id, sign_session(self.secret, conversation_id, state.claim, state.device),
                                 state.claim, resumed=True)
        log.info("widget.session.refused", reason="signature_does_not_match", conversation=conversation_id,
                 device_key=state.device is not None, customer=bool(state.claim))
        return None

    async def _start(self, state: SocketSession) -> OpenedSession:
        conversation_id = new_conversation_id()
        customer_id = state.claim or ""
        if customer_id:
            await self._link(conversation_id, customer_id)
        log.info("widget.session.issued", conversation=conversation_id, customer=bool(customer_id),
                 device_key=state.device is not None)
        return OpenedSession(conversation_id, sign_session(self.secret, conversation_id, customer_id, state.device),
                             customer_id, resumed=False)

    async def _change_customer(self, sid: str, state: SocketSession, customer_id: str) -> None:
        """A message names another shopper than the session's (rasa-webchat sends the store's customer
        only with messages): a guest conversation becomes theirs, another shopper's is left for a new one."""
        state.claim = customer_id
        conversation_id = state.conversation_id
        assert conversation_id is not None and self.sio is not None
        if state.customer_id == "" and customer_id:
            linked = await self._linked(conversation_id)
            if linked is None or linked.store_id == customer_id:
                await self._link(conversation_id, customer_id)
                state.customer_id = customer_id
                log.info("widget.session.upgraded", conversation=conversation_id)
                await self.sio.emit("session_confirm", sign_session(self.secret, conversation_id, customer_id, state.device), to=sid)
                return
        await self._attach(sid, state, await self._start(state))

    async def _settle_provisional(self, sid: str, state: SocketSession, claim: Optional[CustomerClaim]) -> None:
        """The first message after a provisional resume: it proves the conversation's customer, and the
        socket joins the conversation; or it does not, and the socket gets a new conversation (a guest's,
        or that of the customer it does prove), never the customer-bound one."""
        assert self.sio is not None and state.conversation_id is not None
        conversation_id = state.conversation_id
        state.provisional = False
        if claim is not None and claim.customer_id == state.customer_id:
            state.claim = claim.customer_id
            await self.sio.enter_room(sid, conversation_id)
            log.info("widget.session.resumed", conversation=conversation_id, customer=True, proven="message")
            await self.sio.emit("session_history", await self.history(conversation_id), to=sid)
            return
        # Detached at once: a message arriving meanwhile is refused, not processed in the customer's chat.
        state.conversation_id, state.customer_id = None, ""
        log.info("widget.session.refused", reason="customer_not_proven", conversation=conversation_id,
                 other_customer=claim is not None)
        if claim is not None:
            state.claim = claim.customer_id
        await self._attach(sid, state, await self._start(state))

    async def _attach(self, sid: str, state: SocketSession, opened: OpenedSession) -> None:
        """Put the socket in its conversation's room, confirm the session and send the transcript; a
        provisional session gets only the confirmation (see SocketSession.provisional)."""
        assert self.sio is not None
        joined = state.conversation_id if not state.provisional else None
        if joined and (joined != opened.conversation_id or opened.provisional):
            await self.sio.leave_room(sid, joined)
        if not opened.provisional:
            await self.sio.enter_room(sid, opened.conversation_id)
        state.conversation_id, state.customer_id = opened.conversation_id, opened.customer_id
        state.provisional = opened.provisional
        await self.sio.emit("session_confirm", opened.token, to=sid)
        if opened.provisional:
            return
        history = await self.history(opened.conversation_id) if opened.resumed else []
        await self.sio.emit("session_history", history, to=sid)

    async def history(self, conversation_id: str) -> List[Dict[str, Any]]:
        """The conversation's transcript from Rasa's tracker store; [] without one."""
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        store = getattr(agent, "tracker_store", None)
        if store is None:
            return []
        try:
            tracker = await store.retrieve_full_tracker(conversation_id)
        except Exception:
            log.warning("widget.history.unavailable", conversation=conversation_id, exc_info=True)
            return []
        return transcript(tracker.events) if tracker is not None else []

    async def _linked(self, conversation_id: str) -> Optional[ChatOwner]:
        try:
            return await asyncio.to_thread(chat_owner, CHANNEL_NAME, conversation_id, database=self._database)
        except Exception:
            # Unknown owner: only a guest-bound token can resume, so nothing of a customer's is exposed.
            log.warning("widget.customer.lookup_failed", conversation=conversation_id, exc_info=True)
            return None

    async def _link(self, conversation_id: str, store_id: str) -> None:
        await asyncio.to_thread(link_chat_to_store_customer, CHANNEL_NAME, conversation_id, store_id,
                                database=self._database)
        log.info("widget.customer.linked", conversation=conversation_id)

    async def _refuse(self, sid: str, error: str) -> None:
        assert self.sio is not None
        await self.sio.emit("session_error", {"error": error}, to=sid)

    async def _reply_to_socket(self, sid: str, text: str) -> None:
        assert self.sio is not None
        await self.sio.emit(BOT_EVENT, {"text": text}, to=sid)


def widget_status(settings: Settings) -> str:
    """One line for `make run`: is the widget on, and where is its script."""
    if not settings.widget_signing_secret:
        return "widget: off — set WIDGET_SIGNING_SECRET"
    script = f"http://localhost:{settings.rasa_port}/webhooks/widget/widget.js"
    if not SOCKET_IO_CLIENT.is_file():
        return f"widget: on — script {script} (but {CLIENT_MISSING})"
    return f"widget: on — script {script}"
