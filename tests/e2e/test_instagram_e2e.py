"""Instagram DMs end to end: signed webhook posts to the real `rasa run` server (trained model, action
server), replies read from the fake Graph API the server sends them to."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.fakes.threaded import ThreadedServers

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "instagram"
REPLY_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def webhook_url(rasa_server: Any, e2e_env: Dict[str, str]) -> str:
    return f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/instagram/webhook"


def fresh_sender() -> str:
    # Instagram-scoped ids are long numbers; a fresh one per test keeps its replies apart in the shared fake.
    return str(10**15 + uuid.uuid4().int % 10**15)


def fresh_mid() -> str:
    return f"aWdfZAG1e2e{uuid.uuid4().hex}"


def text_message(sender: str, text: str) -> bytes:
    """The shared fixture text_message.json with a fresh sender, message id and text."""
    payload = json.loads((FIXTURES / "text_message.json").read_text())
    event = payload["entry"][0]["messaging"][0]
    event["sender"]["id"] = sender
    event["message"].update(mid=fresh_mid(), text=text)
    return json.dumps(payload).encode()


def batch_of_two(first: Tuple[str, str], second: Tuple[str, str]) -> bytes:
    """The shared fixture batch_two_messages.json with fresh senders, message ids and texts."""
    payload = json.loads((FIXTURES / "batch_two_messages.json").read_text())
    for event, (sender, text) in zip(payload["entry"][0]["messaging"], (first, second)):
        event["sender"]["id"] = sender
        event["message"].update(mid=fresh_mid(), text=text)
    return json.dumps(payload).encode()


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, signature_header: Optional[str]) -> int:
    headers = {"Content-Type": "application/json"}
    if signature_header is not None:
        headers["X-Hub-Signature-256"] = signature_header
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REPLY_TIMEOUT_SECONDS) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def delivered_to(fakes: ThreadedServers, recipient: str) -> List[Dict[str, Any]]:
    graph = fakes.servers["graph"]
    return [m["message"] for m in fakes.call(graph.snapshot()) if m["recipient"]["id"] == recipient]


def wait_for_replies(fakes: ThreadedServers, recipient: str) -> List[Dict[str, Any]]:
    """The messages sent to `recipient`, once there is at least one (the webhook answers after the turn,
    so this rarely waits; the deadline only stops a broken server from hanging the run)."""
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    while True:
        messages = delivered_to(fakes, recipient)
        if messages or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def text_of(messages: List[Dict[str, Any]]) -> str:
    return "\n".join(message.get("text", "") for message in messages)


def test_a_guest_asking_for_points_gets_the_guest_answer(
    webhook_url: str, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    shopper = fresh_sender()
    body = text_message(shopper, "how many points do I have?")
    assert post(webhook_url, body, signature(body, e2e_env["INSTAGRAM_APP_SECRET"])) == 200
    replies = wait_for_replies(platform_fakes, shopper)
    assert replies, "no reply reached the Graph API"
    text = text_of(replies)
    # An Instagram sender is not linked to a customer: told how to get linked or join, never shown a number.
    assert "rewards account linked to this chat" in text and "can't show your points" in text
    assert "you have" not in text.lower()
    assert all(len(message.get("text", "").encode("utf-8")) <= 1000 for message in replies)
    quick_replies = [reply for message in replies for reply in message.get("quick_replies", [])]
    assert {"content_type": "text", "title": "How to earn", "payload": "/how_to_earn"} in quick_replies


def test_a_shoppers_first_message_is_greeted_before_it_is_answered_and_a_hi_is_greeted_once(
    webhook_url: str, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    asker, greeter = fresh_sender(), fresh_sender()
    body = text_message(asker, "do u ship to canada?")
    assert post(webhook_url, body, signature(body, e2e_env["INSTAGRAM_APP_SECRET"])) == 200
    texts = [message.get("text", "") for message in wait_for_replies(platform_fakes, asker)]
    greeting = [index for index, text in enumerate(texts) if "I'm" in text and "assistant" in text]
    assert greeting and greeting[0] == 0, texts  # the guest greeting opens the session …
    assert "canada" in "\n".join(texts[1:]).lower(), texts  # … then the question is answered
    body = text_message(asker, "and how long does delivery take")
    assert post(webhook_url, body, signature(body, e2e_env["INSTAGRAM_APP_SECRET"])) == 200
    later = delivered_to(platform_fakes, asker)[len(texts):]
    assert later and not any("assistant" in m.get("text", "") for m in later)  # the same session: no greeting

    body = text_message(greeter, "hiii")
    assert post(webhook_url, body, signature(body, e2e_env["INSTAGRAM_APP_SECRET"])) == 200
    said = text_of(wait_for_replies(platform_fakes, greeter))
    assert said.count("assistant") == 1 and "Hi again" not in said, said


def test_a_forged_signature_is_refused_and_nothing_is_sent(
    webhook_url: str, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    forger, genuine = fresh_sender(), fresh_sender()
    forged = text_message(forger, "how many points do I have?")
    assert post(webhook_url, forged, signature(forged, "not-the-app-secret")) == 403
    assert post(webhook_url, forged, None) == 403
    # A genuine message after them is answered; by then anything the forged ones caused would be sent too.
    body = text_message(genuine, "hi")
    assert post(webhook_url, body, signature(body, e2e_env["INSTAGRAM_APP_SECRET"])) == 200
    assert wait_for_replies(platform_fakes, genuine)
    assert delivered_to(platform_fakes, forger) == []


def test_both_messages_of_a_batch_are_answered(
    webhook_url: str, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    greeter, asker = fresh_sender(), fresh_sender()
    body = batch_of_two((greeter, "hi"), (asker, "how many points do I have"))
    assert post(webhook_url, body, signature(body, e2e_env["INSTAGRAM_APP_SECRET"])) == 200
    assert text_of(wait_for_replies(platform_fakes, greeter)).strip()
    assert "can't show your points" in text_of(wait_for_replies(platform_fakes, asker))


def test_the_verify_handshake_echoes_the_challenge_only_for_the_verify_token(
    webhook_url: str, e2e_env: Dict[str, str]
) -> None:
    def handshake(token: str) -> Tuple[int, str]:
        query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"})
        try:
            with urllib.request.urlopen(f"{webhook_url}?{query}", timeout=REPLY_TIMEOUT_SECONDS) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    assert handshake(e2e_env["INSTAGRAM_VERIFY_TOKEN"]) == (200, "1158201444")
    assert handshake("wrong-token")[0] == 403
