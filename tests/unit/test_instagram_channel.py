"""The Instagram channel through its real HTTP endpoints: a Sanic app with the channel mounted the way Rasa
mounts it (/webhooks/instagram/webhook), the fixtures from ../shared/fixtures/instagram replayed and signed,
and a fake Graph API (tests/fakes/graph_api.py) recording what the bot sends. No trained model:
`on_new_message` is a recorder that answers through the output channel it is given."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Sequence

import aiohttp
import pytest
import yaml
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from bot.channel_state import ChannelState, MemoryChannelState, RedisChannelState
from bot.rasa_hooks import OPENS_SESSION
from bot.settings import Settings, reset_settings
from bot.shared.text import too_long_reply
from channels.instagram.config import instagram_status
from channels.instagram.inbound import (
    ERROR_REPLY, UNSUPPORTED_REPLY, Ignored, Incoming, InstagramInput, Unsupported, parse_event, signature_is_valid,
)
from channels.instagram.outbound import (
    CHOICE_HINT, QUICK_REPLY_TITLE_MAX, InstagramOutput, generic_template_for, retry_delay,
)
from channels.instagram.state import REPLY_WINDOW_SECONDS, SESSION_IDLE_SECONDS, Outgoing, chosen_number
from channels.render import utf8_length
from tests.fakes.graph_api import OUTSIDE_WINDOW_ERROR, FakeGraphApi
from tests.services import REDIS_URL, require_service

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "instagram"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
SHOPPER = "1234567890123456"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sign(body: bytes, secret: str = APP_SECRET) -> Dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Stands in for asyncio.sleep between send retries: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: List[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Recorder:
    """Stands in for Rasa's agent: records each message and, if told to, answers through its output channel."""

    def __init__(self) -> None:
        self.messages: List[UserMessage] = []
        self.reply: Optional[Callable[[UserMessage], Awaitable[Any]]] = None

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        if self.reply is not None:
            await self.reply(message)


class FlakyState(MemoryChannelState):
    """The in-memory store, whose operations can be told to fail like an unreachable Redis:
    `fail("put", times=1, after=1)` lets one put through, then fails the next one."""

    def __init__(self) -> None:
        super().__init__()
        self._plans: Dict[str, List[int]] = {}  # operation -> [calls to let through, failures left]
        self.failures = 0

    def fail(self, operation: str, times: int = 1, after: int = 0) -> None:
        self._plans[operation] = [after, times]

    def _check(self, operation: str) -> None:
        plan = self._plans.get(operation)
        if plan is None or plan[1] <= 0:
            return
        if plan[0] > 0:
            plan[0] -= 1
            return
        plan[1] -= 1
        self.failures += 1
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    async def first_time(self, key: str, ttl_seconds: int) -> bool:
        self._check("first_time")
        return await super().first_time(key, ttl_seconds)

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self._check("put")
        await super().put(key, value, ttl_seconds)

    async def get(self, key: str) -> Optional[str]:
        self._check("get")
        return await super().get(key)

    async def pop_all(self, key: str) -> List[Any]:
        self._check("pop_all")
        return await super().pop_all(key)


class Harness:
    def __init__(
        self, graph: FakeGraphApi, channel: InstagramInput, recorder: Recorder, base: str, clock: Clock, sleeps: Sleeps,
        store: FlakyState,
    ) -> None:
        self.graph, self.channel, self.recorder, self.base = graph, channel, recorder, base
        self.clock, self.sleeps, self.store = clock, sleeps, store
        self.http = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return f"{self.base}/webhooks/instagram/webhook"

    async def post(self, body: bytes, headers: Optional[Dict[str, str]] = None) -> aiohttp.ClientResponse:
        async with self.http.post(self.url, data=body, headers=sign(body) if headers is None else headers) as reply:
            await reply.read()
            return reply

    async def get(self, params: Dict[str, str]) -> aiohttp.ClientResponse:
        async with self.http.get(self.url, params=params) as reply:
            await reply.read()
            return reply


class FakeAgent:
    """What Rasa's `register` calls: `app.ctx.agent.handle_message(message)`."""

    def __init__(self, recorder: Recorder) -> None:
        self.handle_message = recorder


async def _serve(channel: InstagramInput, recorder: Recorder):
    Sanic.test_mode = True  # lets several Sanic apps start in one process (Sanic 21.12's touch-ups)
    app = Sanic(f"instagram_test_{uuid.uuid4().hex[:8]}")
    app.ctx.agent = FakeAgent(recorder)
    register([channel], app, route="/webhooks/")  # mounted exactly as `rasa run` mounts channels
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.before_start()
    await server.after_start()
    return app, server, f"http://127.0.0.1:{port}"


async def _stop(server: Any) -> None:
    await server.before_stop()
    server.close()
    await server.wait_closed()
    await server.after_stop()


@pytest.fixture()
def instagram_env(monkeypatch: pytest.MonkeyPatch):
    def configure(api_base: Optional[str]) -> None:
        for name, value in [
            ("INSTAGRAM_APP_SECRET", APP_SECRET),
            ("INSTAGRAM_VERIFY_TOKEN", VERIFY_TOKEN),
            ("INSTAGRAM_ACCESS_TOKEN", ACCESS_TOKEN),
            ("INSTAGRAM_API_BASE", api_base),
        ]:
            if api_base is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        reset_settings()

    yield configure
    reset_settings()


@pytest.fixture()
async def harness(instagram_env):
    graph = await FakeGraphApi(access_token=ACCESS_TOKEN).start()
    instagram_env(graph.base_url)
    recorder = Recorder()
    clock, sleeps = Clock(), Sleeps()
    store = FlakyState()
    channel = InstagramInput(clock=clock, state=store, sleep=sleeps)
    app, server, base = await _serve(channel, recorder)
    h = Harness(graph, channel, recorder, base, clock, sleeps, store)
    yield h
    await h.http.close()
    await _stop(server)
    await graph.stop()


