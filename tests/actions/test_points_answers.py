"""What a point is worth and when points expire, on real trackers against the seeded demo store."""
from __future__ import annotations

from datetime import timedelta

from rasa_sdk.executor import CollectingDispatcher

from actions.loyalty import ActionPointsExpiry, ActionPointsValue
from bot.identity import create_customer, link_identity
from bot.loyalty.expiry import expire_points, expires_on
from bot.loyalty.ledger import post_entry
from bot.loyalty.program import get_program
from bot.models import Customer
from tests.actions.conftest import make_tracker

ALICE = 1


async def _messages(action, tracker) -> list:
    dispatcher = CollectingDispatcher()
    assert await action.run(dispatcher, tracker, {}) == []
    return dispatcher.messages


def _date(moment) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


async def test_a_points_money_value_and_what_alices_balance_buys(demo_store) -> None:
    [message] = await _messages(ActionPointsValue(), make_tracker("alice", "how much is a point worth", "points_value"))
    text = message["text"]
    assert "100 points = $1 off ($5 off for 500, $10 off for 1,000, $15 off for 1,500, $20 off for 2,000)" in text
    assert "Alice, your 1,598 points are worth about $15.98 — enough for $15 off (1,500 points) right now." in text
    assert "The cheapest reward is Free shipping at 400 points — you can get it now." in text
    assert [b["payload"] for b in message["buttons"]] == ["/redeem_reward", "/check_points", "/how_to_earn"]


async def test_a_small_balance_is_told_how_far_the_cheapest_reward_is(demo_store) -> None:
    [message] = await _messages(ActionPointsValue(), make_tracker("dev", "what r my points worth in $", "points_value"))
    text = message["text"]
    assert "Dev, your 100 points are worth about $1, but the smallest money-off reward needs 500." in text
    assert "The cheapest reward is Free shipping at 400 points — 300 to go (about $60 of shopping)." in text
    assert "/redeem_reward" not in [b["payload"] for b in message["buttons"]]


async def test_a_guest_gets_the_rate_and_the_cheapest_reward_but_no_balance(demo_store) -> None:
    [message] = await _messages(ActionPointsValue(), make_tracker("guest-77", "whats a point worth", "points_value"))
    text = message["text"]
    assert "100 points = $1 off" in text
    assert "The cheapest reward is Free shipping at 400 points (about $80 of shopping at 5 points per $1)." in text
    assert "linked to this chat" in text and "your 1," not in text


async def test_alices_points_are_safe_for_twelve_months_after_her_last_order(demo_store) -> None:
    with demo_store.session() as session:
        last = session.get(Customer, ALICE).last_activity_at
    [message] = await _messages(ActionPointsExpiry(), make_tracker("alice", "when do my points expire", "points_expiry"))
    text = message["text"]
    assert f"Alice, your 1,598 points are safe until {_date(expires_on(get_program(), last))}." in text
    assert f"Your last points activity was on {_date(last)}" in text
    assert "Points expire after 12 months without earning or redeeming" in text
    assert "Heads up" not in text


async def test_points_inside_the_warning_window_get_a_heads_up_with_the_days_left(demo_store, clock) -> None:
    with demo_store.session() as session:
        last = session.get(Customer, ALICE).last_activity_at
    expiry = expires_on(get_program(), last)
    clock.at(expiry - timedelta(days=10))
    [message] = await _messages(ActionPointsExpiry(), make_tracker("alice", "r my pts expiring", "points_expiry"))
    assert f"Heads up, Alice: your 1,598 points expire on {_date(expiry)} (in 10 days)." in message["text"]
    assert message["buttons"][0]["payload"] == "/redeem_reward"


async def test_a_late_warning_moves_the_date_and_an_expiry_is_reported_afterwards(demo_store, clock) -> None:
    with demo_store.session(write=True) as session:
        customer = create_customer(session, "sam@example.com", first_name="Sam")
        link_identity(session, customer.id, "rest", "sam-1")
        post_entry(session, customer.id, 700, kind="earn", reason="Order #2001", source="order",
                   idempotency_key="sam-2001", at=clock.current - timedelta(days=400))
        sam = customer.id
    # The regular date has passed unannounced: the expiry job warns first and keeps 30 days from then.
    expire_points(demo_store, get_program(), clock.current)
    [message] = await _messages(ActionPointsExpiry(), make_tracker("sam-1", "do my points expire", "points_expiry"))
    deadline = clock.current + timedelta(days=30)
    assert f"Heads up, Sam: your 700 points expire on {_date(deadline)} (in 30 days)." in message["text"]
    assert "order #2001" in message["text"]

    clock.advance(days=31)
    expire_points(demo_store, get_program(), clock.current)
    [message] = await _messages(ActionPointsExpiry(), make_tracker("sam-1", "when do they expire", "points_expiry"))
    assert "Sam, you have no points that can expire right now." in message["text"]
    assert f"Earlier, 700 points expired on {_date(deadline)}." in message["text"]
    with demo_store.session() as session:
        assert session.get(Customer, sam).points_balance == 0


async def test_a_guest_gets_the_expiry_rule_and_how_to_link(demo_store) -> None:
    [message] = await _messages(ActionPointsExpiry(), make_tracker("guest-8", "do points expire", "points_expiry"))
    assert "Points expire after 12 months without earning or redeeming" in message["text"]
    assert "linked to this chat" in message["text"]
