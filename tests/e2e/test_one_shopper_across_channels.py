"""One shopper across channels, end to end: Alice (linked on REST by the demo seed) links a Telegram
chat with a `/start link_<code>` deep link and an Instagram DM with a typed code; each channel then
answers with the same balance. Real Rasa server with the trained model and action server; the
platforms are the local fakes of tests/e2e/conftest.py."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable, Dict, List

import pytest
from sqlalchemy import select

from bot import clock
from bot.db import Database
from bot.identity.linking import issue_link_code
from bot.models import Customer
from bot.settings import Settings
from tests.fakes.threaded import ThreadedServers

pytestmark = pytest.mark.e2e

ALICE = "alice.moreau@example.com"
REPLY_TIMEOUT_SECONDS = 90


def _post(url: str, body: bytes, headers: Dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _link_code(e2e_env: Dict[str, str]) -> str:
    database = Database(Settings.from_env(e2e_env).database_url)
    try:
        with database.session(write=True) as session:
            alice = session.execute(select(Customer).where(Customer.email == ALICE)).scalar_one()
            return issue_link_code(session, alice.id, clock.now()).code
    finally:
        database.dispose()


def _wait_for(read: Callable[[], List[str]], count: int) -> List[str]:
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = read()
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"expected {count} replies, got {read()}")


class TelegramChat:
    def __init__(self, e2e_env: Dict[str, str], fakes: ThreadedServers) -> None:
        self.url = f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/telegram/webhook"
        self.secret = e2e_env["TELEGRAM_WEBHOOK_SECRET"]
        self.fake = fakes.servers["telegram"]
        self.chat_id = int(uuid.uuid4().int % 10**9) + 10**9
        self.update_id = int(time.time() * 1000) % 10**9

    def replies(self) -> List[str]:
        calls = list(self.fake.calls)
        return [
            str(call.params.get("text") or call.params.get("caption") or "")
            for call in calls
            if call.method in ("sendMessage", "sendPhoto") and str(call.params.get("chat_id")) == str(self.chat_id)
        ]

    def say(self, text: str) -> str:
        before = len(self.replies())
        self.update_id += 1
        update = {
            "update_id": self.update_id,
            "message": {
                "message_id": self.update_id, "date": int(time.time()), "text": text,
                "from": {"id": self.chat_id, "is_bot": False, "first_name": "Alice", "language_code": "en"},
                "chat": {"id": self.chat_id, "type": "private", "first_name": "Alice"},
            },
        }
        status = _post(self.url, json.dumps(update).encode(), {"X-Telegram-Bot-Api-Secret-Token": self.secret})
        assert status == 200
        return "\n".join(_wait_for(self.replies, before + 1)[before:])


class InstagramChat:
    def __init__(self, e2e_env: Dict[str, str], fakes: ThreadedServers) -> None:
        self.url = f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/instagram/webhook"
        self.app_secret = e2e_env["INSTAGRAM_APP_SECRET"].encode()
        self.fake = fakes.servers["graph"]
        self.sender = str(uuid.uuid4().int % 10**16)

    def replies(self) -> List[str]:
        messages = list(self.fake.messages)
        return [
            str(message["message"].get("text", ""))
            for message in messages
            if message.get("recipient", {}).get("id") == self.sender
        ]

    def say(self, text: str) -> str:
        before = len(self.replies())
        event = {
            "object": "instagram",
            "entry": [{"id": "17841400000000000", "time": int(time.time() * 1000), "messaging": [{
                "sender": {"id": self.sender}, "recipient": {"id": "17841400000000000"},
                "timestamp": int(time.time() * 1000),
                "message": {"mid": f"e2e-{uuid.uuid4().hex}", "text": text},
            }]}],
        }
        body = json.dumps(event).encode()
        signature = "sha256=" + hmac.new(self.app_secret, body, hashlib.sha256).hexdigest()
        assert _post(self.url, body, {"X-Hub-Signature-256": signature}) == 200
        return "\n".join(_wait_for(self.replies, before + 1)[before:])


def test_alice_links_telegram_and_instagram_and_sees_one_balance_everywhere(
    rasa_server: Any, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    telegram = TelegramChat(e2e_env, platform_fakes)
    instagram = InstagramChat(e2e_env, platform_fakes)

    guest = telegram.say("how many points do I have?")
    assert "can't see an Oak & Ember rewards account linked to this chat" in guest

    linked = telegram.say(f"/start link_{_link_code(e2e_env).replace('-', '')}")
    assert "Done, Alice — this chat is now linked to your Oak & Ember account. You have 1,598 points." in linked
    assert "Alice, you have 1,598 points" in telegram.say("how many points do I have?")

    code = _link_code(e2e_env)
    assert "this chat is now linked" in instagram.say(f"my code is {code}")
    assert "Alice, you have 1,598 points" in instagram.say("how many points do I have?")
    stranger = TelegramChat(e2e_env, platform_fakes)
    assert "already been used" in stranger.say(code), "a code works once, whichever chat tries it"


def test_a_body_over_one_megabyte_is_refused_before_any_channel_reads_it(rasa_server: Any, e2e_env: Dict[str, str]) -> None:
    url = f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/rest/webhook"
    body = json.dumps({"sender": "alice", "message": "x" * (1024 * 1024 + 10)}).encode()
    assert _post(url, body, {}) == 413