def echo_reply(text: str = "You said: {}") -> Callable[[UserMessage], Awaitable[None]]:
    async def reply(message: UserMessage) -> None:
        await message.output_channel.send_response(message.sender_id, {"text": text.format(message.text)})

    return reply


# ---------------------------------------------------------------- GET verification


async def test_get_verification_answers_the_challenge(harness: Harness) -> None:
    reply = await harness.get({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    assert reply.status == 200
    async with harness.http.get(
        harness.url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    ) as again:
        assert await again.text() == "1158201444"
        assert again.content_type == "text/plain"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
async def test_get_verification_refuses_a_wrong_token(harness: Harness, params) -> None:
    assert (await harness.get(params)).status == 403


# ---------------------------------------------------------------- signatures and bad input


async def test_a_signed_text_message_reaches_the_conversation_and_the_reply_is_sent(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    reply = await harness.post(fixture("text_message.json"))
    assert reply.status == 200
    [message] = harness.recorder.messages
    assert (message.text, message.sender_id, message.input_channel) == ("Do you have standing desks?", SHOPPER, "instagram")
    assert isinstance(message.output_channel, InstagramOutput)
    [sent] = harness.graph.requests
    assert sent.method == "POST" and sent.path == "/v21.0/me/messages"
    assert sent.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert sent.json == {"recipient": {"id": SHOPPER}, "message": {"text": "You said: Do you have standing desks?"}}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "sha1=abc"},
        sign(b"another body"),
        sign(fixture("text_message.json"), secret="not-the-app-secret"),
    ],
    ids=["missing", "zeros", "wrong-algorithm", "other-body", "other-secret"],
)
async def test_forged_or_missing_signatures_are_refused_and_nothing_is_processed(harness: Harness, headers) -> None:
    harness.recorder.reply = echo_reply()
    reply = await harness.post(fixture("text_message.json"), headers=headers)
    assert reply.status == 403
    assert harness.recorder.messages == [] and harness.graph.requests == []
    # ...and a later genuine delivery of the same message is still processed (nothing was remembered).
    assert (await harness.post(fixture("text_message.json"))).status == 200
    assert len(harness.recorder.messages) == 1


async def test_a_body_over_one_megabyte_is_413(harness: Harness) -> None:
    body = b'{"object": "instagram", "entry": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    reply = await harness.post(body)
    assert reply.status == 413 and harness.recorder.messages == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe\x00", b"[1, 2]", b'{"object": "page", "entry": []}', b"[" * 50_000, b'{"object": "instagram"}',
     b'{"object": "instagram", "entry": [{"messaging": [null, 3, {"message": {"text": "no sender"}}]}]}'],
    ids=["text", "binary", "array", "page-object", "deep", "no-entries", "junk-events"],
)
async def test_malformed_or_unknown_payloads_get_200_and_nothing_processed(harness: Harness, body) -> None:
    reply = await harness.post(body)
    assert reply.status == 200
    assert harness.recorder.messages == [] and harness.graph.requests == []


async def test_unconfigured_channel_answers_503_and_processes_nothing(instagram_env) -> None:
    instagram_env(None)
    recorder = Recorder()
    app, server, base = await _serve(InstagramInput(), recorder)
    try:
        async with aiohttp.ClientSession() as http:
            body = fixture("text_message.json")
            async with http.post(f"{base}/webhooks/instagram/webhook", data=body, headers=sign(body)) as reply:
                assert reply.status == 503
            params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}
            async with http.get(f"{base}/webhooks/instagram/webhook", params=params) as reply:
                assert reply.status == 503
        assert recorder.messages == []
    finally:
        await _stop(server)


# ---------------------------------------------------------------- events


def _batch_of_two_entries() -> bytes:
    batch = json.loads(fixture("batch_two_messages.json"))
    second = json.loads(json.dumps(batch["entry"][0]))
    for index, event in enumerate(second["messaging"]):
        event["message"]["mid"] = f"aWdfZAG1mid01{index}"
        event["message"]["text"] = f"second entry {index}"
    batch["entry"].append(second)
    return json.dumps(batch).encode()


async def test_every_entry_and_every_event_of_a_batch_is_handled(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    assert (await harness.post(_batch_of_two_entries())).status == 200
    assert [(m.sender_id, m.text) for m in harness.recorder.messages] == [
        ("1234567890123456", "hi"),
        ("6543210987654321", "how many points do I have"),
        ("1234567890123456", "second entry 0"),
        ("6543210987654321", "second entry 1"),
    ]
    assert [m["recipient"]["id"] for m in harness.graph.messages] == [
        "1234567890123456", "6543210987654321", "1234567890123456", "6543210987654321"
    ]


async def test_echoes_reads_reactions_and_deleted_messages_are_ignored(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    assert (await harness.post(fixture("ignored_events.json"))).status == 200
    assert harness.recorder.messages == [] and harness.graph.requests == []


UNREADABLE = [
    {"attachments": [{"type": "audio", "payload": {"url": "https://example.com/a.mp4"}}]},
    {"attachments": [{"type": "sticker", "payload": {"url": "https://example.com/s.png"}}]},
    {"attachments": [{"type": "image", "payload": {"url": "https://example.com/heart.png", "sticker_id": 369239263222822}}]},
    {"attachments": [{"type": "share", "payload": {"url": "https://example.com/post"}}]},
    {"attachments": [{"type": "ig_reel", "payload": {"reel_video_id": "1", "url": "https://example.com/r"}}]},
    {"attachments": [{"type": "file", "payload": {"url": "https://example.com/f.pdf"}}]},
    {"is_unsupported": True},
]
UNREADABLE_IDS = ["audio", "sticker", "sticker-as-image", "share", "reel", "file", "meta-unsupported"]


def test_a_video_is_a_video_submission_with_the_text_as_caption() -> None:
    parsed = parse_event({"sender": {"id": SHOPPER}, "message": {
        "mid": "m2", "text": "unboxing!", "attachments": [{"type": "video", "payload": {"url": "https://cdn.example.com/v.mp4"}}],
    }})
    assert isinstance(parsed, Incoming) and parsed.text == "/submit_content"
    assert parsed.metadata == {"content": {"kind": "video", "channel": "instagram",
                                           "urls": ["https://cdn.example.com/v.mp4"], "caption": "unboxing!"}}


def message_event(message: Dict[str, Any], sender: str = SHOPPER) -> bytes:
    """A webhook body with one shopper message (a fresh `mid` unless the message has one)."""
    message = dict(message, mid=message.get("mid") or f"aWdfZAG1{uuid.uuid4().hex}")
    return json.dumps({"object": "instagram", "entry": [{"id": "17841400000000000", "time": 1, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": "17841400000000000"}, "timestamp": 1, "message": message,
    }]}]}).encode()


