"""The website widget's channel (channels/widget/): signed sessions and customer tokens as pure functions,
the rendering of bot responses, and the socket.io protocol through a real Sanic server (registered the way
`rasa run` registers channels) with python-socketio's client. The conversation is replaced by an agent that
echoes each message through the message's output channel and keeps a tracker for the history."""
from __future__ import annotations

import asyncio
import hmac
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Tuple

import aiohttp
import pytest
import socketio
from rasa.core.channels.channel import UserMessage, register
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic
from sqlalchemy import select

import channels.widget.inbound as widget
from bot.db import Database
from bot.identity import create_customer, customer_for_sender, link_identity
from bot.identity.customer_tokens import customer_token, verify_customer_token
from bot.models import Customer
from bot.processes import free_port
from bot.settings import Settings
from channels.widget.config import NOT_CONFIGURED, widget_status
from channels.widget.inbound import NO_SESSION, WidgetInput
from channels.widget.outbound import transcript, widget_messages
from channels.widget.sessions import (
    INVALID_CUSTOMER_TOKEN, CustomerClaim, conversation_of, customer_claim, device_hash, new_conversation_id,
    sign_session, verify_session,
)

SECRET = "widget-signing-secret-for-tests"
DEVICE_A = "a" * 20 + "device-key-A_0123456789"
DEVICE_B = "b" * 20 + "device-key-B_0123456789"
WAIT_SECONDS = 15.0


# -- sessions and customer tokens ------------------------------------------------------------------------


def test_a_session_token_is_the_conversation_id_and_its_signature() -> None:
    conversation_id = new_conversation_id()
    token = sign_session(SECRET, conversation_id, "store-42", device_hash(DEVICE_A))
    head, _, signature = token.partition(".")
    assert head == conversation_id and len(conversation_id) == 32 and len(signature) == 64
    assert verify_session(SECRET, token, "store-42", device_hash(DEVICE_A)) == conversation_id
    assert new_conversation_id() != conversation_id


def test_a_guest_token_without_a_device_verifies_as_such() -> None:
    conversation_id = new_conversation_id()
    token = sign_session(SECRET, conversation_id)
    assert verify_session(SECRET, token) == conversation_id
    assert verify_session(SECRET, token, "", None) == conversation_id


def _flip(character: str) -> str:
    return "0" if character != "0" else "1"


def test_tampered_forged_or_rebound_tokens_are_refused() -> None:
    conversation_id = new_conversation_id()
    device = device_hash(DEVICE_A)
    token = sign_session(SECRET, conversation_id, "store-42", device)
    other_conversation = _flip(token[0]) + token[1:]
    other_signature = token[:-1] + _flip(token[-1])
    assert verify_session(SECRET, other_conversation, "store-42", device) is None
    assert verify_session(SECRET, other_signature, "store-42", device) is None
    assert verify_session(SECRET, token, "store-42", device_hash(DEVICE_B)) is None  # another browser
    assert verify_session(SECRET, token, "store-42", None) is None  # copied without its device key
    assert verify_session(SECRET, token, "store-43", device) is None  # another shopper
    assert verify_session(SECRET, token, "", device) is None  # the shopper signed out
    assert verify_session("another-secret", token, "store-42", device) is None
    # A token for someone else's conversation cannot be made without the secret.
    assert verify_session(SECRET, f"{conversation_id}.{'0' * 64}", "store-42", device) is None


def test_the_signature_binds_the_fields_unambiguously() -> None:
    conversation_id = new_conversation_id()
    # Moving characters from one field into the next must not give the same signature.
    assert sign_session(SECRET, conversation_id, "ab", "c") != sign_session(SECRET, conversation_id, "a", "bc")
    assert sign_session(SECRET, conversation_id, "", "x") != sign_session(SECRET, conversation_id, "x", "")


@pytest.mark.parametrize("garbage", [
    None, 42, "", ".", "not a token", "0" * 97, "g" * 32 + "." + "0" * 64, "0" * 32 + "." + "0" * 63,
    "0" * 32 + "." + "0" * 65, "A" * 32 + "." + "0" * 64, "0" * 32 + ":" + "0" * 64,
    "0" * 32 + "." + "Z" * 64, "\u00e9" * 97, ["0" * 32, "0" * 64], {"session_id": "x"},
])
def test_garbage_is_no_token(garbage: Any) -> None:
    assert conversation_of(garbage) is None
    assert verify_session(SECRET, garbage) is None


def test_a_session_signature_is_never_a_customer_token() -> None:
    """The session key is derived from the secret, so one kind of signature cannot stand for the other."""
    conversation_id = new_conversation_id()
    signature = sign_session(SECRET, conversation_id).partition(".")[2]
    assert not verify_customer_token(SECRET, conversation_id, signature)
    assert customer_token(SECRET, conversation_id) != signature


