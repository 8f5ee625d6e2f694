"""Points expire after the inactive period as ledger entries; shoppers are warned once before."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.expiry import expire_points, expiring_soon
from bot.loyalty.ledger import balance, post_entry, recent_entries, verify_balances
from bot.models import Customer, OutboundMessage

START = datetime(2025, 1, 10, 9, tzinfo=timezone.utc)


def _member(db: Database, email: str, points: int, at: datetime) -> int:
    with db.session(write=True) as session:
        cid = create_customer(session, email).id
        post_entry(session, cid, points, kind="earn", reason="Order", source="order", idempotency_key=email, at=at)
        return cid


def test_inactive_balances_expire_and_warnings_are_queued_once(any_db: Database, program) -> None:
    stale = _member(any_db, "stale@example.com", 700, START)
    soon = _member(any_db, "soon@example.com", 300, START + timedelta(days=20))
    active = _member(any_db, "active@example.com", 900, START + timedelta(days=200))
    now = START + timedelta(days=370)  # stale: 12 months passed; soon: expires in ~15 days

    first = expire_points(any_db, program, now)
    again = expire_points(any_db, program, now)
    assert (first.expired_customers, first.expired_points, first.warnings_queued) == (1, 700, 1)
    assert (again.expired_customers, again.expired_points, again.warnings_queued) == (0, 0, 0)
    with any_db.session() as session:
        assert balance(session, stale) == 0 and balance(session, soon) == 300 and balance(session, active) == 900
        [entry] = [e for e in recent_entries(session, stale) if e.kind == "expire"]
        assert entry.points == -700 and entry.created_at == START.replace(year=2026)
        [warning] = session.execute(select(OutboundMessage)).scalars().all()
        assert warning.customer_id == soon and warning.status == "queued"
        assert "your 300 points expire on January 30, 2026" in warning.text
        assert warning.payload == {"points": 300, "expires_at": "2026-01-30T09:00:00+00:00"}
        customer = session.get(Customer, soon)
        assert expiring_soon(program, customer, now) == START.replace(year=2026) + timedelta(days=20)
        assert expiring_soon(program, session.get(Customer, active), now) is None
        assert verify_balances(session) == []


def test_activity_restarts_the_clock(any_db: Database, program) -> None:
    cid = _member(any_db, "k@example.com", 500, START)
    with any_db.session(write=True) as session:
        post_entry(session, cid, -100, kind="redeem", reason="Free shipping", source="redemption",
                   idempotency_key="r", at=START + timedelta(days=300))
        # A reversal is not activity: it must not keep points alive.
        post_entry(session, cid, -10, kind="reverse", reason="refund", source="refund", idempotency_key="x",
                   at=START + timedelta(days=340))
    report = expire_points(any_db, program, START + timedelta(days=370))
    assert report.expired_points == 0 and report.warnings_queued == 0
    report = expire_points(any_db, program, START + timedelta(days=300 + 366))
    assert report.expired_points == 390