@pytest.mark.parametrize("message", UNREADABLE, ids=UNREADABLE_IDS)
def test_messages_the_bot_cannot_read_are_unsupported(message) -> None:
    parsed = parse_event({"sender": {"id": SHOPPER}, "message": dict(message, mid="m1")})
    assert isinstance(parsed, Unsupported) and parsed.sender_id == SHOPPER and parsed.mid == "m1"


@pytest.mark.parametrize(
    "message, reason",
    [
        ({"mid": "m4", "text": "   "}, "empty_message"),
        ({"mid": "m5", "attachments": [{"type": "story_mention", "payload": {"url": "https://example.com/s"}}]}, "story_mention"),
    ],
)
def test_empty_messages_and_story_mentions_are_ignored(message, reason) -> None:
    parsed = parse_event({"sender": {"id": SHOPPER}, "message": message})
    assert isinstance(parsed, Ignored) and parsed.reason == reason


@pytest.mark.parametrize("message", UNREADABLE, ids=UNREADABLE_IDS)
async def test_an_unreadable_message_gets_a_short_note_and_no_turn(harness: Harness, message) -> None:
    harness.recorder.reply = echo_reply()
    assert (await harness.post(message_event(message))).status == 200
    assert harness.recorder.messages == []
    assert texts_to(harness.graph) == [UNSUPPORTED_REPLY]
    assert UNSUPPORTED_REPLY == "Sorry, I can only read text, photos and videos here. Please type your question."


