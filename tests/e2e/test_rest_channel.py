"""The full `rasa run` server with our REST channel, over HTTP, as a client would call it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Dict, List, Tuple, Union

import pytest

from bot.processes import free_port
from tests.e2e.conftest import start_action_server, start_rasa_server

pytestmark = pytest.mark.e2e


def post(url: str, body: Union[bytes, dict], headers: Dict[str, str] = None) -> Tuple[int, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def texts(replies: List[dict]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies)


def test_a_demo_shopper_gets_their_real_points(rest_url) -> None:
    status, replies = post(rest_url, {"sender": "chloe", "message": "how many points have i got"})
    assert status == 200
    assert "Chloe, you have 14,530 points and you're a Platinum member." in texts(replies)
    assert replies[0]["recipient_id"] == "chloe"


@pytest.mark.parametrize(
    "body, expected_status",
    [
        ({"message": ""}, 200),
        ({"message": "   \t\n  "}, 200),
        ({"message": "points " * 1500}, 200),  # ~10 kB
        ({"message": "🎉🎉🙌"}, 200),
        ({"message": "\x00\x07\x1b[2J points?\x08"}, 200),
        (b'{"sender": "s", "message": "\xff\xfe"}', 400),
        (b"\xc3\x28 not utf-8 at all", 400),
        (b"this is not json", 400),
        ({"message": None}, 400),
        (b"{" + b" " * 70_000 + b"}", 413),
        # Lone UTF-16 surrogates: valid JSON escapes no encoder writes (spaCy failed on them: 503).
        (b'{"sender": "guest-surrogates", "message": "how many points \\ud800 do i have \\udfff"}', 200),
        (b'{"sender": "guest-\\udc00-sender", "message": "hi \\ud83d"}', 200),
    ],
    ids=["empty", "whitespace", "10kB", "emoji-only", "control-chars", "bad-utf8-in-json", "non-utf8", "not-json", "null-message",
         "oversized-body", "lone-surrogates", "lone-surrogate-in-sender"],
)
def test_bad_input_gets_a_reply_or_a_clear_4xx(rest_url, body, expected_status, rasa_server) -> None:
    if isinstance(body, dict):
        body = {"sender": f"guest-{uuid.uuid4().hex[:8]}", **body}
    status, answer = post(rest_url, body)
    assert status == expected_status, answer
    if status == 200:
        assert isinstance(answer, list) and answer and all(reply.get("text") for reply in answer), answer
    else:
        assert isinstance(answer, dict) and answer["error"]
    assert rasa_server.alive()


def test_the_client_cannot_pose_as_another_channel(rest_url) -> None:
    # Stock RestInput would take input_channel from the body; "telegram:alice" is not the REST alice.
    status, replies = post(rest_url, {"sender": "alice", "message": "my points", "input_channel": "telegram",
                                      "metadata": {"customer_id": 3}})
    assert status == 200
    assert "Alice, you have 1,598 points" in texts(replies)


def test_conversations_survive_a_restart_and_the_rest_token_is_enforced(trained_model, action_server, e2e_env, e2e_dir) -> None:
    env = {**e2e_env, "RASA_PORT": str(free_port())}
    url = f"http://127.0.0.1:{env['RASA_PORT']}/webhooks/rest/webhook"
    sender = f"restart-{uuid.uuid4().hex[:8]}"
    server = start_rasa_server(env, e2e_dir / "rasa-restart.log")
    try:
        status, replies = post(url, {"sender": sender, "message": "can I talk to a human please"})
        assert status == 200 and "pass this conversation to a person" in texts(replies)
    finally:
        server.stop()
    # Second start also requires a bearer token on the REST channel (REST_CHANNEL_TOKEN).
    env["REST_CHANNEL_TOKEN"] = "test-token-" + uuid.uuid4().hex
    server = start_rasa_server(env, e2e_dir / "rasa-restart-token.log")
    try:
        assert post(url, {"sender": sender, "message": "yes"})[0] == 401
        assert post(url, {"sender": sender, "message": "yes"}, {"Authorization": "Bearer wrong"})[0] == 401
        auth = {"Authorization": f"Bearer {env['REST_CHANNEL_TOKEN']}"}
        # "yes" only means "hand me over" if the tracker remembers the question asked before the restart.
        status, replies = post(url, {"sender": sender, "message": "yes"}, auth)
        assert status == 200 and "I've passed this conversation" in texts(replies), replies
    finally:
        server.stop()


def test_action_server_keeps_serving_when_the_store_is_down(e2e_env, e2e_dir) -> None:
    env = {**e2e_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere", "ACTIONS_PORT": str(free_port())}
    port = env["ACTIONS_PORT"]
    server = start_action_server(env, e2e_dir / "actions-down.log", name="action server (store down)")
    try:
        for _ in range(3):
            status, answer = post(f"http://127.0.0.1:{port}/webhook", {
                "next_action": "action_check_points",
                "sender_id": "alice",
                "tracker": {"sender_id": "alice", "slots": {}, "latest_message": {"text": "points"}, "events": [],
                            "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": None},
                "domain": {},
            })
            assert status == 200
            assert "can't reach our rewards system" in answer["responses"][0]["text"]
        assert server.alive()
        assert "store.unavailable" in (e2e_dir / "actions-down.log").read_text()
    finally:
        server.stop()


def test_a_reward_is_redeemed_over_http_after_an_explicit_yes(rest_url, e2e_env) -> None:
    from tests.e2e.test_conversations import CODE, member_state, new_member

    sender = new_member(e2e_env, 900)
    status, replies = post(rest_url, {"sender": sender, "message": "can I get the free shipping reward?"})
    assert status == 200 and "Redeem 400 points for free shipping?" in texts(replies), replies
    assert [b["title"] for b in replies[0]["buttons"]] == ["Yes, redeem", "No, keep my points"]
    status, replies = post(rest_url, {"sender": sender, "message": "yes"})
    assert status == 200
    balance, codes, clean = member_state(e2e_env, sender)
    assert (balance, len(codes), clean) == (500, 1, True)
    assert CODE.search(texts(replies)).group(0) == codes[0]
    assert "You now have 500 points." in texts(replies)


def test_points_history_over_http(rest_url) -> None:
    status, replies = post(rest_url, {"sender": "chloe", "message": "points history"})
    assert status == 200
    text = texts(replies)
    assert "points — Order #1055" in text and "+50 points — Followed us on Instagram" in text
    assert text.endswith("Your balance is 14,530 points.")
