"""The Telegram channel through its real HTTP endpoint (a Sanic server on a free port, registered the way
`rasa run` registers channels) against a local fake Bot API server. The conversation is replaced by a
handler that records each UserMessage and answers through the message's output channel.

Each server gets its own in-memory channel state (the process-wide one would carry update ids from test
to test); the Redis tests give two servers one Redis, as two Rasa processes would share it."""
from __future__ import annotations

import asyncio
import copy
import json
import random
import socket
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from bot.channel_state import MemoryChannelState, RedisChannelState
from bot.settings import Settings
from channels.telegram.config import POLLING_MODE, SECRET_HEADER, SECRET_RULE, telegram_status, valid_webhook_secret
from channels.telegram.inbound import (
    CONTACT_REPLY, EDITED_REPLY, ERROR_REPLY, EXPIRED_BUTTON_REPLY, LOCATION_REPLY, MAX_BODY_BYTES, STICKER_REPLY,
    UNSUPPORTED_REPLY, VOICE_REPLY, TelegramInput,
)
from channels.telegram.outbound import MAX_CAPTION_CHARS, ChatPacer, RateLimiter
from channels.telegram.state import (
    BUTTON_TTL_SECONDS, MAX_CALLBACK_DATA_BYTES, SHORT_KEY_PREFIX, UPDATE_TTL_SECONDS, callback_data_for, payload_for,
)
from tests.fakes.telegram_api import FakeTelegramApi
from tests.services import REDIS_URL, require_service

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
        # A copy: Rasa's send_response pops the keys of the dict it is given.
        await message.output_channel.send_response(message.sender_id, copy.deepcopy(self.reply))


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


def settings_for(tmp_path: Path, api: Optional[FakeTelegramApi] = None, **env: str) -> Settings:
    values = {"RAPPORT_DATA_DIR": str(tmp_path / "var"), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET}
    if api is not None:
        values["TELEGRAM_API_BASE"] = api.base_url
    values.update(env)
    return Settings.from_env({key: value for key, value in values.items() if value is not None})


async def _serve(settings: Settings, **channel_options: Any):
    Sanic.test_mode = True
    app = Sanic(f"telegram_test_{uuid.uuid4().hex[:8]}")
    agent = FakeAgent()
    app.ctx.agent = agent
    channel_options.setdefault("state", MemoryChannelState())
    channel = TelegramInput(settings, **channel_options)
    register([channel], app, route="/webhooks/")
    # A socket of our own on a free port: Sanic 21.12 takes port=0 for its default 8000.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    await server.startup()
    await server.before_start()
    await server.after_start()
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
    assert tg.api.called("sendMessage")[0]["text"] == EXPIRED_BUTTON_REPLY


async def test_a_callback_query_is_answered_before_its_payload_reaches_the_conversation(tg: Harness) -> None:
    await tg.post(fixture("callback_query"))
    methods = [call.method for call in tg.api.calls]
    # Answered first, so the button's spinner stops before the (possibly slow) turn and its reply.
    assert methods.count("answerCallbackQuery") == 1
    assert methods.index("answerCallbackQuery") < methods.index("sendMessage")


async def test_a_callback_answer_that_fails_is_tried_once_more_after_the_turn(tg: Harness) -> None:
    tg.api.fail_next("answerCallbackQuery", 502, "Bad Gateway")
    status, body = await tg.post(fixture("callback_query"))
    assert status == 200 and body["processed"] is True
    assert [message.text for message in tg.agent.messages] == ["q1:a"]
    methods = [call.method for call in tg.api.calls]
    assert methods.count("answerCallbackQuery") == 2
    assert methods.index("answerCallbackQuery") < methods.index("sendMessage")  # the first try came first


async def test_a_callback_query_is_answered_even_when_the_turn_fails(tg: Harness) -> None:
    tg.agent.fail = True
    status, _ = await tg.post(fixture("callback_query"))
    assert status == 503  # Telegram delivers the press again
    assert len(tg.api.called("answerCallbackQuery")) == 1 and tg.api.called("sendMessage") == []


# ---------------------------------------------------------------- an update the bot could not answer


async def test_a_failed_turn_is_503_and_telegrams_redelivery_is_answered(tg: Harness) -> None:
    tg.agent.fail = True  # e.g. the tracker store or the lock store is down
    status, body = await tg.post(fixture("text_message"))
    assert status == 503 and "retry" in body["error"]
    assert tg.api.called("sendMessage") == []  # no apology yet: the redelivery may well be answered
    tg.agent.fail = False
    status, body = await tg.post(fixture("text_message"))  # Telegram's redelivery of the same update
    assert status == 200 and body["processed"] is True
    assert [params["text"] for params in tg.api.called("sendMessage")] == ["echo"]
    assert len(tg.agent.messages) == 2
    status, body = await tg.post(fixture("text_message"))  # handled now: a later copy is a duplicate
    assert status == 200 and body["processed"] is False and len(tg.agent.messages) == 2


async def test_an_update_that_keeps_failing_gets_an_apology_after_three_tries(tg: Harness) -> None:
    tg.agent.fail = True
    statuses = [(await tg.post(fixture("text_message")))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]  # the fourth copy is a duplicate: answered once
    assert [params["text"] for params in tg.api.called("sendMessage")] == [ERROR_REPLY]
    assert len(tg.agent.messages) == 3