async def test_a_message_over_the_limit_gets_the_too_long_reply_and_no_turn(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    assert (await harness.post(message_event({"mid": "m-long", "text": "x" * 2001}))).status == 200
    assert harness.recorder.messages == []
    assert texts_to(harness.graph) == [too_long_reply(2001, 2000)]
    assert (await harness.post(message_event({"mid": "m-ctl", "text": " points\x00?\u202e "}))).status == 200
    assert [message.text for message in harness.recorder.messages] == ["points?"]


async def test_a_signed_200_kb_message_or_button_payload_gets_the_too_long_reply_at_once(harness: Harness) -> None:
    """Fuzzing: a signed 200 KB message once went whole to the NLU (~17 s of the Rasa server, no reply)."""
    harness.recorder.reply = echo_reply()
    huge = "how many points " * 12_800  # 200 KB
    started = time.monotonic()
    for message in ({"text": huge}, {"text": "hi", "quick_reply": {"payload": huge}}):
        assert (await harness.post(message_event(message))).status == 200
    postback = json.dumps({"object": "instagram", "entry": [{"id": "1", "time": 1, "messaging": [{
        "sender": {"id": SHOPPER}, "recipient": {"id": "1"}, "timestamp": 1,
        "postback": {"mid": "m-postback-huge", "title": "Redeem", "payload": huge}}]}]}).encode()
    assert (await harness.post(postback)).status == 200
    assert time.monotonic() - started < 10
    assert harness.recorder.messages == []
    assert texts_to(harness.graph) == [too_long_reply(len(huge.strip()), 2000)] * 3


async def test_lone_surrogates_are_dropped_from_text_and_payloads_and_a_sender_with_one_is_ignored(
    harness: Harness
) -> None:
    harness.recorder.reply = echo_reply()
    assert (await harness.post(message_event({"text": "how many \ud800points\udfff?"}))).status == 200
    assert (await harness.post(message_event({"text": "x", "quick_reply": {"payload": "/greet\udc00"}}))).status == 200
    assert [message.text for message in harness.recorder.messages] == ["how many points?", "/greet"]
    assert (await harness.post(message_event({"text": "hi"}, sender="1784\ud8001"))).status == 200
    assert len(harness.recorder.messages) == 2


async def test_an_unreadable_message_reopens_the_window_and_held_messages_go_first(harness: Harness) -> None:
    await harness.post(fixture("text_message.json"))
    harness.clock.now += REPLY_WINDOW_SECONDS + 60
    await harness.channel.get_output_channel().send_text_message(SHOPPER, "Your points expire tomorrow")
    assert harness.graph.delivered == []  # held: outside the window
    body = message_event({"attachments": [{"type": "audio", "payload": {"url": "https://example.com/a.mp4"}}]})
    for _ in range(2):  # the redelivery is skipped: one note
        assert (await harness.post(body)).status == 200
    assert texts_to(harness.graph) == ["Your points expire tomorrow", UNSUPPORTED_REPLY]
    await harness.channel.get_output_channel().send_text_message(SHOPPER, "Anything else?")  # the window is open
    assert texts_to(harness.graph)[-1] == "Anything else?"


async def test_a_redelivered_message_is_processed_once(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    body = fixture("text_message.json")
    for _ in range(3):
        assert (await harness.post(body)).status == 200
    assert len(harness.recorder.messages) == 1 and len(harness.graph.messages) == 1


async def test_quick_reply_and_postback_become_their_payloads(harness: Harness) -> None:
    await harness.post(fixture("quick_reply.json"))
    await harness.post(fixture("postback.json"))
    assert [(m.text, m.sender_id) for m in harness.recorder.messages] == [("q1:a", SHOPPER), ("/check_points", SHOPPER)]


async def test_the_first_message_of_a_session_is_marked_to_be_greeted_and_the_next_ones_are_not(harness: Harness) -> None:
    await shopper_says(harness, "do you ship to canada")
    harness.clock.now += SESSION_IDLE_SECONDS - 60
    await shopper_says(harness, "and to mexico?")
    harness.clock.now += SESSION_IDLE_SECONDS + 1  # silent longer than a session lasts
    await shopper_says(harness, "hello again")
    opening = [bool((m.metadata or {}).get(OPENS_SESSION)) for m in harness.recorder.messages]
    assert opening == [True, False, True]


def test_the_channels_session_length_is_the_domains() -> None:
    domain = yaml.safe_load((Path(__file__).resolve().parents[2] / "domain.yml").read_text())
    assert domain["session_config"]["session_expiration_time"] * 60 == SESSION_IDLE_SECONDS


async def test_a_photo_is_a_content_submission_with_its_url(harness: Harness) -> None:
    body = json.dumps({"object": "instagram", "entry": [{"id": "1", "messaging": [{
        "sender": {"id": SHOPPER}, "recipient": {"id": "1"}, "timestamp": 1,
        "message": {"mid": "photo1", "attachments": [{"type": "image", "payload": {"url": "https://cdn.example.com/p.jpg"}}]},
    }]}]}).encode()
    await harness.post(body)
    [message] = harness.recorder.messages
    assert message.text == "/submit_content"
    assert message.metadata == {
        "content": {"kind": "photo", "channel": "instagram", "urls": ["https://cdn.example.com/p.jpg"], "caption": ""},
        "image_url": "https://cdn.example.com/p.jpg",
        OPENS_SESSION: True,  # the shopper's first message
    }


async def test_photos_with_text_are_one_submission_with_every_url_and_the_text_as_caption(harness: Harness) -> None:
    harness.recorder.reply = AnswerFirstThenEcho({"text": "Pick a reward", "buttons": FOURTEEN})
    await shopper_says(harness, "redeem")  # a numbered list is open: a photo is still a submission
    images = [{"type": "image", "payload": {"url": f"https://cdn.example.com/{n}.jpg"}} for n in (1, 2)]
    await harness.post(message_event({"text": " 2 ", "attachments": images + [{"type": "video", "payload": {"url": "https://x/v"}}]}))
    message = harness.recorder.messages[-1]
    assert message.text == "/submit_content"
    assert message.metadata["content"] == {
        "kind": "photo", "channel": "instagram",
        "urls": ["https://cdn.example.com/1.jpg", "https://cdn.example.com/2.jpg"], "caption": "2",
    }
    assert message.metadata["image_urls"] == message.metadata["content"]["urls"]


# ---------------------------------------------------------------- rendering


async def _reply_with(harness: Harness, response: Dict[str, Any]) -> List[Dict[str, Any]]:
    async def reply(message: UserMessage) -> None:
        await message.output_channel.send_response(message.sender_id, dict(response))

    harness.recorder.reply = reply
    await harness.post(fixture("text_message.json"))
    return [m["message"] for m in harness.graph.messages]


async def test_buttons_become_quick_replies_with_short_titles(harness: Harness) -> None:
    buttons = [{"title": "Under $100", "payload": "q1:a"}, {"title": "A very long reward title indeed", "payload": "/redeem{\"r\":\"x\"}"}]
    [sent] = await _reply_with(harness, {"text": "Pick one", "buttons": buttons})
    assert sent["text"] == "Pick one"
    assert sent["quick_replies"][0] == {"content_type": "text", "title": "Under $100", "payload": "q1:a"}
    assert len(sent["quick_replies"][1]["title"]) <= QUICK_REPLY_TITLE_MAX
    assert sent["quick_replies"][1]["payload"] == "/redeem{\"r\":\"x\"}"


async def test_fourteen_buttons_fall_back_to_numbered_text(harness: Harness) -> None:
    buttons = [{"title": f"Option {i}", "payload": f"/pick{{\"n\":{i}}}"} for i in range(1, 15)]
    sent = await _reply_with(harness, {"text": "Pick one", "buttons": buttons})
    assert all("quick_replies" not in m for m in sent)
    text = "\n".join(m["text"] for m in sent)
    assert text.startswith("Pick one\n1. Option 1\n") and "14. Option 14" in text


async def test_long_text_is_split_within_1000_utf8_bytes(harness: Harness) -> None:
    long_text = " ".join(["Punkte für Prämien 🎁."] * 200)  # multi-byte characters, ~5 kB
    sent = await _reply_with(harness, {"text": long_text})
    assert len(sent) > 1
    assert all(utf8_length(m["text"]) <= 1000 for m in sent)
    assert " ".join(m["text"] for m in sent).split() == long_text.split()


async def test_an_image_is_an_image_attachment(harness: Harness) -> None:
    [sent] = await _reply_with(harness, {"image": "https://cdn.example.com/reward.png"})
    assert sent == {"attachment": {"type": "image", "payload": {"url": "https://cdn.example.com/reward.png"}}}


async def test_simple_product_cards_are_a_generic_template_and_others_text(harness: Harness) -> None:
    card = {"title": "Standing desk", "subtitle": "$499 · 4,990 points", "image_url": "https://cdn.example.com/desk.jpg",
            "buttons": [{"title": "View", "url": "https://shop.example.com/desk", "type": "web_url"}]}
    [sent] = await _reply_with(harness, {"elements": [card]})
    assert sent["attachment"]["payload"]["template_type"] == "generic"
    assert sent["attachment"]["payload"]["elements"][0]["buttons"] == [
        {"type": "web_url", "url": "https://shop.example.com/desk", "title": "View"}
    ]
    too_many_buttons = dict(card, buttons=[{"title": f"B{i}", "payload": f"/b{i}"} for i in range(4)])
    assert generic_template_for([too_many_buttons]) is None
    assert generic_template_for([card] * 11) is None


# ---------------------------------------------------------------- 24-hour window


def text_event(text: str, sender: str = SHOPPER, mid: Optional[str] = None) -> bytes:
    """A signed-able webhook body with one text message (a fresh `mid` unless given)."""
    mid = mid or f"aWdfZAG1{uuid.uuid4().hex}"
    return json.dumps({"object": "instagram", "entry": [{"id": "17841400000000000", "time": 1, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": "17841400000000000"}, "timestamp": 1,
        "message": {"mid": mid, "text": text},
    }]}]}).encode()