def test_customer_tokens_are_hex_hmac_sha256_of_the_store_id() -> None:
    import hashlib

    expected = hmac.new(SECRET.encode(), b"store-42", hashlib.sha256).hexdigest()
    assert customer_token(SECRET, "store-42") == expected
    assert verify_customer_token(SECRET, "store-42", expected)
    assert verify_customer_token(SECRET, "store-42", expected.upper())  # hex is hex
    assert not verify_customer_token(SECRET, "store-43", expected)
    assert not verify_customer_token("another-secret", "store-42", expected)
    assert not verify_customer_token(SECRET, "store-42", expected[:-1])
    assert not verify_customer_token(SECRET, "store-42", expected[:-1] + "g")  # not hex
    assert not verify_customer_token(SECRET, "store-42", "")
    assert not verify_customer_token(SECRET, "", customer_token(SECRET, ""))
    assert not verify_customer_token(SECRET, None, expected)
    assert not verify_customer_token(SECRET, "store-42", None)


def test_customer_claims() -> None:
    good = customer_token(SECRET, "store-42")
    assert customer_claim(SECRET, None) is None
    assert customer_claim(SECRET, {}) is None
    assert customer_claim(SECRET, {"customer_id": "", "customer_token": None}) is None  # a guest
    assert customer_claim(SECRET, {"customer_id": "store-42", "customer_token": good}) == CustomerClaim("store-42")
    assert customer_claim(SECRET, {"customer_id": 42, "customer_token": customer_token(SECRET, "42")}) == CustomerClaim("42")
    refused = CustomerClaim(error=INVALID_CUSTOMER_TOKEN)
    assert customer_claim(SECRET, {"customer_id": "store-42"}) == refused  # token missing
    assert customer_claim(SECRET, {"customer_token": good}) == refused  # id missing
    assert customer_claim(SECRET, {"customer_id": "store-43", "customer_token": good}) == refused
    assert customer_claim(SECRET, {"customer_id": "store-42", "customer_token": "zz" * 32}) == refused
    assert customer_claim(SECRET, {"customer_id": True, "customer_token": good}) == refused
    padded = " store-42 "  # the token signs the id exactly as the store sends it
    assert customer_claim(SECRET, {"customer_id": padded, "customer_token": customer_token(SECRET, padded)}) == refused
    assert customer_claim(SECRET, {"customer_id": "x" * 65, "customer_token": customer_token(SECRET, "x" * 65)}) == refused


def test_every_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    conversation_id = new_conversation_id()
    token = sign_session(SECRET, conversation_id)
    assert verify_session(SECRET, token) == conversation_id
    assert verify_session(SECRET, token[:-1] + _flip(token[-1])) is None
    assert verify_customer_token(SECRET, "store-42", customer_token(SECRET, "store-42"))
    assert not verify_customer_token(SECRET, "store-42", "0" * 64)
    assert len(calls) == 4 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_widget_status_line() -> None:
    assert widget_status(Settings.from_env({})) == "widget: off — set WIDGET_SIGNING_SECRET"
    line = widget_status(Settings.from_env({"WIDGET_SIGNING_SECRET": SECRET, "RASA_PORT": "5105"}))
    assert line.startswith("widget: on — script http://localhost:5105/webhooks/widget/widget.js")
    assert SECRET not in line


# -- rendering ------------------------------------------------------------------------------------------


def test_text_and_buttons_are_one_message_with_quick_replies() -> None:
    messages = widget_messages({"text": "Pick one", "buttons": [
        {"title": "My points", "payload": "/check_points"},
        {"title": "Shop", "url": "https://oak-and-ember.example", "type": "web_url"},
        {"title": "", "payload": "/nothing"},
        "not a button",
    ]})
    assert messages == [{"text": "Pick one", "quick_replies": [
        {"content_type": "text", "title": "My points", "payload": "/check_points"},
        {"content_type": "text", "type": "web_url", "title": "Shop", "url": "https://oak-and-ember.example"},
    ]}]


def test_all_product_cards_travel_in_one_template_message() -> None:
    elements = [
        {"title": "Linden lounge chair", "subtitle": "$349", "image_url": "https://img.example/ch.jpg",
         "buttons": [{"title": "View", "url": "https://shop.example/linden", "type": "web_url"},
                     {"title": "More like this", "payload": "/product_search"}]},
        {"title": "Ember floor lamp", "image_url": "javascript:alert(1)"},
        {"subtitle": "no title: skipped"},
    ]
    [message] = widget_messages({"elements": elements})
    payload = message["attachment"]["payload"]
    assert message["attachment"]["type"] == "template" and payload["template_type"] == "generic"
    assert payload["elements"] == [
        {"title": "Linden lounge chair", "subtitle": "$349", "image_url": "https://img.example/ch.jpg",
         "buttons": [{"type": "web_url", "title": "View", "url": "https://shop.example/linden"},
                     {"type": "postback", "title": "More like this", "payload": "/product_search"}]},
        {"title": "Ember floor lamp", "buttons": []},
    ]


def test_images_custom_json_and_order() -> None:
    assert widget_messages({"image": "https://img.example/a.png"}) == [
        {"attachment": {"type": "image", "payload": {"src": "https://img.example/a.png"}}}]
    assert widget_messages({"image": "file:///etc/passwd"}) == []
    assert widget_messages({"custom": {"text": "hello", "quick_replies": [{"title": "A", "payload": "/a"}]}}) == [
        {"text": "hello", "quick_replies": [{"content_type": "text", "title": "A", "payload": "/a"}]}]
    # Unknown keys are not passed on to the page: only their text, if any.
    assert widget_messages({"custom": {"text": "fallback", "room": "someone-else", "script": "x"}}) == [{"text": "fallback"}]
    assert widget_messages({"custom": {"room": "someone-else"}}) == []
    assert widget_messages({"custom": "a string"}) == []
    both = widget_messages({"text": "Here", "image": "https://img.example/a.png"})
    assert [list(message) for message in both] == [["text"], ["attachment"]]