async def test_a_press_that_keeps_failing_is_apologised_for_in_its_chat(tg: Harness) -> None:
    tg.agent.fail = True
    statuses = [(await tg.post(fixture("callback_query")))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    [apology] = tg.api.called("sendMessage")
    assert apology["text"] == ERROR_REPLY and str(apology["chat_id"]) == "1111111"


class AnswersThenFails(FakeAgent):
    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        await message.output_channel.send_response(message.sender_id, {"text": "Alice, you have 1,598 points."})
        raise RuntimeError("the tracker could not be saved")


async def test_a_turn_that_failed_after_answering_is_not_repeated(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    app, server, _agent, channel, url = await _serve(settings_for(tmp_path, api), pacing_interval=0.0)
    app.ctx.agent = AnswersThenFails()
    harness = Harness(api, app.ctx.agent, channel, url)
    try:
        status, body = await harness.post(fixture("text_message"))
        assert status == 200 and body["processed"] is True  # the shopper has an answer: no redelivery
        assert [params["text"] for params in api.called("sendMessage")] == ["Alice, you have 1,598 points."]
    finally:
        await harness.session.close()
        await _stop(server)
        await api.stop()


async def test_telegram_refusing_the_reply_is_503_so_the_update_comes_again(tg: Harness) -> None:
    tg.api.fail_next("sendMessage", 502, "Bad Gateway")
    status, _ = await tg.post(fixture("text_message"))
    assert status == 503
    status, body = await tg.post(fixture("text_message"))
    assert status == 200 and body["processed"] is True
    assert [params["text"] for params in tg.api.called("sendMessage")] == ["echo", "echo"]  # refused, then sent


async def test_a_message_without_a_chat_is_refused_before_it_is_marked_as_seen(tg: Harness) -> None:
    """Fuzzing found a message with a date but no chat: 500 after the update id was marked as seen."""
    update = fixture("text_message")
    del update["message"]["chat"]
    status, body = await tg.post(update)
    assert status == 200 and body == {"ok": True, "processed": False}
    assert tg.agent.messages == [] and tg.api.called("sendMessage") == []
    status, body = await tg.post(fixture("text_message"))  # the same update id, whole: not a duplicate
    assert status == 200 and body["processed"] is True


async def test_a_polled_update_that_failed_is_fetched_again_and_answered(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    settings = settings_for(tmp_path, api, TELEGRAM_MODE="polling", TELEGRAM_WEBHOOK_SECRET=None)
    _app, server, agent, _channel, _url = await _serve(settings, pacing_interval=0.0, poll_backoff=(0.01, 0.04))
    try:
        agent.fail = True
        api.enqueue_update(fixture("text_message"))
        await eventually(lambda: len(agent.messages) == 1)
        agent.fail = False
        await eventually(lambda: len(api.called("sendMessage")) == 1)
        assert api.called("sendMessage")[0]["text"] == "echo" and len(agent.messages) == 2
    finally:
        await _stop(server)
        await api.stop()


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


async def test_group_chats_are_ignored(tg: Harness) -> None:
    group = fixture("text_message")
    group["message"]["chat"] = {"id": -100123, "type": "group", "title": "Fans"}
    edited_in_group = fixture("text_message")
    edited_in_group["update_id"] += 1
    edited_in_group["edited_message"] = dict(edited_in_group.pop("message"), edit_date=1441645600,
                                             chat={"id": -100123, "type": "group", "title": "Fans"})
    for update in (group, edited_in_group):
        status, body = await tg.post(update)
        assert status == 200 and body["processed"] is False
    assert tg.agent.messages == [] and tg.api.called("sendMessage") == []


async def test_an_edited_message_is_answered_with_how_edits_are_read_and_no_turn(tg: Harness) -> None:
    edited = fixture("text_message")
    edited["edited_message"] = dict(edited.pop("message"), edit_date=1441645600, text="how many points do i have")
    status, body = await tg.post(edited)
    assert status == 200 and body["processed"] is False
    assert tg.agent.messages == []
    assert [params["text"] for params in tg.api.called("sendMessage")] == [EDITED_REPLY]


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
        assert await channel.state.get("telegram:update:10001") is None  # Telegram's retry will be processed
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


# What real clients send besides text, photos and videos (Bot API shapes).
STICKER = {"file_id": "CAACAgIAAx", "file_unique_id": "AgADx", "type": "regular", "width": 512, "height": 512,
           "is_animated": False, "is_video": False, "emoji": "👍"}
UNREADABLE_MEDIA = [
    ({"sticker": STICKER}, STICKER_REPLY),
    ({"animation": {"file_id": "CgACAgQAAx", "file_unique_id": "AgADz", "width": 320, "height": 240, "duration": 2},
      "document": {"file_id": "CgACAgQAAx", "file_unique_id": "AgADz", "mime_type": "video/mp4"}}, STICKER_REPLY),
    ({"dice": {"emoji": "🎲", "value": 4}}, STICKER_REPLY),
    ({"voice": {"file_id": "AwACAgIAAx", "file_unique_id": "AgADy", "duration": 3, "mime_type": "audio/ogg"}},
     VOICE_REPLY),
    ({"audio": {"file_id": "CQACAgIAAx", "file_unique_id": "AgADw", "duration": 180, "title": "Song"}}, VOICE_REPLY),
    ({"location": {"latitude": 48.8584, "longitude": 2.2945}}, LOCATION_REPLY),
    ({"location": {"latitude": 48.8584, "longitude": 2.2945},
      "venue": {"location": {"latitude": 48.8584, "longitude": 2.2945}, "title": "Tour Eiffel",
                "address": "Champ de Mars"}}, LOCATION_REPLY),
    ({"contact": {"phone_number": "+33612345678", "first_name": "Test", "user_id": 1111111}}, CONTACT_REPLY),
    ({"poll": {"id": "5", "question": "Oak or walnut?",
               "options": [{"persistent_id": "a", "text": "Oak", "voter_count": 0},
                           {"persistent_id": "b", "text": "Walnut", "voter_count": 0}],
               "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
               "allows_multiple_answers": False}}, UNSUPPORTED_REPLY),
    # Shapes this PTB cannot read (an older Bot API's poll, a field of a newer one): read by their names.
    ({"poll": {"id": "5", "question": "Oak or walnut?", "options": [{"text": "Oak", "voter_count": 0}],
               "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
               "allows_multiple_answers": False}}, UNSUPPORTED_REPLY),
    ({"voice": {"duration": "three"}}, VOICE_REPLY),
    ({"checklist": {"title": "Moving day", "tasks": [{"id": 1, "text": "Pack the lamp"}]}}, UNSUPPORTED_REPLY),
]


@pytest.mark.parametrize("content, reply", UNREADABLE_MEDIA,
                         ids=["sticker", "gif", "dice", "voice", "audio", "location", "venue", "contact", "poll",
                              "poll-unreadable", "voice-unreadable", "unknown-kind"])
async def test_media_the_bot_cannot_read_gets_a_reply_saying_what_it_reads_and_no_turn(
    tg: Harness, content: Dict[str, Any], reply: str
) -> None:
    update = fixture("text_message")
    del update["message"]["text"]
    update["message"].update(content)
    status, body = await tg.post(update)
    assert status == 200 and body == {"ok": True, "processed": False}
    assert tg.agent.messages == []
    assert [params["text"] for params in tg.api.called("sendMessage")] == [reply]


async def test_a_service_message_such_as_a_pin_gets_no_reply(tg: Harness) -> None:
    update = fixture("text_message")
    pinned = dict(update["message"])
    del update["message"]["text"]
    update["message"]["pinned_message"] = pinned
    status, body = await tg.post(update)
    assert status == 200 and body["processed"] is False
    assert tg.agent.messages == [] and tg.api.called("sendMessage") == []


async def test_a_text_message_with_a_field_ptb_cannot_read_still_reaches_the_conversation(tg: Harness) -> None:
    update = fixture("text_message")
    update["message"]["entities"] = [{"type": "bold", "offset": "zero"}]  # unreadable to PTB
    status, body = await tg.post(update)
    assert status == 200 and body["processed"] is True
    assert [message.text for message in tg.agent.messages] == ["how many points do I have?"]


async def test_a_photo_is_a_content_submission_with_its_largest_file_id_and_caption(tg: Harness) -> None:
    status, body = await tg.post(fixture("photo_message"))
    assert status == 200 and body["processed"] is True
    [message] = tg.agent.messages
    assert message.text == "/submit_content"
    assert message.metadata["content"] == {
        "kind": "photo", "channel": "telegram", "telegram_file_id": "AgACAgIAAxkBAAIC", "file_size": 22301,
        "mime_type": None, "caption": "my unboxing photo",
    }
    # The channel's usual metadata is kept alongside.
    assert message.metadata["telegram_user_id"] == 1111111 and message.metadata["telegram_chat_type"] == "private"


async def test_a_photo_without_caption_is_a_submission_with_an_empty_caption(tg: Harness) -> None:
    update = fixture("photo_message")
    del update["message"]["caption"]
    update["message"]["photo"].reverse()  # the largest size is picked by its dimensions, not its place
    await tg.post(update)
    [message] = tg.agent.messages
    assert message.text == "/submit_content"
    assert message.metadata["content"]["caption"] == ""
    assert message.metadata["content"]["telegram_file_id"] == "AgACAgIAAxkBAAIC"


async def test_a_photo_caption_is_cleaned(tg: Harness) -> None:
    update = fixture("photo_message")
    update["message"]["caption"] = "  my\u200b haul \x07 "
    await tg.post(update)
    assert tg.agent.messages[0].metadata["content"]["caption"] == "my haul"


async def test_the_referral_deep_link_fixture_claims_the_referral_code(tg: Harness) -> None:
    await tg.post(fixture("start_deeplink"))  # "/start ref_AbC123xYz"
    [message] = tg.agent.messages
    assert message.text == '/claim_referral{"referral_code": "AbC123xYz"}' and message.sender_id == "2222222"
    assert message.metadata["referral_code"] == "AbC123xYz" and message.metadata["deep_link"] == "ref_AbC123xYz"


def _media_update(**fields: Any) -> Dict[str, Any]:
    update = fixture("text_message")
    del update["message"]["text"]
    update["message"].update(fields)
    return update


async def test_a_video_is_a_content_submission(tg: Harness) -> None:
    video = {"file_id": "BAACAgIAAxkBAAIV", "file_unique_id": "AgADv", "width": 1280, "height": 720, "duration": 12,
             "mime_type": "video/mp4", "file_size": 5_000_000}
    status, body = await tg.post(_media_update(video=video, caption="unboxing the lamp"))
    assert status == 200 and body["processed"] is True
    [message] = tg.agent.messages
    assert message.text == "/submit_content"
    assert message.metadata["content"] == {
        "kind": "video", "channel": "telegram", "telegram_file_id": "BAACAgIAAxkBAAIV", "file_size": 5_000_000,
        "mime_type": "video/mp4", "caption": "unboxing the lamp",
    }


async def test_an_image_sent_as_a_file_is_a_photo_submission(tg: Harness) -> None:
    document = {"file_id": "BQACAgIAAxkBAAID", "file_unique_id": "AgADd", "file_name": "desk.jpg",
                "mime_type": "image/jpeg", "file_size": 800_000}
    await tg.post(_media_update(document=document))
    [message] = tg.agent.messages
    assert message.metadata["content"]["kind"] == "photo"
    assert message.metadata["content"]["telegram_file_id"] == "BQACAgIAAxkBAAID"


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"document": {"file_id": "BQAC", "file_unique_id": "x", "file_name": "invoice.pdf",
                       "mime_type": "application/pdf", "file_size": 1000}}, "that file isn't one"),
        ({"document": {"file_id": "BQAC", "file_unique_id": "x", "file_name": "logo.svg",
                       "mime_type": "image/svg+xml", "file_size": 1000}}, "that file isn't one"),
        ({"document": {"file_id": "BQAC", "file_unique_id": "x", "file_name": "x.bin", "file_size": 10}},
         "that file isn't one"),
        ({"video": {"file_id": "BAAC", "file_unique_id": "v", "width": 1, "height": 1, "duration": 600,
                    "file_size": 300 * 1024 * 1024}}, "That video is too large for me (300.0 MB). Please send one under 20 MB."),
        ({"photo": [{"file_id": "AgAC", "file_unique_id": "p", "width": 9000, "height": 9000,
                     "file_size": 12 * 1024 * 1024}]}, "That photo is too large for me (12.0 MB). Please send one under 10 MB."),
    ],
    ids=["pdf", "svg", "no-mime", "huge-video", "huge-photo"],
)
async def test_files_the_bot_cannot_take_get_a_clear_note_and_no_turn(
    tg: Harness, fields: Dict[str, Any], expected: str
) -> None:
    status, body = await tg.post(_media_update(**fields))
    assert status == 200 and body["processed"] is False and tg.agent.messages == []
    [sent] = tg.api.called("sendMessage")
    assert expected in sent["text"]


