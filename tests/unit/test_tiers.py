from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.orders import record_paid_order
from bot.loyalty.summary import points_summary
from bot.loyalty.tiers import tier_for_spend, tier_status
from bot.models import Order

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def test_tier_boundaries(program) -> None:
    assert [tier_for_spend(program, Decimal(s)).name for s in ("0", "299.99", "300", "749", "750", "1500", "9000")] == [
        "Bronze", "Bronze", "Silver", "Silver", "Gold", "Platinum", "Platinum"
    ]


def test_rolling_term_counts_only_the_last_12_months_of_paid_orders(any_db: Database, program) -> None:
    with any_db.session(write=True) as session:
        customer_id = create_customer(session, "t@example.com").id
        record_paid_order(session, program, customer_id, "old", Decimal("900"), NOW - timedelta(days=400))
        record_paid_order(session, program, customer_id, "recent", Decimal("250"), NOW - timedelta(days=30))
        record_paid_order(session, program, customer_id, "refunded", Decimal("600"), NOW - timedelta(days=20))
        session.query(Order).filter(Order.external_id == "refunded").update({"status": "refunded"})
        status = tier_status(session, customer_id, program, NOW)
    assert status.qualifying_spend == Decimal("250")
    assert status.tier.name == "Bronze" and status.next_tier.name == "Silver"
    assert status.spend_to_next == Decimal("50")

    lifetime = replace(program, tier_term="lifetime")
    with any_db.session() as session:
        assert tier_status(session, customer_id, lifetime, NOW).tier.name == "Gold"  # 900 + 250


def test_calendar_year_term(sqlite_db: Database, program) -> None:
    calendar = replace(program, tier_term="calendar_year")
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "c@example.com").id
        record_paid_order(session, program, customer_id, "dec", Decimal("800"), datetime(2025, 12, 30, tzinfo=timezone.utc))
        record_paid_order(session, program, customer_id, "jan", Decimal("310"), datetime(2026, 1, 2, tzinfo=timezone.utc))
        status = tier_status(session, customer_id, calendar, NOW)
    assert status.qualifying_spend == Decimal("310") and status.tier.name == "Silver"


def test_summary_lists_redeemable_rewards_and_the_next_one(sqlite_db: Database, program) -> None:
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "s@example.com").id
        record_paid_order(session, program, customer_id, "o1", Decimal("110"), NOW - timedelta(days=3))  # 550 points
        summary = points_summary(session, customer_id, program, NOW)
    assert summary.balance == 550
    assert [r.id for r in summary.redeemable] == ["free-shipping", "five-off"]
    assert summary.next_reward.id == "ten-off" and summary.points_to_next_reward == 450
