from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import balance, verify_balances
from bot.loyalty.orders import cancel_order, record_paid_order, refund_order
from bot.loyalty.summary import points_summary
from bot.loyalty.tiers import (
    customers_due_for_review, mark_announced, recompute_tier, tier_for_spend, tier_status, unannounced_changes,
)
from bot.loyalty.earning import award_tier_entry
from bot.models import Customer, TierChange
from sqlalchemy import select

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def _changes(session, customer_id):
    return [(c.from_tier, c.to_tier, c.direction) for c in
            session.execute(select(TierChange).where(TierChange.customer_id == customer_id).order_by(TierChange.id)).scalars()]


def test_tier_boundaries(program) -> None:
    assert [tier_for_spend(program, Decimal(s)).name for s in ("0", "299.99", "300", "749", "750", "1500", "9000")] == [
        "Bronze", "Bronze", "Silver", "Silver", "Gold", "Platinum", "Platinum"
    ]


def test_rolling_term_counts_only_the_last_12_months_of_kept_spend(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    with any_db.session(write=True) as session:
        customer_id = create_customer(session, "t@example.com").id
        for order_id, total, days_ago in (("old", "900", 400), ("recent", "250", 30), ("refunded", "600", 20)):
            record_paid_order(session, program, customer_id, order_id, Decimal(total), NOW - timedelta(days=days_ago),
                              update_tier=False)
        refund_order(session, program, "refunded", "r1", Decimal("600"))
        status = tier_status(session, customer_id, program, NOW)
    assert status.qualifying_spend == Decimal("250")
    assert status.tier.name == "Bronze" and status.next_tier.name == "Silver"
    assert status.spend_to_next == Decimal("50")

    lifetime = replace(program, tier_term="lifetime")
    with any_db.session() as session:
        assert tier_status(session, customer_id, lifetime, NOW).tier.name == "Gold"  # 900 + 250


def test_calendar_year_term_counts_this_year(sqlite_db: Database, program, clock) -> None:
    calendar = replace(program, tier_term="calendar_year")
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "c@example.com").id
        record_paid_order(session, calendar, customer_id, "dec", Decimal("800"), datetime(2025, 12, 30, tzinfo=timezone.utc),
                          update_tier=False)
        record_paid_order(session, calendar, customer_id, "jan", Decimal("310"), datetime(2026, 1, 2, tzinfo=timezone.utc),
                          update_tier=False)
        status = tier_status(session, customer_id, calendar, NOW)
    assert status.qualifying_spend == Decimal("310") and status.tier.name == "Silver"