@pytest.mark.parametrize(
    "text, expected_text, deep_link, referral_code",
    [
        ("/start ref_AbC123xYz", '/claim_referral{"referral_code": "AbC123xYz"}', "ref_AbC123xYz", "AbC123xYz"),
        ("/start link_tok3n-42", '/link_account{"link_token": "tok3n-42"}', "link_tok3n-42", None),
        ("/start@shop_bot link_" + "A" * 64, '/link_account{"link_token": "' + "A" * 64 + '"}', "link_" + "A" * 64, None),
        ("/start link_" + "A" * 65, "/greet", None, None),  # too long: plain /start
        ('/start link_x"}, "customer_id": 1', "/greet", None, None),  # outside the charset: plain /start
        ("/start link_", "/greet", None, None),
        ("/start ref_bad.code", "/greet", None, None),
        ("/start", "/greet", None, None),
        ("/start@shop_bot", "/greet", None, None),
        ("/start somethingelse", "/greet", None, None),
    ],
)
async def test_start_and_deep_links(
    tg: Harness, text: str, expected_text: str, deep_link: Optional[str], referral_code: Optional[str]
) -> None:
    update = fixture("start_deeplink")
    update["message"]["text"] = text
    await tg.post(update)
    [message] = tg.agent.messages
    assert message.text == expected_text and message.sender_id == "2222222"
    assert message.metadata.get("deep_link") == deep_link
    assert message.metadata.get("referral_code") == referral_code