def texts_to(graph: FakeGraphApi, recipient: str = SHOPPER) -> List[str]:
    return [m["message"].get("text", "") for m in graph.delivered if m["recipient"]["id"] == recipient]


async def test_outside_24_hours_nothing_is_sent_and_the_message_is_held_until_the_shopper_writes(harness: Harness) -> None:
    await harness.post(fixture("text_message.json"))  # the shopper writes at t0
    output = harness.channel.get_output_channel()
    harness.clock.now += REPLY_WINDOW_SECONDS - 60  # still inside
    await output.send_text_message(SHOPPER, "Your points expire soon")
    assert texts_to(harness.graph) == ["Your points expire soon"]
    harness.clock.now += 120  # 24 h and a minute after the shopper's message
    await output.send_text_message(SHOPPER, "Your points expire tomorrow")
    await output.send_response(SHOPPER, {"text": "Pick a reward", "buttons": [{"title": "Free shipping", "payload": "/r1"}]})
    # A shopper the bot never heard from gets nothing either.
    await output.send_text_message("999", "hello")
    assert len(harness.graph.requests) == 1

    # The shopper writes again: the held messages go first, in order, then the reply to the new message.
    harness.recorder.reply = echo_reply()
    await harness.post(text_event("hello again"))
    assert texts_to(harness.graph) == [
        "Your points expire soon", "Your points expire tomorrow", "Pick a reward", "You said: hello again"
    ]
    assert harness.graph.delivered[2]["message"]["quick_replies"][0]["payload"] == "/r1"
    assert await harness.channel.state.take_held(SHOPPER) == []
    assert await harness.channel.state.take_held("999") == [Outgoing({"text": "hello"})]


@pytest.fixture()
async def redis_state() -> AsyncIterator[ChannelState]:
    require_service("Redis", 6379)
    store = RedisChannelState(REDIS_URL)
    yield store
    await store.close()


async def test_held_messages_survive_a_restart_on_redis_and_arrive_when_the_shopper_writes_again(
    instagram_env, redis_state: ChannelState
) -> None:
    shopper = f"7{uuid.uuid4().int % 10**15:015d}"  # Redis keeps state between runs: a shopper of this run only
    clock = Clock()
    async with FakeGraphApi(access_token=ACCESS_TOKEN) as graph:
        instagram_env(graph.base_url)
        before = InstagramInput(clock=clock, state=redis_state)
        app, server, base = await _serve(before, Recorder())
        try:
            async with aiohttp.ClientSession() as http:
                body = text_event("hi", sender=shopper)
                async with http.post(f"{base}/webhooks/instagram/webhook", data=body, headers=sign(body)) as reply:
                    assert reply.status == 200
            clock.now += REPLY_WINDOW_SECONDS + 1
            buttons = [{"title": f"Reward {n}", "payload": f"/redeem_reward{{\"reward\":\"r{n}\"}}"} for n in range(1, 15)]
            await before.get_output_channel().send_text_message(shopper, "Your points expire tomorrow")
            await before.get_output_channel().send_text_with_buttons(shopper, "Or pick a reward", buttons)
            assert graph.delivered == []
        finally:
            await _stop(server)

        # "Restart": a new channel with its own connection to the same Redis.
        after_store = RedisChannelState(REDIS_URL)
        after = InstagramInput(clock=clock, state=after_store)
        recorder = Recorder()
        recorder.reply = echo_reply()
        app, server, base = await _serve(after, recorder)
        try:
            async with aiohttp.ClientSession() as http:
                for text in ("hello again", "14."):
                    body = text_event(text, sender=shopper)
                    async with http.post(f"{base}/webhooks/instagram/webhook", data=body, headers=sign(body)) as reply:
                        assert reply.status == 200
        finally:
            await _stop(server)
            await after_store.close()
    sent = texts_to(graph, shopper)
    assert sent[0] == "Your points expire tomorrow"
    assert sent[1].startswith("Or pick a reward\n1. Reward 1\n") and sent[1].endswith(CHOICE_HINT)
    assert sent[2] == "You said: hello again"
    # The numbered list was remembered when it was finally delivered, in Redis: "14." picks the 14th reward.
    assert [m.text for m in recorder.messages] == ["hello again", '/redeem_reward{"reward":"r14"}']


