"""Multi-turn conversations with the trained model (rasa.core.agent) and the real action server."""
from __future__ import annotations

import re
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
    assert (await chat.intent_and_action()) == ("thank_you", "action_you_are_welcome")
    await chat.text("bye")
    assert (await chat.intent_and_action()) == ("goodbye", "action_goodbye")


@pytest.mark.parametrize(
    "message, intent, action",
    [
        ("hw many pts do i hav", "check_points", "action_check_points"),
        ("am I gold yet?", "check_tier", "action_check_tier"),
        ("how can i get more points", "how_to_earn", "action_how_to_earn"),
        ("are you a bot?", "bot_challenge", "utter_iamabot"),
        ("what can you do", "help", "action_help"),
        ("what's the weather in paris tomorrow", "out_of_scope", "action_out_of_scope"),
        ("see ya", "goodbye", "action_goodbye"),
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
    assert await chat.intent_and_action() == ("affirm", "action_what_next")
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
    assert action in ("action_not_understood", "action_out_of_scope")


async def test_button_payloads_work_like_typed_messages(agent) -> None:
    chat = Conversation(agent, "bob")
    reply = await chat.text("/check_points")
    assert reply.startswith("Bob, you have 545 points")


# ---------------------------------------------------------------- rewards and history

CODE = re.compile(r"\bRW-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def new_member(e2e_env, points: int) -> str:
    """A customer of their own (the demo shoppers' balances are asserted elsewhere), linked to a new
    REST sender and credited `points` through the ledger; returns the sender id."""
    from bot.db import Database
    from bot.identity import create_customer, link_identity
    from bot.loyalty.ledger import post_entry
    from bot.settings import Settings

    sender = f"member-{uuid.uuid4().hex[:8]}"
    database = Database(Settings.from_env(e2e_env).database_url)
    with database.session(write=True) as session:
        customer = create_customer(session, f"{sender}@example.com", "Sam")
        link_identity(session, customer.id, "rest", sender)
        post_entry(session, customer.id, points, kind="earn", reason="Order 9001", source="order",
                   source_ref="9001", idempotency_key=f"order:{sender}")
    database.dispose()
    return sender


def member_state(e2e_env, sender: str) -> tuple:
    """(balance, reward codes, ledger verifies clean) of a test member."""
    from sqlalchemy import select

    from bot.db import Database
    from bot.identity import customer_for_sender
    from bot.loyalty.ledger import verify_balances
    from bot.models import RewardCode
    from bot.settings import Settings

    database = Database(Settings.from_env(e2e_env).database_url)
    with database.session() as session:
        customer = customer_for_sender(session, "rest", sender)
        codes = [c.code for c in session.execute(select(RewardCode).where(RewardCode.customer_id == customer.id)).scalars()]
        state = (customer.points_balance, codes, verify_balances(session) == [])
    database.dispose()
    return state


async def test_a_named_reward_is_confirmed_then_redeemed_once(agent, e2e_env) -> None:
    sender = new_member(e2e_env, 1000)
    chat = Conversation(agent, sender)
    [offer] = await chat.say("can I get the free shipping reward?")
    assert "Redeem 400 points for free shipping?" in offer["text"], offer
    assert [b["payload"] for b in offer["buttons"]] == ["/affirm", "/deny"]
    assert member_state(e2e_env, sender) == (1000, [], True)  # nothing spent before the yes
    done = await chat.text("yes")
    assert await chat.intent_and_action() == ("affirm", "action_redeem_reward")
    balance, codes, clean = member_state(e2e_env, sender)
    assert (balance, len(codes), clean) == (600, 1, True)
    assert CODE.search(done).group(0) == codes[0]
    assert "Enter it at checkout in the discount code box" in done and "You now have 600 points." in done
    # A second tap on "Yes, redeem" confirms nothing new.
    await chat.text("/affirm")
    assert await chat.intent_and_action() == ("affirm", "action_what_next")
    assert member_state(e2e_env, sender) == (600, codes, True)


async def test_redeem_lists_affordable_rewards_as_buttons_that_lead_to_a_code(agent, e2e_env) -> None:
    sender = new_member(e2e_env, 550)
    chat = Conversation(agent, sender)
    [listing] = await chat.say("I want to redeem my points")
    assert await chat.intent_and_action() == ("redeem_reward", "action_offer_reward")
    payloads = [b["payload"] for b in listing["buttons"]]
    assert payloads == ['/redeem_reward{"reward":"free-shipping"}', '/redeem_reward{"reward":"five-off"}']
    [offer] = await chat.say(payloads[1])
    assert offer["text"].startswith("Redeem 500 points for $5 off? You'll have 50 points left.")
    done = await chat.text(offer["buttons"][0]["payload"])
    assert done.startswith("Done! Here's your code for $5 off:")
    assert member_state(e2e_env, sender)[0] == 50


async def test_declining_the_offer_spends_nothing(agent, e2e_env) -> None:
    sender = new_member(e2e_env, 1200)
    chat = Conversation(agent, sender)
    await chat.text("I'd like the $10 off please")
    reply = await chat.text("no")
    assert await chat.intent_and_action() == ("deny", "action_cancel_redemption")
    assert "your points are still there" in reply
    assert member_state(e2e_env, sender) == (1200, [], True)


async def test_not_enough_points_says_how_far_the_cheapest_reward_is(agent) -> None:
    chat = Conversation(agent, "dev")
    reply = await chat.text("redeem my points")
    assert "needs 400 points and you have 100 — 300 more to go (about $60 of shopping)" in reply


async def test_points_history_in_plain_words(agent) -> None:
    chat = Conversation(agent, "alice")
    reply = await chat.text("points history")
    assert await chat.intent_and_action() == ("points_history", "action_points_history")
    assert reply.startswith("Your latest points activity (newest first):")
    assert "points — Order #1042" in reply and "−1,500 points — Redeemed $15 off" in reply
    assert reply.endswith("Your balance is 1,598 points.")
