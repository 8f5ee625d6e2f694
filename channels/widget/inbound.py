"""The website widget's input channel: socket.io on the Rasa server (connect, session_request,
user_uttered), sessions opened, resumed or moved to a signed-in customer, chats linked through
bot/identity, messages cleaned and handed to the conversation, and the widget's script served."""
from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Text, Tuple

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer
from socketio.exceptions import ConnectionRefusedError as SocketConnectionRefused

from bot import clock
from bot.db import Database
from bot.handoff import PendingReply, conversation_lines
from bot.identity import ChatOwner, chat_owner, chat_time_zone, link_chat_to_store_customer
from bot.log import get_logger
from bot.outbox.service import claim_outbox_for_chat, outbox_delivered
from bot.settings import Settings, get_settings
from bot.shared.session_opening import GREETING_MESSAGE, SESSION_OPENED
from bot.shared.text import EMPTY_MESSAGE_REPLY, clean_chat_text, too_long_reply
from channels.widget.config import (
    CHANNEL_NAME, CLIENT_MISSING, NOT_CONFIGURED, SOCKET_IO_CLIENT, SOCKETIO_PATH, WIDGET_SCRIPT,
)
from channels.handoff import ReplyDelivery, kept_for_a_person
from channels.widget.outbound import BOT_EVENT, WidgetOutput, text_message, transcript
from channels.widget.sessions import (
    CustomerClaim, conversation_of, customer_claim, device_hash, new_conversation_id, sign_session, valid_device_key,
    verify_session,
)

