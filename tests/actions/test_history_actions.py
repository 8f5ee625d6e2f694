"""Points history, expiring points and tier announcements, on real trackers against a seeded SQLite store."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from dateutil.relativedelta import relativedelta
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.history import ActionPointsHistory
from actions.loyalty import ActionCheckPoints, ActionCheckTier
from actions.rewards import ActionOfferReward, ActionRedeemReward
from bot import clock as clock_module
from bot.identity import create_customer, link_identity
from bot.loyalty.expiry import expires_on
from bot.loyalty.ledger import post_entry
from bot.loyalty.program import get_program
from bot.models import Customer, TierChange
from tests.actions.conftest import make_tracker

ALICE, BOB = 1, 2
BULLET = re.compile(r"^• \d{1,2} [A-Z][a-z]{2}( \d{4})?: [+−][\d,]+ points — .+$")


async def _messages(action, tracker) -> list:
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, tracker, {})
    return dispatcher.messages


async def test_history_lists_the_latest_entries_in_plain_words_then_the_balance(demo_store) -> None:
    [message] = await _messages(ActionPointsHistory(), make_tracker("alice", "points history", "points_history"))
    lines = message["text"].split("\n")
    assert lines[0] == "Your latest points activity (newest first):"
    assert lines[-1] == "Your balance is 1,598 points."
    bullets = lines[1:-1]
    assert len(bullets) == 5 and all(BULLET.match(line) for line in bullets), bullets
    assert bullets[0].endswith("points — Order #1042")
    assert "−1,500 points — Redeemed $15 off" in bullets[1]
    assert bullets[2].endswith("+100 points — Product review of the Linden lounge chair")
    assert bullets[3].endswith("points — Order #1017") and bullets[4].endswith("points — Order #1001")
    assert "/redeem_reward" in [b["payload"] for b in message["buttons"]]


async def test_history_shows_a_redemption_an_expiry_and_a_refund(demo_store) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionOfferReward().run(
        dispatcher, make_tracker("bob", "$5 off", "redeem_reward", entities={"reward": "five-off"}), {}
    )
    slots = {e["name"]: e["value"] for e in events}
    await _messages(ActionRedeemReward(), make_tracker("bob", "yes", "affirm", slots=slots))
    with demo_store.session(write=True) as session:
        post_entry(session, BOB, -20, kind="reverse", reason="Order 1050 refunded", source="refund",
                   source_ref="1050", idempotency_key="refund:1050:r1")
        post_entry(session, BOB, -25, kind="expire", reason="Points expired after 12 months without activity",
                   source="expiry", idempotency_key="expiry:test")
    [message] = await _messages(ActionPointsHistory(), make_tracker("bob", "where did my points go", "points_history"))
    bullets = message["text"].split("\n")[1:-1]
    assert bullets[0].endswith("−25 points — Points expired (12 months without earning or redeeming)")
    assert bullets[1].endswith("−20 points — Order #1050 refunded")
    assert bullets[2].endswith("−500 points — Redeemed: $5 off")
    assert message["text"].endswith("Your balance is 0 points.")


async def test_empty_history_says_so(demo_store) -> None:
    with demo_store.session(write=True) as session:
        customer = create_customer(session, "new@example.com", "Nia")
        link_identity(session, customer.id, "rest", "nia")
    [message] = await _messages(ActionPointsHistory(), make_tracker("nia", "history", "points_history"))
    assert message["text"].startswith("There's nothing in your points history yet — you have 0 points.")
    assert "5 points for every $1" in message["text"]


async def test_history_for_a_guest_shows_no_numbers(demo_store) -> None:
    [message] = await _messages(ActionPointsHistory(), make_tracker("guest-5", "points history", "points_history"))
    assert "linked to this chat" in message["text"] and "your points history" in message["text"]


async def test_points_about_to_expire_are_mentioned(demo_store, clock) -> None:
    with demo_store.session() as session:
        last_activity = session.get(Customer, ALICE).last_activity_at
    expiry = expires_on(get_program(), last_activity)
    clock.at(expiry - timedelta(days=10))  # inside the 30-day warning window
    [message] = await _messages(ActionCheckPoints(), make_tracker("alice", "points?", "check_points"))
    date = f"{expiry:%B} {expiry.day}, {expiry.year}"
    assert f"1,598 points expire on {date} — earn or redeem before then to keep them." in message["text"]

    clock.at(expiry - timedelta(days=40))  # outside the window: no warning
    [message] = await _messages(ActionCheckPoints(), make_tracker("alice", "points?", "check_points"))
    assert "expire" not in message["text"]


async def test_points_expiring_after_recent_activity_are_not_mentioned(demo_store) -> None:
    with demo_store.session(write=True) as session:
        session.get(Customer, BOB).last_activity_at = clock_module.now() - relativedelta(months=12) + timedelta(days=3)
    [message] = await _messages(ActionCheckPoints(), make_tracker("bob", "points?", "check_points"))
    assert "545 points expire on" in message["text"]
    [message] = await _messages(ActionCheckPoints(), make_tracker("alice", "points?", "check_points"))
    assert "expire" not in message["text"]


def _record_tier_change(store, customer_id: int, from_tier: str, to_tier: str, direction: str = "up") -> None:
    with store.session(write=True) as session:
        session.add(TierChange(customer_id=customer_id, from_tier=from_tier, to_tier=to_tier, direction=direction,
                               reason="order 2001", created_at=clock_module.now()))


@pytest.mark.parametrize(
    "action, text, intent",
    [
        (ActionCheckPoints(), "points?", "check_points"),
        (ActionCheckTier(), "my tier", "check_tier"),
        (ActionOfferReward(), "redeem", "redeem_reward"),
        (ActionPointsHistory(), "history", "points_history"),
    ],
)
async def test_a_tier_change_is_announced_once_at_the_start_of_the_reply(demo_store, action, text, intent) -> None:
    _record_tier_change(demo_store, ALICE, "Silver", "Gold")
    first = await _messages(action, make_tracker("alice", text, intent))
    assert first[0]["text"] == "Good news: you're Gold now — 1.5× points on every order!"
    assert len(first) == 2 and "Gold now" not in first[1]["text"]
    second = await _messages(action, make_tracker("alice", text, intent))
    assert len(second) == 1 and "Gold now" not in second[0]["text"]
    with demo_store.session() as session:
        [change] = session.execute(select(TierChange).where(TierChange.customer_id == ALICE,
                                                            TierChange.reason == "order 2001")).scalars()
        assert change.announced_at is not None


async def test_several_changes_announce_the_tier_held_now(demo_store) -> None:
    _record_tier_change(demo_store, BOB, "Bronze", "Silver")
    _record_tier_change(demo_store, BOB, "Silver", "Gold")
    _record_tier_change(demo_store, BOB, "Gold", "Silver", "down")
    messages = await _messages(ActionCheckPoints(), make_tracker("bob", "points", "check_points"))
    assert messages[0]["text"] == "Your VIP tier is now Silver (your Gold term has ended) — 1.25× points on every order."
    assert len(await _messages(ActionCheckPoints(), make_tracker("bob", "points", "check_points"))) == 1


async def test_a_tier_change_is_announced_with_a_redemption(demo_store) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionOfferReward().run(
        dispatcher, make_tracker("alice", "$5 off", "redeem_reward", entities={"reward": "five-off"}), {}
    )
    slots = {e["name"]: e["value"] for e in events}
    _record_tier_change(demo_store, ALICE, "Silver", "Gold")  # e.g. an order paid meanwhile
    messages = await _messages(ActionRedeemReward(), make_tracker("alice", "yes", "affirm", slots=slots))
    assert messages[0]["text"].startswith("Good news: you're Gold now")
    assert messages[1]["text"].startswith("Done! Here's your code for $5 off:")