async def test_a_long_reply_is_split_into_telegram_sized_messages(tg: Harness) -> None:
    tg.agent.reply = {"text": ("All about your points. " * 200)[:4500]}
    await tg.post(fixture("text_message"))
    sent = [params["text"] for params in tg.api.called("sendMessage")]
    assert len(sent) == 2 and all(len(text) <= 4096 for text in sent)


async def test_an_image_is_sent_with_send_photo_and_custom_json_without_text_is_skipped(tg: Harness) -> None:
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


async def test_short_payloads_travel_as_they_are_and_long_ones_by_random_keys_in_the_state() -> None:
    now = [1000.0]
    state = MemoryChannelState(clock=lambda: now[0])
    assert await callback_data_for(state, "/affirm") == "/affirm"
    long_payload = "/x" + "y" * 100
    keys = {await callback_data_for(state, long_payload) for _ in range(50)}
    assert len(keys) == 50  # a fresh unguessable key each time
    key = keys.pop()
    assert key.startswith(SHORT_KEY_PREFIX) and len(key.encode()) <= MAX_CALLBACK_DATA_BYTES
    assert len(key) - len(SHORT_KEY_PREFIX) >= 22  # 128 random bits, URL-safe base64
    assert await state.get("telegram:button:" + key[len(SHORT_KEY_PREFIX):]) == long_payload
    assert await payload_for(state, key) == long_payload
    assert await payload_for(state, "q1:a") == "q1:a"
    assert await payload_for(state, SHORT_KEY_PREFIX + "not*a*key") is None
    assert await callback_data_for(state, "~k:looks-like-a-key") != "~k:looks-like-a-key"  # never mistaken for a key
    now[0] += BUTTON_TTL_SECONDS - 1
    assert await payload_for(state, key) == long_payload
    now[0] += 2
    assert await payload_for(state, key) is None  # kept 30 days


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