def test_the_transcript_shows_pressed_buttons_by_their_titles() -> None:
    events = [
        UserUttered("hi"),
        BotUttered("Hello!", {"buttons": [{"title": "My points", "payload": "/check_points"}]}),
        UserUttered("/check_points"),
        BotUttered("You have 10 points."),
        UserUttered("/unknown_payload"),
        BotUttered(None, {"elements": [{"title": "Chair"}]}),
    ]
    assert transcript(events) == [
        {"sender": "user", "text": "hi"},
        {"sender": "bot", "text": "Hello!", "quick_replies": [{"content_type": "text", "title": "My points", "payload": "/check_points"}]},
        {"sender": "user", "text": "My points"},
        {"sender": "bot", "text": "You have 10 points."},
        {"sender": "user", "text": "/unknown_payload"},
        {"sender": "bot", "attachment": {"type": "template", "payload": {"template_type": "generic",
                                                                         "elements": [{"title": "Chair", "buttons": []}]}}},
    ]
    assert len(transcript([UserUttered(f"m{i}") for i in range(10)], limit=3)) == 3


# -- the socket.io protocol -------------------------------------------------------------------------------


class FakeTrackerStore:
    """Keeps each conversation's events, as Rasa's tracker store would, and records history reads."""

    def __init__(self) -> None:
        self.events: Dict[str, List[Any]] = {}
        self.reads: List[str] = []

    async def retrieve_full_tracker(self, conversation_id: str) -> Optional[DialogueStateTracker]:
        self.reads.append(conversation_id)
        if conversation_id not in self.events:
            return None
        return DialogueStateTracker.from_events(conversation_id, self.events[conversation_id])


class EchoAgent:
    """Stands in for rasa.core.agent.Agent: records each message and answers "echo: <text>" with a button."""

    def __init__(self) -> None:
        self.messages: List[UserMessage] = []
        self.tracker_store = FakeTrackerStore()

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        reply = {"text": f"echo: {message.text}", "buttons": [{"title": "Again", "payload": "/again"}]}
        events = self.tracker_store.events.setdefault(message.sender_id, [])
        events.extend([UserUttered(message.text, metadata=message.metadata),
                       BotUttered(reply["text"], {"buttons": reply["buttons"]})])
        await message.output_channel.send_response(message.sender_id, dict(reply))


class Client:
    """A socket.io client that records every event it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: List[Tuple[str, Any]] = []
        self._seen: Dict[str, int] = {}

        @self.sio.on("*")
        async def record(event: str, data: Any = None) -> None:
            self.received.append((event, data))

    async def connect(self, auth: Optional[Dict[str, Any]] = None) -> "Client":
        # Long-polling: engine.io's websocket client needs a newer aiohttp than Rasa 3.6 allows (the
        # browser tests use websockets).
        await self.sio.connect(self.url, auth=auth, transports=["polling"], socketio_path="/socket.io",
                               wait_timeout=WAIT_SECONDS)
        return self

    def all(self, event: str) -> List[Any]:
        return [data for name, data in self.received if name == event]

    async def wait_until(self, condition: Callable[[], bool], what: str = "the expected event") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"{what} never came; received: {self.received}")
            await asyncio.sleep(0.02)

    async def next(self, event: str) -> Any:
        """The next `event` not returned before, waiting for it."""
        index = self._seen.get(event, 0)
        await self.wait_until(lambda: len(self.all(event)) > index, repr(event))
        self._seen[event] = index + 1
        return self.all(event)[index]

    async def session(self, token: Any = None, **extra: Any) -> Tuple[str, List[Any]]:
        await self.sio.emit("session_request", {"session_id": token, **extra})
        return await self.next("session_confirm"), await self.next("session_history")

    async def say(self, text: str, **extra: Any) -> None:
        await self.sio.emit("user_uttered", {"message": text, **extra})

    async def settle(self) -> None:
        """A round trip to the server: whatever the server sent this socket before has arrived by now (a
        socket's messages arrive in order; the probe is answered with a session_error)."""
        await self.sio.emit("user_uttered", "a probe, not a message object")
        await self.next("session_error")

    async def close(self) -> None:
        # An aborting disconnect: a polite one waits for engine.io's long poll (~25 s) to end.
        await self.sio.eio.disconnect(abort=True)


class Harness:
    def __init__(self, url: str, agent: EchoAgent, channel: WidgetInput, database: Database) -> None:
        self.url, self.agent, self.channel, self.database = url, agent, channel, database
        self.clients: List[Client] = []

    async def client(self, auth: Optional[Dict[str, Any]] = None) -> Client:
        client = await Client(self.url).connect(auth)
        self.clients.append(client)
        return client

    def senders(self) -> List[str]:
        return [message.sender_id for message in self.agent.messages]

    def customer_of(self, conversation_id: str) -> Optional[Customer]:
        with self.database.session() as session:
            return customer_for_sender(session, "widget", conversation_id)


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path / "var"), "WIDGET_SIGNING_SECRET": SECRET, **env})