# ---------------------------------------------------------------- units


def test_signature_check_is_exact() -> None:
    body = b'{"object":"instagram"}'
    good = sign(body)["X-Hub-Signature-256"]
    assert signature_is_valid(APP_SECRET, body, good)
    assert signature_is_valid(APP_SECRET, body, good.upper().replace("SHA256=", "sha256="))
    assert not signature_is_valid(APP_SECRET, body + b" ", good)
    assert not signature_is_valid(APP_SECRET, body, None)
    assert not signature_is_valid(APP_SECRET, body, "sha256=\udcff")


def test_secrets_stay_out_of_repr(instagram_env) -> None:
    instagram_env("http://127.0.0.1:1/v21.0")
    from bot.settings import get_settings
    from channels.instagram.config import config_from_settings

    config = config_from_settings()
    assert config is not None and config.api_base == "http://127.0.0.1:1/v21.0"
    for text in (repr(config), repr(get_settings())):
        assert APP_SECRET not in text and ACCESS_TOKEN not in text and VERIFY_TOKEN not in text


async def test_a_state_store_outage_is_503_so_meta_redelivers_and_nothing_is_lost(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    harness.store.fail("first_time")
    reply = await harness.post(fixture("text_message.json"))
    assert reply.status == 503 and harness.store.failures == 1
    assert harness.recorder.messages == [] and harness.graph.requests == []
    # Meta's redelivery, once the store is back, is processed.
    assert (await harness.post(fixture("text_message.json"))).status == 200
    assert [m.text for m in harness.recorder.messages] == ["Do you have standing desks?"]
    assert texts_to(harness.graph) == ["You said: Do you have standing desks?"]


# How many calls of the operation the first message makes: a put (last seen); three gets (its numbered list,
# its last seen, the window check of its reply); a pop_all (held messages).
@pytest.mark.parametrize("operation, first_message_calls", [("put", 1), ("get", 3), ("pop_all", 1)],
                         ids=["shopper_wrote", "payload_chosen", "held"])
async def test_a_state_failure_mid_batch_is_503_and_the_redelivery_skips_only_what_was_handled(
    harness: Harness, operation: str, first_message_calls: int
) -> None:
    harness.recorder.reply = echo_reply()
    # The second message is a number, so reading it looks up a numbered list (a get).
    batch = json.loads(fixture("batch_two_messages.json"))
    batch["entry"][0]["messaging"][1]["message"]["text"] = "2"
    body = json.dumps(batch).encode()
    # Let the first message through, fail the second's.
    harness.store.fail(operation, after=first_message_calls)
    assert (await harness.post(body)).status == 503 and harness.store.failures == 1
    assert [m.text for m in harness.recorder.messages] == ["hi"]
    assert (await harness.post(body)).status == 200
    assert [m.text for m in harness.recorder.messages] == ["hi", "2"]
    assert [m["message"]["text"] for m in harness.graph.delivered] == ["You said: hi", "You said: 2"]


async def test_a_failing_turn_does_not_fail_the_rest_of_the_batch_and_meta_redelivers_it(harness: Harness) -> None:
    failures = [1]

    async def fall_over_once(message: UserMessage) -> None:
        if message.text == "hi" and failures[0]:
            failures[0] -= 1
            raise RuntimeError("the tracker store is down")
        await echo_reply()(message)

    harness.recorder.reply = fall_over_once
    assert (await harness.post(fixture("batch_two_messages.json"))).status == 503  # Meta redelivers the batch
    assert [m.text for m in harness.recorder.messages] == ["hi", "how many points do I have"]
    assert [m["message"]["text"] for m in harness.graph.delivered] == ["You said: how many points do I have"]
    assert (await harness.post(fixture("batch_two_messages.json"))).status == 200  # the redelivery
    assert [m.text for m in harness.recorder.messages] == ["hi", "how many points do I have", "hi"]
    assert [m["message"]["text"] for m in harness.graph.delivered] == [
        "You said: how many points do I have", "You said: hi"]


async def test_a_message_that_keeps_failing_gets_an_apology_after_three_tries(harness: Harness) -> None:
    async def always_fail(message: UserMessage) -> None:
        raise RuntimeError("the lock store is down")

    harness.recorder.reply = always_fail
    statuses = [(await harness.post(fixture("text_message.json"))).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]  # the fourth copy is a duplicate
    assert texts_to(harness.graph) == [ERROR_REPLY] and len(harness.recorder.messages) == 3


async def test_a_turn_that_failed_after_answering_is_not_repeated(harness: Harness) -> None:
    async def answer_then_fail(message: UserMessage) -> None:
        await echo_reply()(message)
        raise RuntimeError("the tracker could not be saved")

    harness.recorder.reply = answer_then_fail
    assert (await harness.post(fixture("text_message.json"))).status == 200
    assert texts_to(harness.graph) == ["You said: Do you have standing desks?"]


async def test_a_failing_graph_api_does_not_fail_the_webhook(harness: Harness) -> None:
    harness.graph.status = 500
    harness.recorder.reply = echo_reply()
    assert (await harness.post(fixture("text_message.json"))).status == 200
    assert len(harness.recorder.messages) == 1 and len(harness.graph.requests) == 3  # three attempts


def test_rasa_builds_the_channel_from_credentials_yml() -> None:
    from rasa.core.run import _create_single_channel

    channel = _create_single_channel("channels.instagram.InstagramInput", {})
    assert isinstance(channel, InstagramInput) and channel.url_prefix() == "instagram"


# ---------------------------------------------------------------- numbered choices


FOURTEEN = [{"title": f"Reward {n}", "payload": f'/redeem_reward{{"reward":"r{n}"}}'} for n in range(1, 15)]


class AnswerFirstThenEcho:
    """An agent that answers the first message with `responses` and echoes every later one."""

    def __init__(self, *responses: Dict[str, Any]) -> None:
        self.responses = responses
        self.answered = False

    async def __call__(self, message: UserMessage) -> None:
        if self.answered:
            await echo_reply()(message)
            return
        self.answered = True
        for response in self.responses:
            await message.output_channel.send_response(message.sender_id, dict(response))


async def shopper_says(harness: Harness, *texts: str) -> List[str]:
    """Each text as a new shopper message; what the conversation received for them."""
    before = len(harness.recorder.messages)
    for text in texts:
        assert (await harness.post(text_event(text))).status == 200
    return [m.text for m in harness.recorder.messages[before:]]


@pytest.mark.parametrize("answer", ["2", "2.", " 2 ", "2)"])
async def test_a_numbered_reply_becomes_the_chosen_buttons_payload(harness: Harness, answer: str) -> None:
    harness.recorder.reply = AnswerFirstThenEcho({"text": "Pick a reward", "buttons": FOURTEEN})
    await shopper_says(harness, "redeem")
    [shown] = texts_to(harness.graph)
    assert shown.startswith("Pick a reward\n1. Reward 1\n2. Reward 2\n") and shown.endswith(CHOICE_HINT)
    assert await shopper_says(harness, answer) == ['/redeem_reward{"reward":"r2"}']


async def test_other_text_and_out_of_range_numbers_pass_through_and_keep_the_list(harness: Harness) -> None:
    harness.recorder.reply = AnswerFirstThenEcho({"text": "Pick a reward", "buttons": FOURTEEN})
    await shopper_says(harness, "redeem")
    assert await shopper_says(harness, "0", "15", "2 please", "what is 2+2?", "3") == [
        "0", "15", "2 please", "what is 2+2?", '/redeem_reward{"reward":"r3"}'
    ]


async def test_a_number_is_just_text_without_a_list_or_once_quick_replies_replace_it(harness: Harness) -> None:
    assert await shopper_says(harness, "2") == ["2"]
    harness.recorder.reply = AnswerFirstThenEcho(
        {"text": "Pick a reward", "buttons": FOURTEEN}, {"text": "Or confirm", "buttons": [{"title": "Yes", "payload": "/affirm"}]}
    )
    await shopper_says(harness, "redeem")
    assert await shopper_says(harness, "2") == ["2"]  # the quick replies came last: the numbers mean nothing now


async def test_a_quick_reply_payload_that_looks_like_a_number_is_not_remapped(harness: Harness) -> None:
    harness.recorder.reply = AnswerFirstThenEcho({"text": "Pick a reward", "buttons": FOURTEEN})
    await shopper_says(harness, "redeem")
    body = json.loads(fixture("quick_reply.json"))
    body["entry"][0]["messaging"][0]["message"]["quick_reply"]["payload"] = "2"
    await harness.post(json.dumps(body).encode())
    assert harness.recorder.messages[-1].text == "2"


async def test_buttons_with_a_payload_too_long_for_quick_replies_are_numbered(harness: Harness) -> None:
    long_payload = '/redeem_reward{"note":"' + "x" * 1000 + '"}'
    harness.recorder.reply = AnswerFirstThenEcho({"text": "Pick", "buttons": [{"title": "Short", "payload": "/a"}, {"title": "Long", "payload": long_payload}]})
    await shopper_says(harness, "redeem")
    [shown] = harness.graph.delivered
    assert "quick_replies" not in shown["message"] and "2. Long" in shown["message"]["text"]
    assert await shopper_says(harness, "2") == [long_payload]


async def test_product_cards_over_instagram_limits_fall_back_to_text_with_numbered_actions(harness: Harness) -> None:
    desk = {"title": "Standing desk", "subtitle": "Oak top, electric lift, memory presets, anti-collision, cable tray, castors and a ten-year warranty",
            "image_url": "https://cdn.example.com/desk.jpg",
            "buttons": [{"title": "View", "url": "https://shop.example.com/desk", "type": "web_url"},
                        {"title": "Redeem", "payload": "/redeem_reward{\"reward\":\"desk\"}"}]}
    chair = {"title": "Chair", "subtitle": "Mesh back", "buttons": [{"title": "Redeem", "payload": "/redeem_reward{\"reward\":\"chair\"}"}]}
    assert generic_template_for([desk, chair]) is None  # the desk's subtitle is over 80 characters
    harness.recorder.reply = AnswerFirstThenEcho({"elements": [desk, chair]})
    await shopper_says(harness, "show rewards")
    [shown] = texts_to(harness.graph)
    assert shown.startswith("• Standing desk — Oak top") and "https://shop.example.com/desk" in shown
    assert "• Chair — Mesh back" in shown
    assert "1. Standing desk: Redeem\n2. Chair: Redeem" in shown and shown.endswith(CHOICE_HINT)
    assert await shopper_says(harness, "2") == ['/redeem_reward{"reward":"chair"}']


async def test_cards_that_fit_stay_a_template_and_their_buttons_replace_a_numbered_list(harness: Harness) -> None:
    card = {"title": "Chair", "subtitle": "Mesh back", "image_url": "https://cdn.example.com/chair.jpg",
            "buttons": [{"title": "Redeem", "payload": "/redeem_reward{\"reward\":\"chair\"}"}]}
    harness.recorder.reply = AnswerFirstThenEcho({"text": "Pick a reward", "buttons": FOURTEEN}, {"elements": [card]})
    await shopper_says(harness, "show rewards")
    template = harness.graph.delivered[-1]["message"]["attachment"]["payload"]
    assert template["elements"][0]["buttons"] == [
        {"type": "postback", "payload": "/redeem_reward{\"reward\":\"chair\"}", "title": "Redeem"}
    ]
    assert await shopper_says(harness, "1") == ["1"]


@pytest.mark.parametrize("text, number", [("2", 2), (" 12. ", 12), ("3)", 3), ("2 please", None), ("", None), ("1.5", None), ("٣", 3)])
def test_chosen_number_reads_only_a_bare_number(text: str, number: Optional[int]) -> None:
    # Any script's digits count ("٣" is 3): shoppers answer with the keyboard they have.
    assert chosen_number(text) == number


# ---------------------------------------------------------------- Graph API failures


@pytest.mark.parametrize(
    "status, headers, failures, expected_sleeps",
    [
        (429, {"Retry-After": "3"}, 1, [3.0]),
        (503, {}, 2, [1.0, 2.0]),
        (500, {"Retry-After": "3600"}, 1, [10.0]),
        (429, {"Retry-After": "soon"}, 1, [1.0]),
    ],
    ids=["429-retry-after", "503-backoff", "retry-after-capped", "unreadable-retry-after"],
)
async def test_sends_are_retried_on_429_and_5xx_then_delivered(
    harness: Harness, status: int, headers: Dict[str, str], failures: int, expected_sleeps: Sequence[float]
) -> None:
    harness.graph.fail_next(failures, status, headers=headers)
    harness.recorder.reply = echo_reply()
    await shopper_says(harness, "hi")
    assert harness.sleeps.delays == expected_sleeps
    assert len(harness.graph.messages) == failures + 1
    assert texts_to(harness.graph) == ["You said: hi"]


async def test_other_4xx_answers_are_not_retried_and_the_message_is_dropped(harness: Harness) -> None:
    harness.graph.fail_next(1, 400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}})
    harness.recorder.reply = echo_reply()
    await shopper_says(harness, "hi")
    assert len(harness.graph.messages) == 1 and harness.sleeps.delays == []
    await shopper_says(harness, "again")
    assert texts_to(harness.graph) == ["You said: again"]  # the dropped reply was not held