# ---------------------------------------------------------------- dedupe and button keys in the shared state


async def test_an_update_is_remembered_for_a_day(tmp_path: Path) -> None:
    now = [5000.0]
    api = await FakeTelegramApi(TOKEN).start()
    _app, server, agent, _channel, url = await _serve(
        settings_for(tmp_path, api), state=MemoryChannelState(clock=lambda: now[0]), pacing_interval=0.0
    )
    harness = Harness(api, agent, _channel, url)
    try:
        assert (await harness.post(fixture("text_message")))[1]["processed"] is True
        now[0] += UPDATE_TTL_SECONDS - 1
        assert (await harness.post(fixture("text_message")))[1]["processed"] is False
        now[0] += 2  # Telegram gives up redelivering long before a day
        assert (await harness.post(fixture("text_message")))[1]["processed"] is True
    finally:
        await harness.session.close()
        await _stop(server)
        await api.stop()


async def test_concurrent_deliveries_of_one_update_make_one_turn(tg: Harness) -> None:
    results = await asyncio.gather(*(tg.post(fixture("text_message")) for _ in range(5)))
    assert [body["processed"] for _status, body in results].count(True) == 1
    assert len(tg.agent.messages) == 1


class BrokenState(MemoryChannelState):
    async def first_time(self, key: str, ttl_seconds: int) -> bool:
        raise ConnectionError("redis is down")


