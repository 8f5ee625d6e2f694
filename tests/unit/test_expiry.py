"""Points expire after the inactive period as ledger entries, never before a warning was queued."""
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


def _warnings(db: Database) -> dict:
    with db.session() as session:
        return {m.customer_id: m for m in session.execute(select(OutboundMessage)).scalars()}


def test_a_warning_goes_out_in_the_window_and_the_points_expire_on_its_date(any_db: Database, program) -> None:
    soon = _member(any_db, "soon@example.com", 300, START)
    active = _member(any_db, "active@example.com", 900, START + timedelta(days=200))
    in_window = START.replace(year=2026) - timedelta(days=20)  # expires in 20 days

    first = expire_points(any_db, program, in_window)
    assert (first.warnings_queued, first.expired_points) == (1, 0)
    assert expire_points(any_db, program, in_window + timedelta(days=5)).warnings_queued == 0  # queued once
    warning = _warnings(any_db)[soon]
    assert warning.status == "queued" and "your 300 points expire on January 10, 2026" in warning.text
    assert warning.payload == {"points": 300, "expires_at": "2026-01-10T09:00:00+00:00"}
    with any_db.session() as session:
        assert expiring_soon(program, session.get(Customer, soon), in_window) == START.replace(year=2026)
        assert expiring_soon(program, session.get(Customer, active), in_window) is None

    after = expire_points(any_db, program, START.replace(year=2026) + timedelta(hours=1))
    assert (after.expired_customers, after.expired_points) == (1, 300)
    assert expire_points(any_db, program, START.replace(year=2026) + timedelta(days=2)).expired_points == 0
    with any_db.session() as session:
        assert balance(session, soon) == 0 and balance(session, active) == 900
        [entry] = [e for e in recent_entries(session, soon) if e.kind == "expire"]
        assert entry.points == -300 and entry.created_at == START.replace(year=2026)
        assert verify_balances(session) == []


def test_points_past_their_date_are_announced_first_and_expire_warn_days_later(any_db: Database, program) -> None:
    stale = _member(any_db, "stale@example.com", 700, START)
    late = START + timedelta(days=400)  # the job never ran in the window (or the store was just migrated)
    first = expire_points(any_db, program, late)
    assert (first.warnings_queued, first.expired_points) == (1, 0)
    assert _warnings(any_db)[stale].payload["expires_at"] == (late + timedelta(days=30)).isoformat()
    assert expire_points(any_db, program, late + timedelta(days=29)).expired_points == 0
    assert expire_points(any_db, program, late + timedelta(days=30)).expired_points == 700


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
    expire_points(any_db, program, START + timedelta(days=300 + 340))  # the warning
    assert expire_points(any_db, program, START + timedelta(days=300 + 366)).expired_points == 390


def test_points_added_after_an_expiry_expire_in_a_later_run(sqlite_db: Database, program) -> None:
    cid = _member(sqlite_db, "late@example.com", 100, START)
    expire_points(sqlite_db, program, START + timedelta(days=340))
    assert expire_points(sqlite_db, program, START + timedelta(days=370)).expired_points == 100
    # An order recorded late, placed before the last activity: it adds points but no newer activity.
    with sqlite_db.session(write=True) as session:
        post_entry(session, cid, 40, kind="earn", reason="Order 7", source="order", idempotency_key="late",
                   at=START - timedelta(days=5))
    assert expire_points(sqlite_db, program, START + timedelta(days=380)).expired_points == 40
    with sqlite_db.session() as session:
        assert balance(session, cid) == 0 and verify_balances(session) == []
