"""The Telegram channel through its real HTTP endpoint (a Sanic server on a free port, registered the way
`rasa run` registers channels) against a local fake Bot API server. The conversation is replaced by a
handler that records each UserMessage and answers through the message's output channel."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from bot.settings import Settings
from channels.telegram import (
    MAX_BODY_BYTES,
    MAX_CALLBACK_DATA_BYTES,
    SECRET_HEADER,
    UNSUPPORTED_REPLY,
    BoundedLru,
    ChatPacer,
    PayloadStore,
    TelegramInput,
)
from tests.fakes.telegram_api import FakeTelegramApi

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
TOKEN = "123456:TEST-token_for-the-fake-api"
SECRET = "webhook-secret_7f3a9c"
WEBHOOK = "/webhooks/telegram/webhook"


def fixture(name: str) -> Dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class FakeAgent:
    """Stands in for rasa.core.agent.Agent: records messages and replies with `self.reply`."""

    def __init__(self) -> None:
        self.messages: List[UserMessage] = []
        self.reply: Dict[str, Any] = {"text": "echo"}
        self.fail = False

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        if self.fail:
            raise RuntimeError("the model fell over")
        await message.output_channel.send_response(message.sender_id, self.reply)


class Harness:
    def __init__(self, api: FakeTelegramApi, agent: FakeAgent, channel: TelegramInput, url: str) -> None:
        self.api, self.agent, self.channel, self.url = api, agent, channel, url
        self.session = aiohttp.ClientSession()

    async def post(self, body: Any, secret: Optional[str] = SECRET, raw: Optional[bytes] = None, **headers: str):
        headers = dict(headers)
        if secret is not None:
            headers[SECRET_HEADER] = secret
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.session.post(self.url + WEBHOOK, data=data, headers=headers) as reply:
            text = await reply.text()
            return reply.status, (json.loads(text) if text else None)


async def _serve(settings: Settings, **channel_options: Any):
    Sanic.test_mode = True
    app = Sanic(f"telegram_test_{uuid.uuid4().hex[:8]}")
    agent = FakeAgent()
    app.ctx.agent = agent
    channel = TelegramInput(settings, **channel_options)
    register([channel], app, route="/webhooks/")
    server = await app.create_server(host="127.0.0.1", port=0, return_asyncio_server=True)
    await server.startup()
    await server.before_start()
    await server.after_start()
    port = server.server.sockets[0].getsockname()[1]
    return app, server, agent, channel, f"http://127.0.0.1:{port}"


async def _stop(server: Any) -> None:
    await server.before_stop()
    server.close()
    await server.wait_closed()
    await server.after_stop()


@pytest.fixture()
async def tg(tmp_path: Path) -> AsyncIterator[Harness]:
    api = await FakeTelegramApi(TOKEN).start()
    settings = Settings.from_env(
        {
            "RAPPORT_DATA_DIR": str(tmp_path / "var"),
            "TELEGRAM_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TELEGRAM_API_BASE": api.base_url,
        }
    )
    _app, server, agent, channel, url = await _serve(settings, pacing_interval=0.0)
    harness = Harness(api, agent, channel, url)
    yield harness
    await harness.session.close()
    await _stop(server)
    await api.stop()


async def test_the_bot_starts_in_the_server_loop_and_stops_with_it(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    settings = Settings.from_env(
        {"RAPPORT_DATA_DIR": str(tmp_path), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_BASE": api.base_url}
    )
    _app, server, _agent, channel, _url = await _serve(settings)
    try:
        assert channel.bot is not None and channel.bot.username == "shop_bot"
        assert [call.method for call in api.calls] == ["getMe"]  # initialised before the first request
    finally:
        await _stop(server)
        await api.stop()
    assert channel.bot is None


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]])
async def test_a_missing_or_forged_secret_is_refused_and_nothing_processed(tg: Harness, secret) -> None:
    status, body = await tg.post(fixture("text_message"), secret=secret)
    assert status == 403 and "secret" in body["error"]
    assert tg.agent.messages == [] and tg.api.called("sendMessage") == []


async def test_a_text_message_reaches_the_conversation_and_the_reply_reaches_the_chat(tg: Harness) -> None:
    status, body = await tg.post(fixture("text_message"))
    assert status == 200 and body["processed"] is True
    [message] = tg.agent.messages
    assert message.text == "how many points do I have?"
    assert message.sender_id == "1111111"
    assert message.input_channel == "telegram"
    assert message.metadata["telegram_user_id"] == 1111111
    assert message.metadata["language_code"] == "en"
    [sent] = tg.api.called("sendMessage")
    assert int(sent["chat_id"]) == 1111111 and sent["text"] == "echo"


async def test_buttons_become_an_inline_keyboard_and_long_payloads_travel_by_short_key(tg: Harness) -> None:
    long_payload = '/redeem_reward{"reward": "' + "free-shipping-on-orders-over-fifty-" * 3 + '"}'
    assert len(long_payload.encode()) > MAX_CALLBACK_DATA_BYTES
    tg.agent.reply = {
        "text": "Which reward?",
        "buttons": [{"title": "Free shipping", "payload": "/affirm"}, {"title": "The long one", "payload": long_payload}],
    }
    await tg.post(fixture("text_message"))
    [sent] = tg.api.called("sendMessage")
    keyboard = sent["reply_markup"]["inline_keyboard"]
    assert [[button["text"] for button in row] for row in keyboard] == [["Free shipping"], ["The long one"]]
    data = [row[0]["callback_data"] for row in keyboard]
    assert data[0] == "/affirm"
    assert all(len(item.encode()) <= MAX_CALLBACK_DATA_BYTES for item in data)
    assert data[1] != long_payload

    # The shopper presses the long button: its payload comes back in full.
    press = fixture("callback_query")
    press["update_id"] = 20001
    press["callback_query"]["data"] = data[1]
    tg.agent.reply = {"text": "done"}
    status, _ = await tg.post(press)
    assert status == 200
    assert tg.agent.messages[-1].text == long_payload
    assert [params["callback_query_id"] for params in tg.api.called("answerCallbackQuery")] == ["4382bfdwdsb323b2d9"]


async def test_a_callback_query_is_answered_and_its_payload_delivered(tg: Harness) -> None:
    status, body = await tg.post(fixture("callback_query"))
    assert status == 200 and body["processed"] is True
    [message] = tg.agent.messages
    assert message.text == "q1:a" and message.sender_id == "1111111"
    assert tg.api.called("answerCallbackQuery") == [{"callback_query_id": "4382bfdwdsb323b2d9"}]


async def test_an_expired_short_key_is_answered_and_explained(tg: Harness) -> None:
    press = fixture("callback_query")
    press["callback_query"]["data"] = "~k:unknownkey"
    status, body = await tg.post(press)
    assert status == 200 and body["processed"] is False
    assert tg.agent.messages == []
    assert len(tg.api.called("answerCallbackQuery")) == 1
    assert "expired" in tg.api.called("sendMessage")[0]["text"]


async def test_a_callback_query_is_answered_even_when_the_turn_fails(tg: Harness) -> None:
    tg.agent.fail = True
    status, _ = await tg.post(fixture("callback_query"))
    assert status == 200
    assert len(tg.api.called("answerCallbackQuery")) == 1
    assert "went wrong" in tg.api.called("sendMessage")[0]["text"]


async def test_a_duplicate_update_is_processed_once(tg: Harness) -> None:
    first = await tg.post(fixture("text_message"))
    second = await tg.post(fixture("text_message"))
    assert first[0] == second[0] == 200
    assert len(tg.agent.messages) == 1 and len(tg.api.called("sendMessage")) == 1


async def test_a_body_over_one_megabyte_is_413(tg: Harness) -> None:
    update = fixture("text_message")
    update["padding"] = "x" * (MAX_BODY_BYTES + 1)
    status, body = await tg.post(update)
    assert status == 413 and "too large" in body["error"]
    assert tg.agent.messages == []


async def test_a_chunked_body_over_one_megabyte_is_413_without_buffering_it_all(tg: Harness) -> None:
    async def chunks():
        yield json.dumps(fixture("text_message"))[:-1].encode() + b', "padding": "'
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MB in all, no Content-Length
        yield b'"}'

    async with tg.session.post(tg.url + WEBHOOK, data=chunks(), headers={SECRET_HEADER: SECRET}) as reply:
        assert reply.status == 413
    assert tg.agent.messages == []


async def test_a_body_of_exactly_one_megabyte_is_accepted(tg: Harness) -> None:
    update = fixture("text_message")
    update["padding"] = ""
    raw = json.dumps(update).encode()
    update["padding"] = "x" * (MAX_BODY_BYTES - len(raw))
    raw = json.dumps(update).encode()
    assert len(raw) == MAX_BODY_BYTES
    status, body = await tg.post(None, raw=raw)
    assert status == 200 and body["processed"] is True


async def test_group_chats_and_edited_messages_are_ignored(tg: Harness) -> None:
    group = fixture("text_message")
    group["message"]["chat"] = {"id": -100123, "type": "group", "title": "Fans"}
    edited = fixture("text_message")
    edited["update_id"] += 1
    edited["edited_message"] = edited.pop("message")
    edited["edited_message"]["edit_date"] = 1441645600
    for update in (group, edited):
        status, body = await tg.post(update)
        assert status == 200 and body["processed"] is False
    assert tg.agent.messages == [] and tg.api.called("sendMessage") == []


async def test_telegram_unreachable_gives_503_so_the_update_is_retried(tmp_path: Path) -> None:
    api = FakeTelegramApi(TOKEN)
    api.port = 1  # nothing listens there: the Bot cannot be initialised at start
    settings = Settings.from_env(
        {"RAPPORT_DATA_DIR": str(tmp_path), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_BASE": api.base_url}
    )
    _app, server, agent, channel, url = await _serve(settings)
    try:
        assert channel.bot is None
        async with aiohttp.ClientSession() as session:
            async with session.post(url + WEBHOOK, json=fixture("text_message"), headers={SECRET_HEADER: SECRET}) as reply:
                assert reply.status == 503
        assert agent.messages == []
        assert 10001 not in channel.recent_updates  # Telegram's retry will be processed
    finally:
        await _stop(server)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"\xff\xfe garbage", b"[1, 2]", b'{"message": {"text": "hi"}}', b'{"update_id": "7"}', b"[" * 60_000, b""],
)
async def test_malformed_bodies_get_200_and_nothing_is_processed(tg: Harness, raw: bytes) -> None:
    status, body = await tg.post(None, raw=raw)
    assert status == 200 and body["processed"] is False
    assert tg.agent.messages == [] and tg.api.calls[1:] == []


async def test_an_update_with_a_broken_message_is_200_and_nothing_processed(tg: Harness) -> None:
    status, body = await tg.post({"update_id": 30001, "message": {"text": "no chat, no date"}})
    assert status == 200 and body["processed"] is False
    assert tg.agent.messages == []


async def test_a_sticker_gets_a_polite_reply_and_no_turn(tg: Harness) -> None:
    update = fixture("text_message")
    del update["message"]["text"]
    update["message"]["sticker"] = {
        "file_id": "CAACAgIAAx", "file_unique_id": "AgADx", "type": "regular",
        "width": 512, "height": 512, "is_animated": False, "is_video": False,
    }
    status, _ = await tg.post(update)
    assert status == 200 and tg.agent.messages == []
    assert [params["text"] for params in tg.api.called("sendMessage")] == [UNSUPPORTED_REPLY]


async def test_a_voice_message_gets_a_polite_reply(tg: Harness) -> None:
    update = fixture("text_message")
    del update["message"]["text"]
    update["message"]["voice"] = {"file_id": "AwACAgIAAx", "file_unique_id": "AgADy", "duration": 3}
    status, _ = await tg.post(update)
    assert status == 200 and tg.agent.messages == []
    assert tg.api.called("sendMessage")[0]["text"] == UNSUPPORTED_REPLY


async def test_a_photo_reaches_the_conversation_with_its_file_id(tg: Harness) -> None:
    status, _ = await tg.post(fixture("photo_message"))
    assert status == 200
    [message] = tg.agent.messages
    assert message.text == "my unboxing photo"
    assert message.metadata["photo_file_id"] == "AgACAgIAAxkBAAIC"  # the largest size


async def test_a_photo_without_caption_is_slash_photo(tg: Harness) -> None:
    update = fixture("photo_message")
    del update["message"]["caption"]
    await tg.post(update)
    assert tg.agent.messages[0].text == "/photo"


@pytest.mark.parametrize(
    "text, expected_text, deep_link",
    [
        ("/start ref_AbC123xYz", "/start", "ref_AbC123xYz"),
        ("/start link_tok3n-42", "/start", "link_tok3n-42"),
        ("/start", "/greet", None),
        ("/start@shop_bot", "/greet", None),
        ("/start somethingelse", "/greet", None),
    ],
)
async def test_start_and_deep_links(tg: Harness, text: str, expected_text: str, deep_link: Optional[str]) -> None:
    update = fixture("start_deeplink")
    update["message"]["text"] = text
    await tg.post(update)
    [message] = tg.agent.messages
    assert message.text == expected_text and message.sender_id == "2222222"
    assert message.metadata.get("deep_link") == deep_link


async def test_a_long_reply_is_split_into_telegram_sized_messages(tg: Harness) -> None:
    tg.agent.reply = {"text": ("All about your points. " * 200)[:4500]}
    await tg.post(fixture("text_message"))
    sent = [params["text"] for params in tg.api.called("sendMessage")]
    assert len(sent) == 2 and all(len(text) <= 4096 for text in sent)


async def test_an_image_is_sent_with_send_photo_and_custom_json_is_ignored(tg: Harness) -> None:
    tg.agent.reply = {"image": "https://shop.example/p/1.jpg"}
    await tg.post(fixture("text_message"))
    tg.agent.reply = {"custom": {"anything": 1}}
    update = fixture("text_message")
    update["update_id"] += 1
    await tg.post(update)
    assert [params["photo"] for params in tg.api.called("sendPhoto")] == ["https://shop.example/p/1.jpg"]
    assert tg.api.called("sendMessage") == []


async def test_a_429_is_retried_after_the_time_telegram_asks(tg: Harness) -> None:
    tg.api.fail_once_with_429("sendMessage", retry_after=1)
    started = time.monotonic()
    status, _ = await tg.post(fixture("text_message"))
    assert status == 200
    assert time.monotonic() - started >= 1.0
    assert len(tg.api.called("sendMessage")) == 2  # the 429 and the retry
    assert [call.method for call in tg.api.calls].count("sendMessage") == 2


async def test_an_unconfigured_channel_answers_503_and_processes_nothing(tmp_path: Path) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path)})
    _app, server, agent, channel, url = await _serve(settings)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + WEBHOOK, json=fixture("text_message"), headers={SECRET_HEADER: ""}) as reply:
                assert reply.status == 503
                assert await reply.json() == {"error": "telegram channel is not configured"}
        assert agent.messages == [] and channel.bot is None
    finally:
        await _stop(server)


def test_secrets_stay_out_of_settings_repr(tmp_path: Path) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET})
    assert TOKEN not in repr(settings) and SECRET not in repr(settings)
    assert settings.telegram_api_base == "https://api.telegram.org/bot"


def test_the_payload_store_keeps_short_payloads_and_keys_long_ones() -> None:
    store = PayloadStore(capacity=2)
    assert store.callback_data("/affirm") == "/affirm"
    keys = [store.callback_data("/x" + "y" * 100 + str(i)) for i in range(3)]
    assert all(len(key.encode()) <= MAX_CALLBACK_DATA_BYTES for key in keys)
    assert store.payload(keys[0]) is None  # bounded: the oldest is forgotten
    assert store.payload(keys[2]) == "/x" + "y" * 100 + "2"
    assert store.callback_data("~k:looks-like-a-key") != "~k:looks-like-a-key"  # never mistaken for a key


def test_the_update_lru_is_bounded() -> None:
    seen = BoundedLru(3)
    assert all(seen.add_if_new(i) for i in range(4))
    assert len(seen) == 3 and seen.add_if_new(0) and not seen.add_if_new(3)


async def test_messages_to_one_chat_are_paced_and_other_chats_are_not_held_up() -> None:
    pacer = ChatPacer(interval=0.2)
    times: Dict[str, List[float]] = {"1": [], "2": []}

    def send(chat: str):
        async def call() -> None:
            times[chat].append(time.monotonic())
        return call

    started = time.monotonic()
    await asyncio.gather(*(pacer.run("1", send("1")) for _ in range(3)), pacer.run("2", send("2")))
    one = times["1"]
    assert len(one) == 3 and one[1] - one[0] >= 0.19 and one[2] - one[1] >= 0.19
    assert times["2"][0] - started < 0.1