async def test_a_state_store_outage_is_503_so_telegram_retries(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    _app, server, agent, channel, url = await _serve(settings_for(tmp_path, api), state=BrokenState())
    harness = Harness(api, agent, channel, url)
    try:
        status, body = await harness.post(fixture("text_message"))
        assert status == 503 and body["error"]
        assert agent.messages == [] and api.called("sendMessage") == []
    finally:
        await harness.session.close()
        await _stop(server)
        await api.stop()


def random_update_id() -> int:
    return random.randint(10**9, 2**31 - 1)


async def test_two_processes_sharing_redis_resolve_each_others_button_keys_and_dedupe_together(tmp_path: Path) -> None:
    """Two TelegramInput servers (as two Rasa processes behind one webhook), each with its own Redis client."""
    require_service("Redis", 6379)
    api = await FakeTelegramApi(TOKEN).start()
    settings = settings_for(tmp_path, api)
    states = [RedisChannelState(REDIS_URL), RedisChannelState(REDIS_URL)]
    servers = [await _serve(settings, state=state, pacing_interval=0.0) for state in states]
    one, two = (Harness(api, agent, channel, url) for _app, _server, agent, channel, url in servers)
    update_ids = [random_update_id() for _ in range(3)]
    try:
        long_payload = '/redeem_reward{"reward": "' + "gift-wrapping-for-every-order-" * 3 + '"}'
        one.agent.reply = {"text": "Which reward?", "buttons": [{"title": "Gift wrap", "payload": long_payload}]}
        text = fixture("text_message")
        text["update_id"] = update_ids[0]
        assert (await one.post(text))[1]["processed"] is True
        [sent] = api.called("sendMessage")
        key = sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert key.startswith(SHORT_KEY_PREFIX) and long_payload not in key

        # The press reaches the other process, which never saw the payload: it comes back in full.
        press = fixture("callback_query")
        press["update_id"] = update_ids[1]
        press["callback_query"]["data"] = key
        status, body = await two.post(press)
        assert status == 200 and body["processed"] is True
        assert [message.text for message in two.agent.messages] == [long_payload]

        # One update delivered to both processes makes one turn.
        again = fixture("text_message")
        again["update_id"] = update_ids[2]
        first, second = await one.post(again), await two.post(again)
        assert first[1]["processed"] is True and second[1]["processed"] is False
        assert len(one.agent.messages) == 2 and len(two.agent.messages) == 1
    finally:
        for state in states[:1]:
            for update_id in update_ids:
                await state.delete(f"telegram:update:{update_id}")
        for harness in (one, two):
            await harness.session.close()
        for _app, server, *_ in servers:
            await _stop(server)
        for state in states:
            await state.close()
        await api.stop()


# ---------------------------------------------------------------- the overall send limit


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_the_rate_limiter_lets_30_a_second_through_and_queues_the_rest_in_order() -> None:
    fake = FakeTime()
    limiter = RateLimiter(30, 1.0, clock=fake.clock, sleep=fake.sleep)
    granted: List[tuple] = []

    async def send(number: int) -> None:
        await limiter.acquire()
        granted.append((number, fake.now))

    await asyncio.gather(*(send(number) for number in range(75)))
    assert [number for number, _ in granted] == list(range(75))  # first come, first served
    times = [at for _, at in granted]
    assert times == [0.0] * 30 + [1.0] * 30 + [2.0] * 15
    assert all(times[i + 30] - times[i] >= 1.0 for i in range(len(times) - 30))  # never 31 within a second
    assert fake.sleeps == [1.0, 1.0]


async def test_the_rate_limiter_does_not_wait_below_the_limit() -> None:
    fake = FakeTime()
    limiter = RateLimiter(3, 1.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        await limiter.acquire()
        fake.now += 0.5  # 2 a second
    assert fake.sleeps == [] and fake.now == 5.0
    for _ in range(3):  # with the one at 4.5 s, three within the last second
        await limiter.acquire()
    assert fake.sleeps == [0.5]  # the third waited for the one at 4.5 s to leave the window


async def test_messages_to_many_chats_share_the_overall_limit(tg: Harness) -> None:
    fake = FakeTime()
    tg.channel.limiter = RateLimiter(2, 1.0, clock=fake.clock, sleep=fake.sleep)
    output = tg.channel.output(tg.channel.bot)
    await asyncio.gather(*(output.send_text_message(str(100 + chat), "hello") for chat in range(5)))
    assert sorted(int(params["chat_id"]) for params in tg.api.called("sendMessage")) == list(range(100, 105))
    assert fake.sleeps == [1.0, 1.0] and fake.now == 2.0  # 5 messages at 2 a second: 0 s, 1 s, 2 s


# ---------------------------------------------------------------- the webhook secret's charset


@pytest.mark.parametrize("secret", ["a", "A" * 256, "Az09_-", SECRET])
def test_secrets_telegram_accepts(secret: str) -> None:
    assert valid_webhook_secret(secret)


@pytest.mark.parametrize("secret", ["", "A" * 257, "with space", "semi;colon", "dots.are.not.allowed", "ümlaut", "tab\there"])
def test_secrets_telegram_refuses(secret: str) -> None:
    assert not valid_webhook_secret(secret)


@pytest.mark.parametrize(
    "env, line",
    [
        ({}, "telegram: on (webhook)"),
        ({"TELEGRAM_MODE": "polling"}, "telegram: on (long polling)"),
        ({"TELEGRAM_MODE": "polling", "TELEGRAM_WEBHOOK_SECRET": None}, "telegram: on (long polling)"),
        ({"TELEGRAM_TOKEN": None}, "telegram: off — set TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_WEBHOOK_SECRET": None}, "telegram: off — set TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_TOKEN": None, "TELEGRAM_MODE": "polling"}, "telegram: off — set TELEGRAM_TOKEN"),
        ({"TELEGRAM_WEBHOOK_SECRET": "has spaces in it"},
         "telegram: off — TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -"),
        ({"TELEGRAM_WEBHOOK_SECRET": "x" * 300},
         "telegram: off — TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -"),
    ],
)
def test_the_status_line(tmp_path: Path, env: Dict[str, Optional[str]], line: str) -> None:
    assert telegram_status(settings_for(tmp_path, **env)) == line


async def test_a_secret_telegram_would_refuse_disables_the_channel_and_says_why(tmp_path: Path, capsys) -> None:
    bad_secret = "my secret; with spaces"
    api = await FakeTelegramApi(TOKEN).start()
    _app, server, agent, channel, url = await _serve(settings_for(tmp_path, api, TELEGRAM_WEBHOOK_SECRET=bad_secret))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + WEBHOOK, json=fixture("text_message"), headers={SECRET_HEADER: bad_secret}) as reply:
                assert reply.status == 503
                assert await reply.json() == {"error": "telegram channel is not configured"}
        assert agent.messages == [] and channel.bot is None and api.calls == []
    finally:
        await _stop(server)
        await api.stop()
    logged = capsys.readouterr().err
    assert SECRET_RULE in logged and "error" in logged
    assert bad_secret not in logged


async def test_a_rejected_token_is_503_and_never_logged(tmp_path: Path, capsys) -> None:
    api = await FakeTelegramApi("999:the-real-token").start()
    _app, server, agent, channel, url = await _serve(settings_for(tmp_path, api))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + WEBHOOK, json=fixture("text_message"), headers={SECRET_HEADER: SECRET}) as reply:
                assert reply.status == 503
        assert agent.messages == [] and channel.bot is None
    finally:
        await _stop(server)
        await api.stop()
    logged = capsys.readouterr().err
    assert "rejected TELEGRAM_TOKEN" in logged
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged


# ---------------------------------------------------------------- product cards and custom payloads