def test_promotion_is_immediate_recorded_once_and_pays_the_entry_reward_once(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    with any_db.session(write=True) as session:
        customer_id = create_customer(session, "p@example.com").id
        record_paid_order(session, program, customer_id, "o1", Decimal("100"), NOW)  # 500 points, Bronze
        record_paid_order(session, program, customer_id, "o2", Decimal("700"), NOW)  # $800: Gold at once
        assert _changes(session, customer_id) == [("Bronze", "Gold", "up")]
        # Bronze 5/$ on both orders (the tier before each order), then Gold's entry reward.
        assert balance(session, customer_id) == 500 + 3500 + 250
        announced = unannounced_changes(session, customer_id)
        assert [c.to_tier for c in announced] == ["Gold"]
        mark_announced(session, announced, NOW)
        assert unannounced_changes(session, customer_id) == []
        # Recomputing again changes nothing and pays nothing.
        assert recompute_tier(session, program, customer_id, NOW, "again", award_tier_entry) is None
        assert balance(session, customer_id) == 4250 and verify_balances(session) == []


def test_refunds_demote_only_at_the_end_of_the_term(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    with any_db.session(write=True) as session:
        customer_id = create_customer(session, "d@example.com").id
        record_paid_order(session, program, customer_id, "big", Decimal("800"), NOW)
        refund_order(session, program, "big", "r1", Decimal("600"))  # kept spend $200: Bronze by spend
        status = tier_status(session, customer_id, program, NOW + timedelta(days=200))
        assert status.tier.name == "Gold" and status.held_until == NOW.replace(year=2027)
        # Before the term ends nothing moves, whatever runs.
        assert recompute_tier(session, program, customer_id, NOW + timedelta(days=300), "job", award_tier_entry) is None

    with any_db.session(write=True) as session:
        due = [ids for ids in customers_due_for_review(session, NOW + timedelta(days=366))]
        assert due == [[customer_id]]
        change = recompute_tier(session, program, customer_id, NOW + timedelta(days=366), "job", award_tier_entry)
        assert (change.from_tier, change.to_tier, change.direction, change.reason) == ("Gold", "Bronze", "down", "term ended")
        assert tier_status(session, customer_id, program, NOW + timedelta(days=366)).tier.name == "Bronze"


def test_a_customer_who_keeps_spending_keeps_the_tier_for_another_term(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "k@example.com").id
        record_paid_order(session, program, customer_id, "a", Decimal("400"), NOW)  # Silver
        clock.advance(days=300)
        record_paid_order(session, program, customer_id, "b", Decimal("100"), clock.current)
        end = NOW.replace(year=2027)
        assert recompute_tier(session, program, customer_id, end + timedelta(days=1), "job", award_tier_entry) is None
        customer = session.get(Customer, customer_id)
        # $100 in the 12 months before the term ended is not Silver, but it was earned
        # by the $400 + $100 within the ended term (rolling: 12 months before its end).
        assert customer.tier_name == "Silver" and customer.tier_held_until == NOW.replace(year=2028)


def test_cancelled_orders_stop_counting(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "x@example.com").id
        record_paid_order(session, program, customer_id, "c1", Decimal("350"), NOW, update_tier=False)
        cancel_order(session, program, "c1")
        assert tier_status(session, customer_id, program, NOW).qualifying_spend == Decimal(0)


def test_summary_lists_redeemable_rewards_and_the_next_one(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "s@example.com").id
        record_paid_order(session, program, customer_id, "o1", Decimal("110"), NOW - timedelta(days=3))  # 550 points
        summary = points_summary(session, customer_id, program, NOW)
    assert summary.balance == 550
    assert [r.id for r in summary.redeemable] == ["free-shipping", "five-off"]
    assert summary.next_reward.id == "ten-off" and summary.points_to_next_reward == 450


def test_an_order_from_before_a_promotion_earns_at_the_tier_of_its_time(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "late@example.com").id
        record_paid_order(session, program, customer_id, "big", Decimal("800"), NOW)  # Gold from now on
        late = record_paid_order(session, program, customer_id, "old", Decimal("100"), NOW - timedelta(days=90))
        assert late.points_awarded == 500  # Bronze then, not Gold's 1.5×
        assert record_paid_order(session, program, customer_id, "new", Decimal("100"), NOW).points_awarded == 750


def test_a_move_up_is_queued_in_the_outbox_once_and_whoever_tells_it_first_wins(sqlite_db: Database, program,
                                                                               clock) -> None:
    from bot.loyalty.tiers import mark_announced, unannounced_changes
    from bot.models import OutboundMessage
    from bot.outbox.service import mark_delivered

    clock.at(NOW)
    with sqlite_db.session(write=True) as session:
        first = create_customer(session, "up@example.com").id
        second = create_customer(session, "up2@example.com").id
        for customer_id in (first, second):
            record_paid_order(session, program, customer_id, f"gold-{customer_id}", Decimal("800"), NOW)
    with sqlite_db.session(write=True) as session:
        messages = {m.customer_id: m for m in session.execute(select(OutboundMessage)).scalars()}
        assert set(messages) == {first, second}
        assert messages[first].kind == "tier_change" and messages[first].text.startswith(
            "Congratulations — you're Gold now! You earn 1.5× points and 250 bonus points.")
        mark_delivered(session, messages[first].id, NOW)  # pushed by a channel: not announced in chat again
        assert unannounced_changes(session, first) == []
        mark_announced(session, unannounced_changes(session, second), NOW)  # told in chat first: not pushed
        assert (messages[second].status, messages[second].reason) == ("skipped", "told in the conversation")
