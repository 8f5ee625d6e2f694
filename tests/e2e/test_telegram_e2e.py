"""The Telegram channel end to end: updates POSTed to the real Rasa server's webhook (trained model, action
server, demo store), replies read from the fake Bot API of tests/e2e/conftest.py (platform_fakes), which
the Rasa server talks to through TELEGRAM_API_BASE."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.fakes.threaded import ThreadedServers

pytestmark = pytest.mark.e2e

REPLY_TIMEOUT_SECONDS = 60


class TelegramChat:
    """One private chat with the bot, as Telegram would deliver it: a fresh chat id and fresh update ids."""

    def __init__(self, e2e_env: Dict[str, str], fakes: ThreadedServers) -> None:
        self.url = f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/telegram/webhook"
        self.secret = e2e_env["TELEGRAM_WEBHOOK_SECRET"]
        self.fake = fakes.servers["telegram"]
        self.chat_id = 10**9 + uuid.uuid4().int % 10**9
        self.update_id = 10**9 + uuid.uuid4().int % 10**9
        self.message_id = 0

    def message_update(self, text: str) -> Dict[str, Any]:
        self.update_id += 1
        self.message_id += 1
        return {
            "update_id": self.update_id,
            "message": {
                "message_id": self.message_id, "date": int(time.time()), "text": text,
                "from": {"id": self.chat_id, "is_bot": False, "first_name": "Robin", "language_code": "en"},
                "chat": {"id": self.chat_id, "type": "private", "first_name": "Robin"},
            },
        }

    def press_update(self, callback_data: str) -> Dict[str, Any]:
        self.update_id += 1
        return {
            "update_id": self.update_id,
            "callback_query": {
                "id": f"cb-{uuid.uuid4().hex[:12]}", "chat_instance": "-42", "data": callback_data,
                "from": {"id": self.chat_id, "is_bot": False, "first_name": "Robin"},
                "message": {"message_id": self.message_id, "date": int(time.time()), "text": "…",
                            "chat": {"id": self.chat_id, "type": "private", "first_name": "Robin"}},
            },
        }

    def post(self, update: Dict[str, Any], secret: Optional[str] = None) -> Tuple[int, Any]:
        headers = {"Content-Type": "application/json",
                   "X-Telegram-Bot-Api-Secret-Token": self.secret if secret is None else secret}
        request = urllib.request.Request(self.url, data=json.dumps(update).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def sent(self) -> List[Dict[str, Any]]:
        """What the bot sent to this chat (sendMessage and sendPhoto), oldest first."""
        calls = list(self.fake.calls)  # a copy: the list grows on the fakes' loop
        return [
            call.params for call in calls
            if call.method in ("sendMessage", "sendPhoto") and str(call.params.get("chat_id")) == str(self.chat_id)
        ]

    def wait_for_sent(self, count: int) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            sent = self.sent()
            if len(sent) >= count:
                return sent
            time.sleep(0.2)
        raise AssertionError(f"expected {count} messages to chat {self.chat_id}, got {self.sent()}")

    def say(self, text: str) -> List[Dict[str, Any]]:
        """Send `text`; the messages the bot answered with."""
        before = len(self.sent())
        status, body = self.post(self.message_update(text))
        assert status == 200 and body == {"ok": True, "processed": True}, (status, body)
        return self.wait_for_sent(before + 1)[before:]


def texts(messages: List[Dict[str, Any]]) -> str:
    return "\n".join(str(message.get("text") or message.get("caption") or "") for message in messages)


def test_a_guest_asking_for_points_is_told_how_to_link_and_can_press_the_buttons(
    rasa_server: Any, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    chat = TelegramChat(e2e_env, platform_fakes)
    replies = chat.say("how many points do I have?")
    answer = texts(replies)
    assert "rewards account linked to this chat" in answer, answer
    assert "points" in answer and "Join free at" in answer
    assert all(len(message["text"]) <= 4096 for message in replies)
    keyboard = replies[-1]["reply_markup"]["inline_keyboard"]
    buttons = {row[0]["text"]: row[0]["callback_data"] for row in keyboard}
    assert buttons.get("How to earn") == "/how_to_earn", keyboard

    # Pressing "How to earn": the callback query is answered and the conversation goes on.
    before = len(chat.sent())
    press = chat.press_update(buttons["How to earn"])
    status, body = chat.post(press)
    assert status == 200 and body["processed"] is True
    earning = texts(chat.wait_for_sent(before + 1)[before:])
    assert "points for every" in earning, earning
    answered = [params["callback_query_id"] for params in chat.fake.called("answerCallbackQuery")]
    assert press["callback_query"]["id"] in answered


def test_a_forged_secret_is_403_and_nothing_is_sent(
    rasa_server: Any, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    chat = TelegramChat(e2e_env, platform_fakes)
    for secret in ("forged-secret", e2e_env["TELEGRAM_WEBHOOK_SECRET"] + "x", ""):
        status, body = chat.post(chat.message_update("how many points do I have?"), secret=secret)
        assert status == 403 and "secret" in body["error"]
    later = chat.say("thanks")
    assert chat.sent() == later  # a later message's answer, and nothing before it


def test_an_update_delivered_twice_is_answered_once(
    rasa_server: Any, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    chat = TelegramChat(e2e_env, platform_fakes)
    update = chat.message_update("how many points do I have?")
    first = chat.post(update)
    assert first == (200, {"ok": True, "processed": True})
    replies = chat.wait_for_sent(1)
    second = chat.post(update)  # Telegram redelivers when it saw no 200 in time
    assert second == (200, {"ok": True, "processed": False})
    # The one turn's answer, then a later message's, and nothing between them: the webhook answers after
    # its turn, and a chat's messages go out in order.
    later = chat.say("thanks")
    assert chat.sent() == replies + later


def test_a_chat_linked_with_a_start_deep_link_gets_its_real_points(
    rasa_server: Any, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    """A member of their own (the demo shoppers' balances are asserted elsewhere) with 1,234 points gets a
    link code from the store; `/start link_<code>` (what the account page's t.me link sends) links the chat."""
    from bot import clock
    from bot.db import Database
    from bot.identity import create_customer
    from bot.identity.linking import issue_link_code
    from bot.loyalty.ledger import post_entry
    from bot.settings import Settings

    chat = TelegramChat(e2e_env, platform_fakes)
    email = f"tg-{uuid.uuid4().hex[:8]}@example.com"
    database = Database(Settings.from_env(e2e_env).database_url)
    try:
        with database.session(write=True) as session:
            customer = create_customer(session, email, "Robin")
            post_entry(session, customer.id, 1234, kind="earn", reason="Order 9101", source="order",
                       source_ref="9101", idempotency_key=f"order:{email}")
            deep_link = issue_link_code(session, customer.id, clock.now()).deep_link_parameter
    finally:
        database.dispose()

    assert "rewards account linked to this chat" in texts(chat.say("how many points do I have?"))
    linked = texts(chat.say(f"/start {deep_link}"))
    assert "this chat is now linked" in linked and "1,234 points" in linked, linked
    assert "Robin, you have 1,234 points" in texts(chat.say("how many points do I have?"))