CARDS = [
    {
        "title": "Ember floor lamp",
        "subtitle": "Warm light, walnut base — $120",
        "image_url": "https://shop.example/p/ember.jpg",
        "buttons": [
            {"title": "View", "url": "https://shop.example/products/ember", "type": "web_url"},
            {"title": "Tell me more", "payload": "/product_search{\"sku\": \"OE-LT-001\"}"},
            {"title": "Add to wishlist", "payload": "/wishlist{\"sku\": \"OE-LT-001\", \"note\": \"" + "x" * 60 + "\"}"},
        ],
    },
    {"title": "Gift card", "subtitle": "Any amount", "buttons": [{"title": "Buy", "url": "https://shop.example/gift"}]},
]


async def test_product_cards_are_photos_with_link_and_payload_buttons(tg: Harness) -> None:
    tg.agent.reply = {"elements": CARDS}
    await tg.post(fixture("text_message"))
    [photo] = tg.api.called("sendPhoto")
    assert photo["photo"] == "https://shop.example/p/ember.jpg"
    assert photo["caption"] == "Ember floor lamp\nWarm light, walnut base — $120"
    view, more, wishlist = (row[0] for row in photo["reply_markup"]["inline_keyboard"])
    assert view == {"text": "View", "url": "https://shop.example/products/ember"}
    assert more == {"text": "Tell me more", "callback_data": "/product_search{\"sku\": \"OE-LT-001\"}"}
    assert wishlist["text"] == "Add to wishlist" and wishlist["callback_data"].startswith(SHORT_KEY_PREFIX)
    # The card without an image is a message with the same kind of keyboard.
    [message] = tg.api.called("sendMessage")
    assert message["text"] == "Gift card\nAny amount"
    assert message["reply_markup"]["inline_keyboard"] == [[{"text": "Buy", "url": "https://shop.example/gift"}]]

    # Pressing the long payload button brings the whole payload back.
    press = fixture("callback_query")
    press["callback_query"]["data"] = wishlist["callback_data"]
    tg.agent.reply = {"text": "ok"}
    await tg.post(press)
    assert tg.agent.messages[-1].text == CARDS[0]["buttons"][2]["payload"]


async def test_a_long_card_caption_is_cut_at_1024_characters(tg: Harness) -> None:
    tg.agent.reply = {"elements": [{"title": "Lamp", "subtitle": "glow " * 400, "image_url": "https://shop.example/l.jpg"}]}
    await tg.post(fixture("text_message"))
    [photo] = tg.api.called("sendPhoto")
    assert len(photo["caption"]) <= MAX_CAPTION_CHARS and photo["caption"].startswith("Lamp\nglow glow")
    assert photo["caption"].endswith("…") and "reply_markup" not in photo


async def test_a_card_whose_photo_telegram_refuses_is_sent_as_a_message(tg: Harness) -> None:
    tg.api.fail_next("sendPhoto", 400, "Bad Request: wrong type of the web page content")
    tg.agent.reply = {"elements": CARDS[:1]}
    await tg.post(fixture("text_message"))
    assert len(tg.api.called("sendPhoto")) == 1
    [message] = tg.api.called("sendMessage")
    assert message["text"].startswith("Ember floor lamp") and len(message["reply_markup"]["inline_keyboard"]) == 3


@pytest.mark.parametrize("elements", [[], [{"subtitle": "no title"}], ["not a card", 42], [{"title": "  "}]])
async def test_no_valid_cards_send_nothing(tg: Harness, elements: Any) -> None:
    output = tg.channel.output(tg.channel.bot)
    await output.send_elements("1111111", elements)
    assert tg.api.calls[1:] == []  # only the start's getMe