log = get_logger(__name__)
# One socket.io frame (or long-polling body) at most; a larger one closes the connection unread.
MAX_FRAME_BYTES = 64 * 1024
MAX_DISPLAY_CHARS = 200
INVALID_DEVICE_KEY = "invalid device key"
NO_SESSION = "no session: send session_request first"
INVALID_MESSAGE = "a message needs a 'message' text"
SERVER_ERROR = "the chat is unavailable right now; please try again in a moment"
ERROR_REPLY = "Sorry, something went wrong on my side. Please try again in a moment."


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
    time_zone: Any = None  # what the browser said its time zone is (checked before it is stored)


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
        # The team's replies to live handoffs (bot/handoff.py), pushed to the conversations whose sockets
        # this process holds; the others see them in the transcript on their next visit.
        self.replies = ReplyDelivery(CHANNEL_NAME, self.send_reply, only=self.open_conversations, database=database)

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

        @webhook.listener("after_server_start")
        async def start_replies(*_: Any) -> None:
            if self.enabled:
                self.replies.start()

        @webhook.listener("before_server_stop")
        async def stop_replies(*_: Any) -> None:
            await self.replies.stop()

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
            await self.on_session_request(sid, data, on_new_message)

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

    async def on_session_request(self, sid: str, data: Any, on_new_message: Optional[OnNewMessage] = None) -> None:
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
        state.time_zone = data.get("time_zone")
        if not opened.provisional:
            await self._remember_time_zone(opened.conversation_id, opened.customer_id, state.time_zone)
        if self.sockets.get(sid) is state:  # still connected
            await self._attach(sid, state, opened)
            if not opened.provisional:  # the shopper opened the widget: the outbox's messages for them now
                await self._deliver_outbox(opened.conversation_id)
            # Our widget asks for the greeting when it opens; a new conversation starts with it (a resumed one
            # already shows its transcript). rasa-webchat clients send their own initPayload instead.
            if data.get("greet") is True and not opened.resumed and not opened.provisional and on_new_message:
                await self._greet(opened.conversation_id, on_new_message)

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
        if await kept_for_a_person(CHANNEL_NAME, conversation_id, display[:MAX_DISPLAY_CHARS] or text,
                                   lambda reply: output.send_text_message(conversation_id, reply), self._database):
            return
        try:
            await on_new_message(UserMessage(text, output, conversation_id, input_channel=CHANNEL_NAME))
        except Exception:  # the shopper gets an answer even when a turn fails
            log.exception("widget.message.failed", conversation=conversation_id)
            await output.send_text_message(conversation_id, ERROR_REPLY)

    async def _greet(self, conversation_id: str, on_new_message: OnNewMessage) -> None:
        """The session's first turn, as if the shopper had said hi (actions/greeting.py answers it); the
        transcript leaves this message out (metadata SESSION_OPENED)."""
        assert self.sio is not None
        output = WidgetOutput(self.sio)
        try:
            await on_new_message(UserMessage(GREETING_MESSAGE, output, conversation_id, input_channel=CHANNEL_NAME,
                                             metadata={SESSION_OPENED: True}))
        except Exception:  # no greeting is better than a broken chat
            log.exception("widget.greeting.failed", conversation=conversation_id)

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
                await self._remember_time_zone(conversation_id, customer_id, state.time_zone)
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

    async def _remember_time_zone(self, conversation_id: str, customer_id: str, zone: Any) -> None:
        """A signed-in shopper's time zone, as their browser reports it, for the outbox's quiet hours; best
        effort: a guest's chat (no customer) or a store outage keeps the shop's zone for them."""
        if zone is None or not customer_id:
            return
        try:
            await asyncio.to_thread(chat_time_zone, CHANNEL_NAME, conversation_id, zone, database=self._database)
        except Exception:  # noqa: BLE001
            log.warning("widget.time_zone.not_recorded", conversation=conversation_id, exc_info=True)

    async def _deliver_outbox(self, conversation_id: str) -> int:
        """Proactive messages the outbox routed to the widget for this conversation's customer (bot/outbox/),
        shown now that the widget is open; best effort: a store outage leaves them for the next visit."""
        if self.sio is None:
            return 0
        try:
            claimed = await asyncio.to_thread(claim_outbox_for_chat, CHANNEL_NAME, conversation_id, clock.now(),
                                              database=self._database)
        except Exception:  # noqa: BLE001
            log.warning("widget.outbox.claim_failed", exc_info=True)
            return 0
        for delivery in claimed:
            await self.sio.emit(BOT_EVENT, text_message(delivery.text, list(delivery.buttons) or None),
                                room=conversation_id)
            try:
                await asyncio.to_thread(outbox_delivered, delivery.message_id, clock.now(), database=self._database)
            except Exception:  # noqa: BLE001 - shown; it stays "sent"
                log.warning("widget.outbox.mark_delivered_failed", message_id=delivery.message_id, exc_info=True)
            log.info("widget.outbox.delivered", message_id=delivery.message_id)
        return len(claimed)

    def open_conversations(self) -> List[str]:
        """The conversations with a socket in this process (their rooms)."""
        return sorted({state.conversation_id for state in self.sockets.values()
                       if state.conversation_id and not state.provisional})

    async def send_reply(self, reply: PendingReply) -> Optional[str]:
        """A person's reply to a live handoff, to every tab of the conversation."""
        if self.sio is None:
            return "the widget is not running"
        await self.sio.emit(BOT_EVENT, {"text": reply.text}, room=reply.recipient)
        return None

    async def history(self, conversation_id: str) -> List[Dict[str, Any]]:
        """The conversation's transcript from Rasa's tracker store, with what the shopper and the team said
        while a person had the conversation (the bot never saw it); [] without either."""
        try:
            handoff = await asyncio.to_thread(conversation_lines, CHANNEL_NAME, conversation_id, database=self._database)
        except Exception:
            log.warning("widget.history.handoff_unavailable", conversation=conversation_id, exc_info=True)
            handoff = []
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        store = getattr(agent, "tracker_store", None)
        events: List[Any] = []
        if store is not None:
            try:
                tracker = await store.retrieve_full_tracker(conversation_id)
                events = list(tracker.events) if tracker is not None else []
            except Exception:
                log.warning("widget.history.unavailable", conversation=conversation_id, exc_info=True)
        return transcript(events, extra=handoff)

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