async def _serve(settings: Settings, database: Database) -> Tuple[Any, Harness]:
    Sanic.test_mode = True
    app = Sanic(f"widget_test_{uuid.uuid4().hex[:8]}")
    agent = EchoAgent()
    app.ctx.agent = agent
    channel = WidgetInput(settings, database)
    register([channel], app, route="/webhooks/")
    # A free port of our own: Sanic 21.12 reads port=0 as its default, 8000.
    server = await app.create_server(host="127.0.0.1", port=free_port(), return_asyncio_server=True)
    await server.startup()
    await server.before_start()
    await server.after_start()
    port = server.server.sockets[0].getsockname()[1]
    return server, Harness(f"http://127.0.0.1:{port}", agent, channel, database)


async def _stop(server: Any, harness: Harness) -> None:
    for client in harness.clients:
        await client.close()
    assert harness.channel.sio is not None
    await harness.channel.sio.shutdown()  # ends the long polls still open on the server side
    await server.before_stop()
    server.close()
    await server.wait_closed()
    await server.after_stop()
    # engine.io's per-socket ping tasks sleep on after their sockets closed; the test's loop ends now.
    pings = [task for task in asyncio.all_tasks() if task.get_coro().__qualname__.startswith("AsyncSocket.")]
    for task in pings:
        task.cancel()
    await asyncio.gather(*pings, return_exceptions=True)


@pytest.fixture()
async def chat(tmp_path: Path, sqlite_db: Database) -> AsyncIterator[Harness]:
    server, harness = await _serve(_settings(tmp_path, MAX_MESSAGE_CHARS="200"), sqlite_db)
    yield harness
    await _stop(server, harness)


def _customer_auth(store_id: str, device_key: Optional[str] = DEVICE_A, token: Optional[str] = None) -> Dict[str, Any]:
    auth: Dict[str, Any] = {"customer_id": store_id, "customer_token": token or customer_token(SECRET, store_id)}
    if device_key is not None:
        auth["device_key"] = device_key
    return auth


async def test_the_server_issues_a_signed_session_and_answers_in_it(chat: Harness) -> None:
    client = await chat.client({"device_key": DEVICE_A})
    token, history = await client.session(None)
    conversation_id = verify_session(SECRET, token, "", device_hash(DEVICE_A))
    assert conversation_id is not None and history == []

    await client.say("hi", session_id="chosen-by-the-client")
    reply = await client.next("bot_uttered")
    assert reply == {"text": "echo: hi", "quick_replies": [{"content_type": "text", "title": "Again", "payload": "/again"}]}
    [message] = chat.agent.messages
    assert message.sender_id == conversation_id and message.input_channel == "widget"


async def test_a_new_session_that_asks_for_the_greeting_opens_with_it_and_a_resumed_one_does_not(
        chat: Harness) -> None:
    client = await chat.client({"device_key": DEVICE_A})
    token, history = await client.session(None, greet=True)  # what our widget sends as it opens
    assert history == []
    assert (await client.next("bot_uttered"))["text"] == "echo: /greet"
    [greeting] = chat.agent.messages
    assert (greeting.sender_id, greeting.input_channel, greeting.metadata) == (
        conversation_of(token), "widget", {"session_opened": True})
    await client.close()

    again = await chat.client({"device_key": DEVICE_A})  # a reload: the transcript, without the trigger
    _, history = await again.session(token, greet=True)
    assert history == [{"sender": "bot", "text": "echo: /greet",
                        "quick_replies": [{"content_type": "text", "title": "Again", "payload": "/again"}]}]
    await again.settle()
    assert len(chat.agent.messages) == 1  # no second greeting

    webchat = await chat.client(None)  # rasa-webchat sends its own initPayload: the server greets nobody
    await webchat.session(None)
    await webchat.settle()
    assert len(chat.agent.messages) == 1


async def test_resuming_with_the_token_continues_the_conversation_with_its_history(chat: Harness) -> None:
    first = await chat.client({"device_key": DEVICE_A})
    token, _ = await first.session(None)
    await first.say("hi")
    await first.next("bot_uttered")
    await first.close()

    again = await chat.client({"device_key": DEVICE_A})  # a reload, or a reconnect after a dropped socket
    resumed, history = await again.session(token)
    assert resumed == token
    conversation_id = conversation_of(token)
    assert chat.agent.tracker_store.reads == [conversation_id]
    assert history == [
        {"sender": "user", "text": "hi"},
        {"sender": "bot", "text": "echo: hi", "quick_replies": [{"content_type": "text", "title": "Again", "payload": "/again"}]},
    ]
    await again.say("/again")
    await again.next("bot_uttered")
    assert chat.senders() == [conversation_id, conversation_id]


async def test_every_tab_of_a_conversation_gets_the_replies(chat: Harness) -> None:
    tab1 = await chat.client({"device_key": DEVICE_A})
    token, _ = await tab1.session(None)
    tab2 = await chat.client({"device_key": DEVICE_A})
    assert (await tab2.session(token))[0] == token
    await tab1.say("/again", display="Again")
    assert (await tab1.next("bot_uttered"))["text"] == "echo: /again"
    assert (await tab2.next("bot_uttered"))["text"] == "echo: /again"
    assert await tab2.next("user_echo") == {"text": "Again"}
    assert tab1.all("user_echo") == []


