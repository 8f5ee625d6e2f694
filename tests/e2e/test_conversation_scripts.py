"""Plays every conversation of tests/conversations/*.yml through the REST channel: the real Rasa server with the
trained model and the real action server, as a shopper's client would."""
from __future__ import annotations

import json
import urllib.request
import uuid
from typing import List

import pytest

from tests.conversations import Conversation, load_conversations

pytestmark = pytest.mark.e2e

CONVERSATIONS = load_conversations()


def _post(url: str, sender: str, text: str) -> List[dict]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _what_was_said(replies: List[dict]) -> str:
    """The replies as a shopper sees them: texts, button titles, and card titles/texts."""
    parts: List[str] = []
    for reply in replies:
        parts.append(reply.get("text") or "")
        parts += [button.get("title", "") for button in reply.get("buttons") or []]
        custom = reply.get("custom")
        if custom:
            parts.append(json.dumps(custom, ensure_ascii=False))
    return "\n".join(part for part in parts if part)


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c.name for c in CONVERSATIONS])
def test_conversation(rest_url: str, conversation: Conversation) -> None:
    sender = conversation.shopper or f"script-{uuid.uuid4().hex[:10]}"
    if conversation.shopper:
        _post(rest_url, sender, "/restart")  # a demo shopper's earlier conversations must not leak in
    transcript: List[str] = []
    for turn in conversation.turns:
        answer = _what_was_said(_post(rest_url, sender, turn.say))
        transcript += [f"shopper: {turn.say}", f"bot: {answer or '(silence)'}"]
        problems = turn.problems(answer)
        if not answer:
            problems.append("no answer at all")
        assert not problems, f"{conversation.source} / {conversation.name}: {problems}\n" + "\n".join(transcript)
