"""The session's greeting: a linked member by name, tier, balance and one suggestion; a guest gets buttons."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from rasa_sdk.executor import CollectingDispatcher

from actions.greeting import ActionGreet
from bot import clock as clock_module
from bot.loyalty.expiry import expires_on
from bot.loyalty.orders import record_paid_order
from bot.loyalty.program import get_program
from bot.models import Customer
from tests.actions.conftest import make_tracker

ALICE, BOB = 1, 2


async def _greet(sender: str, text: str = "hi", history=None, channel: str = "rest") -> list:
    dispatcher = CollectingDispatcher()
    assert await ActionGreet().run(dispatcher, make_tracker(sender, text, "greet", channel=channel,
                                                            history=history), {}) == []
    return dispatcher.messages


def _payloads(message) -> list:
    return [button["payload"] for button in message["buttons"]]


async def test_alice_is_greeted_by_name_tier_balance_and_a_reward_she_can_afford(demo_store) -> None:
    [message] = await _greet("alice", "heyy")
    assert message["text"] == ("Hi Alice! You're a Silver member with 1,598 points — early access to sales is yours.\n"
                               "Your points are enough for $15 off — want it?")
    assert _payloads(message)[0] == '/redeem_reward{"reward": "fifteen-off"}'
    assert message["buttons"][0]["title"] == "Get $15 off"


async def test_a_platinum_member_hears_what_her_tier_unlocks(demo_store) -> None:
    [message] = await _greet("chloe", "/greet")
    assert message["text"].startswith(
        "Hi Chloe! You're a Platinum member with 14,530 points — a personal stylist in chat is yours.")
    assert "a free Pebble table lamp — want it?" in message["text"]


async def test_a_new_member_hears_how_far_the_first_reward_is(demo_store) -> None:
    [message] = await _greet("dev")
    assert message["text"] == ("Hi Dev! You're a Bronze member with 100 points.\n"
                               "You're 300 points from Free shipping (about $60 of shopping).")
    assert _payloads(message)[0] == "/how_to_earn"


async def test_a_tier_close_by_comes_before_a_reward(demo_store) -> None:
    with demo_store.session(write=True) as session:  # Bob: $89 + $160 = $249 of the $300 Silver needs
        record_paid_order(session, get_program(), BOB, "2090", Decimal("160"), clock_module.now())
    [message] = await _greet("bob")
    assert "You're only $51 of shopping away from Silver — early access to sales." in message["text"]
    assert _payloads(message)[0] == "/check_tier"


async def test_points_about_to_expire_come_first(demo_store, clock) -> None:
    with demo_store.session() as session:
        expiry = expires_on(get_program(), session.get(Customer, ALICE).last_activity_at)
    clock.at(expiry - timedelta(days=12))
    [message] = await _greet("alice")
    assert f"Heads up: your points expire on {expiry:%B} {expiry.day}, {expiry.year} (in 12 days)" in message["text"]
    assert _payloads(message)[0] == "/redeem_reward"


async def test_a_guest_is_told_what_the_assistant_does_with_buttons(demo_store) -> None:
    [message] = await _greet("guest-31", "/greet", channel="socketio")
    assert message["text"].startswith("Hi! I'm Oak & Ember's assistant. I can help you choose or find a product")
    assert _payloads(message) == ["/start_quiz", "/how_to_earn", "/link_account", "/get_referral_link",
                                  "/human_handoff"]
    assert not any(ch.isdigit() for ch in message["text"])


async def test_a_second_hi_in_the_same_session_is_short(demo_store) -> None:
    history = [{"event": "session_started"}, {"event": "action", "name": "action_greet"},
               {"event": "bot", "text": "Hi Alice! You're a Silver member with 1,598 points."}]
    [message] = await _greet("alice", "hi again", history=history)
    assert message["text"] == "Hi again, Alice! What can I do for you?"
    history.insert(2, {"event": "session_started"})  # a new session since: the full greeting
    [message] = await _greet("alice", "hello", history=history)
    assert message["text"].startswith("Hi Alice! You're a Silver member")


async def test_news_comes_with_the_greeting_unless_the_chat_unsubscribed(demo_store, clock) -> None:
    from bot.consent import record_consent
    from bot.notices import queue_notice

    with demo_store.session(write=True) as session:
        queue_notice(session, ALICE, "review_approved", "Your review is live — 100 points added", "r-1", clock.current)
        record_consent(session, "rest", "alice", "unsubscribed", now=clock.current)
    [greeting] = await _greet("alice")
    assert greeting["text"].startswith("Hi Alice!")  # the news waits for a question about points
    with demo_store.session(write=True) as session:
        record_consent(session, "rest", "alice", "subscribed", now=clock.current)
    news, greeting = await _greet("alice")
    assert news["text"] == "Your review is live — 100 points added" and greeting["text"].startswith("Hi Alice!")