async def test_a_copied_token_does_not_open_the_conversation(chat: Harness) -> None:
    owner = await chat.client({"device_key": DEVICE_A})
    token, _ = await owner.session(None)
    await owner.say("my secret question")
    await owner.next("bot_uttered")
    conversation_id = conversation_of(token)

    # The token copied into another browser (another device key), into a client without a device key,
    # and the bare conversation id: each gets a new, empty conversation.
    for auth, presented in (({"device_key": DEVICE_B}, token), (None, token), ({"device_key": DEVICE_B}, conversation_id)):
        intruder = await chat.client(auth)
        issued, history = await intruder.session(presented)
        assert conversation_of(issued) != conversation_id and history == []
        await intruder.say("let me in", session_id=token)
        assert (await intruder.next("bot_uttered"))["text"] == "echo: let me in"
        assert chat.senders()[-1] == conversation_of(issued)

    await owner.settle()
    assert [data["text"] for data in owner.all("bot_uttered")] == ["echo: my secret question"]
    assert owner.all("user_echo") == []
    assert chat.agent.tracker_store.reads == []  # nobody else's history was even read
    assert chat.senders().count(conversation_id) == 1


async def test_another_session_id_in_a_message_is_ignored(chat: Harness) -> None:
    victim = await chat.client({"device_key": DEVICE_A})
    victim_token, _ = await victim.session(None)
    attacker = await chat.client({"device_key": DEVICE_B})
    attacker_token, _ = await attacker.session(None)

    await attacker.say("written into your chat?", session_id=victim_token)
    await attacker.next("bot_uttered")
    await victim.settle()
    assert chat.senders() == [conversation_of(attacker_token)]
    assert victim.all("bot_uttered") == [] and victim.all("user_echo") == []


async def test_a_message_before_the_session_is_refused(chat: Harness) -> None:
    client = await chat.client({"device_key": DEVICE_A})
    await client.say("hello?")
    assert await client.next("session_error") == {"error": NO_SESSION}
    assert chat.agent.messages == []


async def test_bad_messages_get_clear_answers_and_nothing_is_processed(chat: Harness) -> None:
    client = await chat.client({"device_key": DEVICE_A})
    await client.session(None)
    await client.sio.emit("user_uttered", {"text": "wrong field"})
    assert "message" in (await client.next("session_error"))["error"]
    await client.sio.emit("user_uttered", ["not", "an", "object"])
    await client.next("session_error")
    await client.say("  \u0000 \u200b ")
    assert "empty" in (await client.next("bot_uttered"))["text"]
    await client.say("x" * 201)  # MAX_MESSAGE_CHARS=200
    assert "too long" in (await client.next("bot_uttered"))["text"]
    await client.sio.emit("session_request", "not an object")
    assert conversation_of(await client.next("session_confirm")) is not None
    assert chat.agent.messages == []


async def test_a_frame_over_the_limit_closes_the_socket_unprocessed(chat: Harness) -> None:
    client = await chat.client({"device_key": DEVICE_A})
    await client.session(None)
    disconnected = asyncio.Event()
    client.sio.on("disconnect", lambda *_: disconnected.set())
    await client.say("x" * (widget.MAX_FRAME_BYTES + 1000))
    await asyncio.wait_for(disconnected.wait(), WAIT_SECONDS)
    assert chat.agent.messages == []


async def test_an_invalid_customer_token_is_refused_and_nothing_linked(chat: Harness) -> None:
    client = await chat.client(_customer_auth("store-42", token=customer_token("wrong-secret", "store-42")))
    await client.sio.emit("session_request", {"session_id": None})
    assert await client.next("session_error") == {"error": INVALID_CUSTOMER_TOKEN}
    await client.say("how many points do I have?")
    assert await client.next("session_error") == {"error": INVALID_CUSTOMER_TOKEN}
    assert client.all("session_confirm") == [] and chat.agent.messages == []
    with chat.database.session() as session:
        assert session.execute(select(Customer)).first() is None


async def test_a_valid_customer_token_links_the_conversation_to_the_store_customer(chat: Harness) -> None:
    with chat.database.session(write=True) as session:
        known = create_customer(session, "ann@example.com", "Ann")
        known.external_id = "store-42"
        known_id = known.id
    client = await chat.client(_customer_auth("store-42"))
    token, _ = await client.session(None)
    conversation_id = verify_session(SECRET, token, "store-42", device_hash(DEVICE_A))
    assert conversation_id is not None
    linked = chat.customer_of(conversation_id)
    assert linked is not None and linked.id == known_id

    # A shopper the store knows and we do not yet: a customer is created with the store's id.
    newcomer = await chat.client(_customer_auth("7001", device_key=DEVICE_B))
    token, _ = await newcomer.session(None)
    created = chat.customer_of(conversation_of(token))
    assert created is not None and created.external_id == "7001" and created.email is None
    await newcomer.say("hi")
    await newcomer.next("bot_uttered")
    assert chat.agent.messages[-1].sender_id == conversation_of(token)