async def test_a_send_failing_three_times_is_logged_without_the_token_and_held_for_the_next_message(
    harness: Harness, capsys
) -> None:
    harness.graph.fail_next(3, 502, {"error": {"message": f"upstream said Bearer {ACCESS_TOKEN}", "code": 2}})
    harness.recorder.reply = echo_reply()
    await shopper_says(harness, "hi")
    assert len(harness.graph.messages) == 3 and harness.sleeps.delays == [1.0, 2.0]
    logs = capsys.readouterr().err
    failed = [line for line in logs.splitlines() if "instagram.send.failed" in line]
    assert len(failed) == 1 and "502" in failed[0]  # json or console format
    assert ACCESS_TOKEN not in logs
    await shopper_says(harness, "again")  # the held reply goes first
    assert texts_to(harness.graph) == ["You said: hi", "You said: again"]


async def test_a_reply_the_graph_api_could_not_be_reached_for_is_held(harness: Harness) -> None:
    harness.recorder.reply = echo_reply()
    port = harness.graph.port
    await harness.graph.stop()  # Meta's API unreachable: no connection, so surely not delivered
    try:
        await shopper_says(harness, "hi")
        assert texts_to(harness.graph) == []
    finally:
        await harness.graph.start(port)
    await shopper_says(harness, "again")
    assert texts_to(harness.graph) == ["You said: hi", "You said: again"]