async def test_custom_json_with_text_is_sent_and_anything_else_skipped(tg: Harness) -> None:
    output = tg.channel.output(tg.channel.bot)
    await output.send_custom_json("1111111", {"text": "Your code is RW-AAAA-BBBB-CCCC", "extra": True})
    await output.send_custom_json("1111111", {"text": 5})
    await output.send_custom_json("1111111", {"blocks": []})
    await output.send_custom_json("1111111", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert [params["text"] for params in tg.api.called("sendMessage")] == ["Your code is RW-AAAA-BBBB-CCCC"]


# ---------------------------------------------------------------- long polling


async def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture()
async def polling(tmp_path: Path) -> AsyncIterator[Harness]:
    api = await FakeTelegramApi(TOKEN).start()
    api.webhook_url = "https://old.example/webhooks/telegram/webhook"  # left over from webhook mode
    settings = settings_for(tmp_path, api, TELEGRAM_MODE="polling", TELEGRAM_WEBHOOK_SECRET=None)
    _app, server, agent, channel, url = await _serve(settings, pacing_interval=0.0, poll_backoff=(0.01, 0.04))
    harness = Harness(api, agent, channel, url)
    yield harness
    await harness.session.close()
    await _stop(server)
    await api.stop()


async def test_polling_deletes_the_webhook_then_hands_updates_to_the_conversation(polling: Harness) -> None:
    # The fixture disables per-chat pacing (both replies go to one chat); the wide timeouts only matter
    # on a loaded machine.
    assert polling.channel.pacer.interval == 0.0
    polling.api.enqueue_update(fixture("text_message"))
    polling.api.enqueue_update(fixture("callback_query"))
    await eventually(lambda: len(polling.api.called("sendMessage")) == 2, timeout=30.0)
    assert [message.text for message in polling.agent.messages] == ["how many points do I have?", "q1:a"]
    assert polling.api.webhook_url == ""
    methods = [call.method for call in polling.api.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert len(polling.api.called("answerCallbackQuery")) == 1
    assert len(polling.api.called("sendMessage")) == 2  # the replies
    first = polling.api.called("getUpdates")[0]
    assert int(first["timeout"]) == 25 and first["allowed_updates"] == ["message", "edited_message", "callback_query", "my_chat_member"]
    # The offset moves past what was handled, which confirms it to Telegram.
    await eventually(lambda: any(int(p.get("offset") or 0) == 10003 for p in polling.api.called("getUpdates")), timeout=30.0)
    await eventually(lambda: polling.api.updates == [], timeout=30.0)


async def test_polling_answers_an_update_ptb_cannot_read_and_goes_on_to_the_next(polling: Harness) -> None:
    """PTB's get_updates fails the whole batch on one update it cannot read: that batch would come back
    forever and nothing after it would be answered."""
    voice = fixture("text_message")
    del voice["message"]["text"]
    voice["message"]["voice"] = {"duration": "three"}  # unreadable to PTB
    broken = {"update_id": voice["update_id"] + 1, "message": {"text": "no chat, no date"}}
    text = fixture("text_message")
    text["update_id"] = voice["update_id"] + 2
    for update in (voice, broken, text):
        polling.api.enqueue_update(update)
    await eventually(lambda: len(polling.api.called("sendMessage")) == 2, timeout=30.0)
    assert [params["text"] for params in polling.api.called("sendMessage")] == [VOICE_REPLY, "echo"]
    assert [message.text for message in polling.agent.messages] == ["how many points do I have?"]
    await eventually(lambda: polling.api.updates == [], timeout=30.0)  # all three confirmed


async def test_polling_skips_an_update_it_has_seen(polling: Harness) -> None:
    polling.api.enqueue_update(fixture("text_message"))
    await eventually(lambda: len(polling.agent.messages) == 1)
    polling.api.enqueue_update(fixture("text_message"))  # redelivered (e.g. not confirmed before a restart)
    update = fixture("text_message")
    update["update_id"] += 10
    polling.api.enqueue_update(update)
    await eventually(lambda: len(polling.agent.messages) == 2)
    await asyncio.sleep(0.3)
    assert len(polling.agent.messages) == 2


async def test_polling_refuses_webhook_posts(polling: Harness) -> None:
    status, body = await polling.post(fixture("text_message"))
    assert status == 409 and body == {"error": POLLING_MODE}
    status, _ = await polling.post(fixture("text_message"), secret=None)
    assert status == 409
    await asyncio.sleep(0.1)
    assert polling.agent.messages == []


async def test_polling_backs_off_on_errors_and_recovers(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    api.fail_next("getUpdates", 502, "Bad Gateway", times=3)
    waits: List[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    settings = settings_for(tmp_path, api, TELEGRAM_MODE="polling")
    _app, server, agent, channel, _url = await _serve(settings, pacing_interval=0.0, poll_backoff=(1.0, 3.0), sleep=sleep)
    try:
        api.enqueue_update(fixture("text_message"))
        await eventually(lambda: len(agent.messages) == 1)
        assert waits == [1.0, 2.0, 3.0]  # doubled, capped
        api.fail_next("getUpdates", 502, "Bad Gateway", times=1)
        await eventually(lambda: len(waits) == 4)
        assert waits[3] == 1.0  # a success resets the back-off
    finally:
        await _stop(server)
        await api.stop()


async def test_polling_deletes_a_webhook_set_while_it_runs(polling: Harness) -> None:
    await eventually(lambda: len(polling.api.called("getUpdates")) >= 1)
    polling.api.webhook_url = "https://someone.example/hook"  # getUpdates now answers 409 Conflict
    await eventually(lambda: len(polling.api.called("deleteWebhook")) == 2)
    polling.api.enqueue_update(fixture("text_message"))
    await eventually(lambda: len(polling.agent.messages) == 1)


async def test_polling_stops_with_the_server(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    api.poll_wait = 30.0  # a long poll is in flight when the server stops
    _app, server, _agent, channel, _url = await _serve(settings_for(tmp_path, api, TELEGRAM_MODE="polling"))
    await eventually(lambda: len(api.called("getUpdates")) == 1)
    poller = channel._poller
    assert poller is not None and not poller.done()
    started = time.monotonic()
    await _stop(server)
    assert time.monotonic() - started < 5
    assert poller.done() and channel.bot is None
    calls = len(api.calls)
    await asyncio.sleep(0.2)
    assert len(api.calls) == calls
    await api.stop()


async def test_polling_needs_only_the_token_and_a_missing_token_keeps_it_off(tmp_path: Path) -> None:
    api = await FakeTelegramApi(TOKEN).start()
    _app, server, agent, channel, url = await _serve(settings_for(tmp_path, api, TELEGRAM_MODE="polling", TELEGRAM_TOKEN=None))
    try:
        await asyncio.sleep(0.2)
        assert channel._poller is None and api.calls == []
        async with aiohttp.ClientSession() as session:
            async with session.post(url + WEBHOOK, json=fixture("text_message")) as reply:
                assert reply.status == 503
    finally:
        await _stop(server)
        await api.stop()