async def test_a_customers_conversation_never_opens_for_a_guest_or_another_customer(chat: Harness) -> None:
    ann = await chat.client(_customer_auth("store-42"))
    token, _ = await ann.session(None)
    await ann.say("my points")
    await ann.next("bot_uttered")
    await ann.close()

    # Same browser, signed out of the store (a guest now), then signed in as someone else.
    for auth in ({"device_key": DEVICE_A}, _customer_auth("store-99")):
        other = await chat.client(auth)
        issued, history = await other.session(token)
        assert conversation_of(issued) != conversation_of(token) and history == []
        await other.close()

    back = await chat.client(_customer_auth("store-42"))
    resumed, history = await back.session(token)
    assert resumed == token and [entry["text"] for entry in history] == ["my points", "echo: my points"]


async def test_a_guest_who_signs_in_keeps_the_conversation(chat: Harness) -> None:
    guest = await chat.client({"device_key": DEVICE_A})
    guest_token, _ = await guest.session(None)
    await guest.close()
    conversation_id = conversation_of(guest_token)
    assert chat.customer_of(conversation_id) is None

    signed_in = await chat.client(_customer_auth("store-42"))
    token, _ = await signed_in.session(guest_token)
    assert conversation_of(token) == conversation_id and token != guest_token
    assert verify_session(SECRET, token, "store-42", device_hash(DEVICE_A)) == conversation_id
    linked = chat.customer_of(conversation_id)
    assert linked is not None and linked.external_id == "store-42"

    # Signed out again: the customer's token is not a guest's.
    signed_out = await chat.client({"device_key": DEVICE_A})
    issued, _ = await signed_out.session(token)
    assert conversation_of(issued) != conversation_id


async def test_a_guest_conversation_linked_by_a_code_resumes_for_its_browser(chat: Harness) -> None:
    guest = await chat.client({"device_key": DEVICE_A})
    token, _ = await guest.session(None)
    await guest.close()
    with chat.database.session(write=True) as session:  # what link_account does with a one-time code
        ann = create_customer(session, "ann@example.com", "Ann")
        ann.external_id = "store-42"
        link_identity(session, ann.id, "widget", conversation_of(token))

    again = await chat.client({"device_key": DEVICE_A})
    assert (await again.session(token))[0] == token
    elsewhere = await chat.client({"device_key": DEVICE_B})  # still bound to its browser
    assert conversation_of((await elsewhere.session(token))[0]) != conversation_of(token)


async def test_rasa_webchat_style_clients_sign_in_with_custom_data(chat: Harness) -> None:
    """rasa-webchat sends no auth and no device key, and the store's customer only as customData of
    each message."""
    client = await chat.client(None)
    token, _ = await client.session(None)
    assert verify_session(SECRET, token) is not None
    custom = {"customer_id": "store-42", "customer_token": customer_token(SECRET, "store-42")}
    await client.say("how many points do I have?", customData=custom, session_id=token)
    upgraded = await client.next("session_confirm")
    assert conversation_of(upgraded) == conversation_of(token)
    assert verify_session(SECRET, upgraded, "store-42") == conversation_of(token)
    await client.next("bot_uttered")
    assert chat.customer_of(conversation_of(token)).external_id == "store-42"
    await client.close()

    # A reload: rasa-webchat sends only the token; the conversation resumes once a message proves Ann.
    reload = await chat.client(None)
    await reload.sio.emit("session_request", {"session_id": upgraded})
    assert await reload.next("session_confirm") == upgraded
    forged = {"customer_id": "store-43", "customer_token": customer_token(SECRET, "store-42")}
    await reload.say("now as someone else", customData=forged)
    assert await reload.next("session_error") == {"error": INVALID_CUSTOMER_TOKEN}
    assert reload.all("session_history") == [] and len(chat.agent.messages) == 1

    await reload.say("and now?", customData=custom)
    history = await reload.next("session_history")
    assert history[0] == {"sender": "user", "text": "how many points do I have?"}
    assert (await reload.next("bot_uttered"))["text"] == "echo: and now?"
    assert chat.senders() == [conversation_of(token)] * 2 and reload.all("session_confirm") == [upgraded]


async def _rasa_webchat_customer(chat: Harness, store_id: str = "store-42") -> Tuple[Client, str, Dict[str, str]]:
    """A rasa-webchat shopper signed in to the store, with one message in a conversation of their own."""
    custom = {"customer_id": store_id, "customer_token": customer_token(SECRET, store_id)}
    client = await chat.client(None)
    await client.session(None)
    await client.say("my points", customData=custom)
    token = await client.next("session_confirm")
    await client.next("bot_uttered")
    assert verify_session(SECRET, token, store_id) is not None
    return client, token, custom


