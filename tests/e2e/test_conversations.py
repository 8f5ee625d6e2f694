"""Multi-turn conversations with the trained model (rasa.core.agent) and the real action server."""
from __future__ import annotations

import uuid
from typing import List

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

pytestmark = pytest.mark.e2e


class Conversation:
    def __init__(self, agent, sender_id: str, channel: str = "rest") -> None:
        self.agent, self.sender_id, self.channel = agent, sender_id, channel

    async def say(self, text: str) -> List[dict]:
        output = CollectingOutputChannel()
        await self.agent.handle_message(UserMessage(text, output, self.sender_id, input_channel=self.channel))
        return output.messages

    async def intent_and_action(self) -> tuple:
        tracker = await self.agent.tracker_store.retrieve(self.sender_id)
        latest = tracker.latest_message.intent.get("name")
        actions = [e.action_name for e in tracker.events if getattr(e, "action_name", None) not in (None, "action_listen")]
        return latest, actions[-1] if actions else None

    async def text(self, message: str) -> str:
        replies = await self.say(message)
        assert replies, f"no reply to {message!r}"
        return "\n".join(reply.get("text", "") for reply in replies)


def _guest() -> str:
    return f"guest-{uuid.uuid4().hex[:8]}"


async def test_greet_points_tier_thanks_bye(agent) -> None:
    chat = Conversation(agent, "alice")
    assert "points" in (await chat.text("hey there")).lower()
    points = await chat.text("how many points do I have?")
    assert "Alice, you have 1,598 points and you're a Silver member." in points
    assert "402 to go" in points
    tier = await chat.text("what tier am i in")
    assert "you're a Silver member, with $532.50 of qualifying spend" in tier
    await chat.text("thanks a lot!")
    assert (await chat.intent_and_action()) == ("thank_you", "utter_you_are_welcome")
    await chat.text("bye")
    assert (await chat.intent_and_action()) == ("goodbye", "utter_goodbye")


@pytest.mark.parametrize(
    "message, intent, action",
    [
        ("hw many pts do i hav", "check_points", "action_check_points"),
        ("am I gold yet?", "check_tier", "action_check_tier"),
        ("how can i get more points", "how_to_earn", "action_how_to_earn"),
        ("are you a bot?", "bot_challenge", "utter_iamabot"),
        ("what can you do", "help", "utter_help"),
        ("what's the weather in paris tomorrow", "out_of_scope", "utter_out_of_scope"),
        ("see ya", "goodbye", "utter_goodbye"),
    ],
)
async def test_single_turns_reach_the_right_answer(agent, message, intent, action) -> None:
    chat = Conversation(agent, _guest())
    await chat.text(message)
    assert await chat.intent_and_action() == (intent, action)


async def test_guest_is_offered_a_way_to_link_or_join(agent) -> None:
    chat = Conversation(agent, _guest())
    reply = await chat.text("what's my points balance?")
    assert "linked to this chat" in reply and "/account/register" in reply


async def test_handoff_is_confirmed_then_recorded(agent, e2e_env) -> None:
    from sqlalchemy import select

    from bot.db import Database
    from bot.models import HandoffRequest
    from bot.settings import Settings

    sender = _guest()
    chat = Conversation(agent, sender)
    confirm = await chat.say("I want to speak to a real person")
    assert "pass this conversation to a person" in confirm[0]["text"]
    assert [b["payload"] for b in confirm[0]["buttons"]] == ["/affirm", "/deny"]
    done = await chat.text("yes please")
    assert "I've passed this conversation" in done
    database = Database(Settings.from_env(e2e_env).database_url)
    with database.session() as session:
        request = session.execute(select(HandoffRequest).where(HandoffRequest.sender_id == sender)).scalar_one()
    database.dispose()
    assert request.status == "open"
    assert request.last_messages[0] == {**request.last_messages[0], "role": "shopper", "text": "I want to speak to a real person"}


async def test_declined_handoff_records_nothing(agent) -> None:
    chat = Conversation(agent, _guest())
    await chat.text("get me a human agent")
    reply = await chat.text("no thanks")
    assert "still here" in reply
    assert await chat.intent_and_action() == ("deny", "utter_handoff_cancelled")


async def test_a_yes_out_of_the_blue_records_no_handoff(agent, e2e_env) -> None:
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import HandoffRequest
    from bot.settings import Settings

    sender = _guest()
    chat = Conversation(agent, sender)
    await chat.text("hello")
    await chat.text("yes")
    assert await chat.intent_and_action() == ("affirm", "utter_what_next")
    database = Database(Settings.from_env(e2e_env).database_url)
    with database.session() as session:
        count = session.execute(select(func.count()).where(HandoffRequest.sender_id == sender)).scalar_one()
    database.dispose()
    assert count == 0


async def test_gibberish_gets_the_menu_not_silence(agent) -> None:
    chat = Conversation(agent, _guest())
    replies = await chat.say("qwzx vbnm plk")
    assert replies and replies[0].get("buttons"), replies
    latest, action = await chat.intent_and_action()
    assert action in ("utter_not_understood", "utter_out_of_scope")


async def test_button_payloads_work_like_typed_messages(agent) -> None:
    chat = Conversation(agent, "bob")
    reply = await chat.text("/check_points")
    assert reply.startswith("Bob, you have 545 points")