async def test_metas_outside_window_answer_holds_the_messages_until_the_shopper_writes_again(harness: Harness) -> None:
    harness.graph.fail_next(1, 400, OUTSIDE_WINDOW_ERROR)
    harness.recorder.reply = AnswerFirstThenEcho({"text": "first"}, {"text": "second"})
    await shopper_says(harness, "hi")
    # "first" was refused by Meta and held; "second" was held without trying (the window is now closed).
    assert len(harness.graph.messages) == 1 and harness.graph.delivered == [] and harness.sleeps.delays == []
    await shopper_says(harness, "hello?")
    assert texts_to(harness.graph) == ["first", "second", "You said: hello?"]


def test_retry_delay_doubles_and_is_capped() -> None:
    assert [retry_delay(attempt, None) for attempt in (1, 2, 3, 4, 5, 6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert retry_delay(1, "0") == 0.0 and retry_delay(1, "-5") == 1.0 and retry_delay(2, "nan") == 2.0


# ---------------------------------------------------------------- status line


@pytest.mark.parametrize(
    "env, line",
    [
        ({"INSTAGRAM_APP_SECRET": "s", "INSTAGRAM_VERIFY_TOKEN": "v", "INSTAGRAM_ACCESS_TOKEN": "t"}, "instagram: on"),
        ({}, "instagram: off — set INSTAGRAM_APP_SECRET, INSTAGRAM_VERIFY_TOKEN and INSTAGRAM_ACCESS_TOKEN"),
        ({"INSTAGRAM_APP_SECRET": "s", "INSTAGRAM_VERIFY_TOKEN": " "}, "instagram: off — set INSTAGRAM_VERIFY_TOKEN and INSTAGRAM_ACCESS_TOKEN"),
        ({"INSTAGRAM_APP_SECRET": "s", "INSTAGRAM_VERIFY_TOKEN": "v"}, "instagram: off — set INSTAGRAM_ACCESS_TOKEN"),
    ],
    ids=["on", "nothing-set", "blank-counts-as-unset", "one-missing"],
)
def test_instagram_status_says_on_or_what_to_set(env: Dict[str, str], line: str) -> None:
    assert instagram_status(Settings.from_env(env)) == line