async def test_rasa_webchat_resuming_a_customer_token_without_proof_gets_a_new_guest_conversation(chat: Harness) -> None:
    """None means guest: the token of a customer's conversation alone (a shopper who signed out of the
    store, or a copied localStorage) neither reads nor writes that conversation."""
    ann, token, _ = await _rasa_webchat_customer(chat)
    conversation_id = conversation_of(token)

    other = await chat.client(None)
    await other.sio.emit("session_request", {"session_id": token})
    assert await other.next("session_confirm") == token  # provisional: no transcript, no room
    await ann.say("only for Ann", customData={"customer_id": "store-42", "customer_token": customer_token(SECRET, "store-42")})
    await ann.next("bot_uttered")
    await other.settle()
    assert other.all("session_history") == [] and other.all("bot_uttered") == [] and other.all("user_echo") == []
    assert chat.agent.tracker_store.reads == []

    await other.say("how many points do I have?", session_id=token)
    issued = await other.next("session_confirm")
    assert await other.next("session_history") == []
    assert (await other.next("bot_uttered"))["text"] == "echo: how many points do I have?"
    guest_conversation = verify_session(SECRET, issued)  # a guest's token
    assert guest_conversation is not None and guest_conversation != conversation_id
    assert chat.senders() == [conversation_id, conversation_id, guest_conversation]
    assert chat.customer_of(guest_conversation) is None
    assert chat.agent.tracker_store.reads == []

    # Later messages stay in the guest conversation; Ann's tab saw nothing of them.
    await other.say("still me")
    await other.next("bot_uttered")
    assert chat.senders()[-1] == guest_conversation
    await ann.settle()
    assert ann.all("user_echo") == [] and len(ann.all("bot_uttered")) == 2


async def test_rasa_webchat_resuming_with_another_customers_proof_gets_their_own_conversation(chat: Harness) -> None:
    _, token, _ = await _rasa_webchat_customer(chat)
    bob = await chat.client(None)
    await bob.sio.emit("session_request", {"session_id": token})
    assert await bob.next("session_confirm") == token
    await bob.say("hi", customData={"customer_id": "store-77", "customer_token": customer_token(SECRET, "store-77")})
    moved = await bob.next("session_confirm")
    assert await bob.next("session_history") == []
    await bob.next("bot_uttered")
    assert conversation_of(moved) != conversation_of(token)
    assert verify_session(SECRET, moved, "store-77") == chat.senders()[-1] == conversation_of(moved)
    assert chat.customer_of(conversation_of(moved)).external_id == "store-77"
    assert chat.agent.tracker_store.reads == []


async def test_rasa_webchat_naming_the_customer_in_session_request_resumes_at_once(chat: Harness) -> None:
    _, token, custom = await _rasa_webchat_customer(chat)
    reload = await chat.client(None)
    resumed, history = await reload.session(token, customData=custom)
    assert resumed == token and [entry["text"] for entry in history] == ["my points", "echo: my points"]
    await reload.say("again")  # proven on this connection: customData need not come with every message
    await reload.next("bot_uttered")
    assert chat.senders()[-1] == conversation_of(token)


async def test_a_message_for_another_customer_moves_to_a_new_conversation(chat: Harness) -> None:
    client = await chat.client(None)
    token, _ = await client.session(None, customData={"customer_id": "store-42", "customer_token": customer_token(SECRET, "store-42")})
    assert verify_session(SECRET, token, "store-42") is not None
    other = {"customer_id": "store-77", "customer_token": customer_token(SECRET, "store-77")}
    await client.say("hi", customData=other)
    moved = await client.next("session_confirm")
    assert conversation_of(moved) != conversation_of(token)
    assert await client.next("session_history") == []
    await client.next("bot_uttered")
    assert chat.senders() == [conversation_of(moved)]
    assert chat.customer_of(conversation_of(moved)).external_id == "store-77"


async def test_a_malformed_device_key_is_refused(chat: Harness) -> None:
    client = await chat.client({"device_key": "short"})
    await client.sio.emit("session_request", {"session_id": None})
    assert (await client.next("session_error"))["error"] == widget.INVALID_DEVICE_KEY
    assert client.all("session_confirm") == []


async def test_the_script_and_the_socket_io_client_are_served_with_caching(chat: Harness, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client_js = tmp_path / "socket.io.min.js"
    client_js.write_text("/* socket.io client */")
    monkeypatch.setattr(widget, "SOCKET_IO_CLIENT", client_js)
    async with aiohttp.ClientSession() as http:
        async with http.get(chat.url + "/webhooks/widget/") as reply:
            assert reply.status == 200 and (await reply.json()) == {"status": "ok"}
        async with http.get(chat.url + "/webhooks/widget/widget.js") as reply:
            body = await reply.text()
            assert reply.status == 200 and "RapportWidget" in body
            assert reply.headers["Content-Type"] == "application/javascript; charset=utf-8"
            assert reply.headers["Cache-Control"].startswith("public, max-age=")
            etag = reply.headers["ETag"]
        async with http.get(chat.url + "/webhooks/widget/widget.js", headers={"If-None-Match": etag}) as reply:
            assert reply.status == 304 and await reply.read() == b""
        async with http.get(chat.url + "/webhooks/widget/socket.io.min.js") as reply:
            assert reply.status == 200 and await reply.text() == "/* socket.io client */"
            assert reply.headers["Content-Type"] == "application/javascript; charset=utf-8"
        client_js.unlink()
        async with http.get(chat.url + "/webhooks/widget/socket.io.min.js") as reply:
            assert reply.status == 503 and "setup.sh" in (await reply.json())["error"]


async def test_with_the_widget_off_nothing_connects_and_every_route_says_so(tmp_path: Path, sqlite_db: Database) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path / "var")})
    server, harness = await _serve(settings, sqlite_db)
    try:
        refused = Client(harness.url)
        errors: List[Any] = []
        refused.sio.on("connect_error", errors.append)
        # python-socketio's client reports the refusal at once but returns from connect() only after its
        # wait_timeout: the refusal is awaited, then the attempt dropped.
        attempt = asyncio.ensure_future(refused.connect({"device_key": DEVICE_A}))
        await refused.wait_until(lambda: bool(errors))
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        await refused.close()
        assert errors == [{"message": NOT_CONFIGURED, "data": {"error": NOT_CONFIGURED}}]
        assert not refused.sio.connected
        async with aiohttp.ClientSession() as http:
            for path in ("/webhooks/widget/", "/webhooks/widget/widget.js", "/webhooks/widget/socket.io.min.js"):
                async with http.get(harness.url + path) as reply:
                    assert reply.status == 503 and (await reply.json()) == {"error": NOT_CONFIGURED}
        assert harness.channel.sockets == {}
    finally:
        await _stop(server, harness)


async def test_an_origin_outside_the_allowed_ones_cannot_connect(tmp_path: Path, sqlite_db: Database) -> None:
    settings = _settings(tmp_path, WIDGET_ALLOWED_ORIGINS="https://shop.example")
    server, harness = await _serve(settings, sqlite_db)
    try:
        allowed = socketio.AsyncClient(reconnection=False)
        await allowed.connect(harness.url, headers={"Origin": "https://shop.example"}, transports=["polling"],
                              wait_timeout=WAIT_SECONDS)
        await allowed.eio.disconnect(abort=True)
        refused = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(harness.url, headers={"Origin": "https://evil.example"}, transports=["polling"],
                                  wait_timeout=WAIT_SECONDS)
    finally:
        await _stop(server, harness)


async def test_the_outbox_shows_its_messages_when_the_shopper_next_opens_the_widget(chat: Harness) -> None:
    from bot import clock
    from bot.identity import link_identity
    from bot.models import OutboundMessage
    from bot.outbox.service import enqueue, route_due
    from tests.unit.test_telegram_notices import ANY_TIME

    with chat.database.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann")
        ann.external_id = "store-42"
        link_identity(session, ann.id, "widget", "an-earlier-conversation")
        message_id = enqueue(session, ann.id, "tier_change", "You're Gold now!", "tier-change:1", clock.now(),
                             payload={"buttons": [{"title": "My tier", "payload": "/check_tier"}]}).id
        route_due(session, ANY_TIME, clock.now())
        assert session.get(OutboundMessage, message_id).channel == "widget"

    client = await chat.client(_customer_auth("store-42"))
    token, _ = await client.session(None, greet=False)
    shown = await client.next("bot_uttered")
    assert shown == {"text": "You're Gold now!",
                     "quick_replies": [{"content_type": "text", "title": "My tier", "payload": "/check_tier"}]}
    with chat.database.session() as session:
        row = session.get(OutboundMessage, message_id)
        assert (row.status, row.recipient) == ("delivered", conversation_of(token))

    again = await chat.client(_customer_auth("store-42", device_key=DEVICE_B))
    await again.session(None)
    await again.settle()
    assert again.all("bot_uttered") == []  # shown once


async def test_a_signed_in_shoppers_browser_time_zone_is_kept_for_quiet_hours_and_nonsense_is_not(
        chat: Harness) -> None:
    def zone_of(store_id: str) -> Optional[str]:
        with chat.database.session() as session:
            return session.execute(select(Customer.time_zone).where(Customer.external_id == store_id)).scalar_one()

    ann = await chat.client(_customer_auth("store-42"))
    token, _ = await ann.session(None, time_zone="America/Chicago")
    assert zone_of("store-42") == "America/Chicago"
    await ann.close()

    # Travelling: the next visit's zone replaces it; nonsense from a tampered client never does.
    for sent, kept in (("Europe/Berlin", "Europe/Berlin"), ("../../etc/passwd", "Europe/Berlin"),
                       ("Mars/Olympus_Mons", "Europe/Berlin"), (12, "Europe/Berlin"), ("A" * 500, "Europe/Berlin"),
                       ("", "Europe/Berlin"), (None, "Europe/Berlin")):
        again = await chat.client(_customer_auth("store-42"))
        resumed, _ = await again.session(token, time_zone=sent)
        assert resumed == token and zone_of("store-42") == kept, sent
        await again.close()

    # A guest's chat belongs to no customer: the zone is stored nowhere, and the guest still chats.
    guest = await chat.client({"device_key": DEVICE_B})
    guest_token, _ = await guest.session(None, time_zone="Asia/Tokyo")
    await guest.say("hi")
    await guest.next("bot_uttered")
    with chat.database.session() as session:
        assert session.execute(select(Customer.id).where(Customer.time_zone == "Asia/Tokyo")).first() is None
    # ...until the guest signs in: the conversation becomes the customer's and the zone theirs.
    signed_in = await chat.client(_customer_auth("store-77", device_key=DEVICE_B))
    await signed_in.session(guest_token, time_zone="Asia/Tokyo")
    assert zone_of("store-77") == "Asia/Tokyo"
