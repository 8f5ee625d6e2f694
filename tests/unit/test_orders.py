"""Orders in: paid orders earn once, refunds and cancellations take back exactly what they earned."""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from threading import Barrier
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import LedgerError, balance, post_entry, verify_balances
from bot.loyalty.orders import LineInput, cancel_order, record_paid_order, refund_order
from bot.models import LedgerEntry, Order, OrderLine, OrderRefund

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def _customer(db: Database, email: str = "ann@example.com") -> int:
    with db.session(write=True) as session:
        return create_customer(session, email, "Ann").id


def _count(db: Database, model) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_an_order_with_lines_is_recorded_and_ten_replays_add_its_points_once(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _customer(any_db)
    lines = [LineInput("Linden lounge chair", 1, Decimal("49.00"), "OE-CH-001"), LineInput("Pebble lamp", 2, Decimal("5.50"))]
    for attempt in range(10):
        with any_db.session(write=True) as session:
            recorded = record_paid_order(session, program, customer_id, "1001", Decimal("60.00"), NOW,
                                         currency="usd", lines=lines)
            assert recorded.created == (attempt == 0)
    with any_db.session() as session:
        assert balance(session, customer_id) == 300
        order = session.execute(select(Order)).scalar_one()
        assert [(line.title, line.quantity, line.unit_price) for line in order.lines] == [
            ("Linden lounge chair", 1, Decimal("49.00")), ("Pebble lamp", 2, Decimal("5.50"))]
        assert order.points_earned == 300 and order.status == "paid"
        assert verify_balances(session) == []
    assert _count(any_db, LedgerEntry) == 1 and _count(any_db, OrderLine) == 2


def test_different_orders_of_one_customer_at_the_same_moment_all_count(any_db: Database, program, clock) -> None:
    # Each new order row takes a key-share lock on its customer; the tier lock must not wait for it
    # (on PostgreSQL a plain FOR UPDATE there deadlocked two orders of one customer).
    clock.at(NOW)
    customer_id = _customer(any_db)
    workers = 6
    barrier = Barrier(workers)

    def deliver(index: int) -> int:
        barrier.wait()
        with any_db.session(write=True) as session:
            return record_paid_order(session, program, customer_id, f"C{index}", Decimal("100.00"), NOW).points_awarded

    with ThreadPoolExecutor(workers) as pool:
        awarded = list(pool.map(deliver, range(workers)))
    with any_db.session() as session:
        assert all(points >= 500 for points in awarded)  # 5 per $, more once the spend reaches Silver
        order_points = session.execute(select(func.sum(LedgerEntry.points)).where(LedgerEntry.source == "order")).scalar_one()
        assert order_points == sum(awarded)
        assert verify_balances(session) == []
    assert _count(any_db, Order) == workers


def test_partial_refunds_reverse_pro_rata_and_add_up_to_exactly_what_was_earned(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "2001", Decimal("99.99"), NOW)  # 499 points
        first = refund_order(session, program, "2001", "r1", Decimal("33.33"))
        assert (first.refund.points_due, first.refund.points_reversed) == (166, 166)  # floor(499 × 33.33 / 99.99)
        assert first.order.status == "partially_refunded"
        replay = refund_order(session, program, "2001", "r1", Decimal("33.33"))
        assert not replay.created
        second = refund_order(session, program, "2001", "r2", Decimal("66.66"))
        assert second.refund.points_due == 499 - 166 and second.order.status == "refunded"
        assert balance(session, customer_id) == 0
        with pytest.raises(LedgerError, match="exceeds the 0.00 left"):
            refund_order(session, program, "2001", "r3", Decimal("0.01"))
        assert verify_balances(session) == []


def test_a_refund_of_spent_points_stops_at_zero_unless_the_program_allows_negative(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _customer(any_db)
    other_id = _customer(any_db, "neg@example.com")
    with any_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "3001", Decimal("100"), NOW)  # 500
        post_entry(session, customer_id, -400, kind="redeem", reason="Free shipping", source="redemption",
                   idempotency_key="spent")
        written_off = refund_order(session, program, "3001", "r1", Decimal("100"))
        assert (written_off.refund.points_due, written_off.refund.points_reversed) == (500, 100)
        assert written_off.points_written_off == 400 and balance(session, customer_id) == 0
        entry = session.execute(select(LedgerEntry).where(LedgerEntry.kind == "reverse")).scalar_one()
        assert "400 points already spent, written off" in entry.reason

        lenient = replace(program, refunds_allow_negative_balance=True)
        record_paid_order(session, lenient, other_id, "3002", Decimal("100"), NOW)
        post_entry(session, other_id, -400, kind="redeem", reason="Free shipping", source="redemption",
                   idempotency_key="spent2")
        refund_order(session, lenient, "3002", "r1", Decimal("100"))
        assert balance(session, other_id) == -400
        assert verify_balances(session) == []


def test_cancellation_takes_back_what_is_left_and_is_idempotent(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "4001", Decimal("80"), NOW)  # 400
        refund_order(session, program, "4001", "r1", Decimal("20"))  # 100 back
        cancelled = cancel_order(session, program, "4001")
        assert cancelled.refund.points_due == 300 and cancelled.order.status == "cancelled"
        assert not cancel_order(session, program, "4001").created
        assert balance(session, customer_id) == 0
        with pytest.raises(LedgerError, match="is cancelled"):
            refund_order(session, program, "4001", "late", Decimal("1"))
    assert _count(any_db, OrderRefund) == 2


@pytest.mark.parametrize(
    "total, problem",
    [(Decimal("0"), "positive amount"), (Decimal("-5"), "positive amount"), (Decimal("1000000.01"), "larger than any order"),
     (Decimal("10.001"), "more than two decimal places"), (Decimal("NaN"), "positive amount"),
     (Decimal("Infinity"), "positive amount")],
)
def test_impossible_totals_are_refused_and_write_nothing(sqlite_db: Database, program, total, problem) -> None:
    customer_id = _customer(sqlite_db)
    with pytest.raises(LedgerError, match=problem):
        with sqlite_db.session(write=True) as session:
            record_paid_order(session, program, customer_id, "bad", total, NOW)
    assert _count(sqlite_db, Order) == 0 and _count(sqlite_db, LedgerEntry) == 0


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"currency": "EUR"}, "does not match the program's currency USD"),
        ({"customer_id": 999}, "no customer with id 999"),
        ({"external_id": ""}, "order id of 1-64 characters"),
        ({"lines": [LineInput("Chair", 0, Decimal("1"))]}, "quantity must be a whole number"),
        ({"lines": [LineInput("Chair", 1, Decimal("-1"))]}, "unit price -1 is not a valid amount"),
        ({"lines": [LineInput(" ", 1, Decimal("1"))]}, "title is required"),
        ({"placed_at": datetime(1, 1, 1, tzinfo=timezone.utc)}, "is not between 2000-01-01 and now"),
        ({"placed_at": datetime(2099, 1, 1, tzinfo=timezone.utc)}, "is not between 2000-01-01 and now"),
        ({"placed_at": datetime(2026, 1, 1)}, "needs a time zone"),
    ],
)
def test_bad_orders_name_the_problem_and_write_nothing(sqlite_db: Database, program, clock, change, problem) -> None:
    clock.at(NOW)
    customer_id = _customer(sqlite_db)
    args = {"customer_id": customer_id, "external_id": "5001", "currency": "USD", "lines": [], "placed_at": NOW} | change
    with pytest.raises(LedgerError, match=problem):
        with sqlite_db.session(write=True) as session:
            record_paid_order(session, program, args["customer_id"], args["external_id"], Decimal("10"), args["placed_at"],
                              currency=args["currency"], lines=args["lines"])
    assert _count(sqlite_db, Order) == 0 and _count(sqlite_db, OrderLine) == 0


def test_bad_refunds_are_refused(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _customer(sqlite_db)
    with sqlite_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "6001", Decimal("50"), NOW)
    cases = [
        ("nope", "r1", Decimal("1"), None, "no order with id 'nope'"),
        ("6001", "r1", Decimal("60"), None, "exceeds the 50.00 left"),
        ("6001", "r1", Decimal("-1"), None, "positive amount"),
        ("6001", "r1", Decimal("1"), "GBP", "does not match"),
        ("6001", "", Decimal("1"), None, "refund id of 1-64"),
    ]
    for order_id, refund_id, amount, currency, problem in cases:
        with pytest.raises(LedgerError, match=problem):
            with sqlite_db.session(write=True) as session:
                refund_order(session, program, order_id, refund_id, amount, currency=currency)
    with sqlite_db.session(write=True) as session:
        refund_order(session, program, "6001", "r1", Decimal("10"))
        with pytest.raises(LedgerError, match="already recorded for 10.00, not 11"):
            refund_order(session, program, "6001", "r1", Decimal("11"))
    with sqlite_db.session() as session:
        assert balance(session, customer_id) == 250 - 50 and verify_balances(session) == []


def test_concurrent_deliveries_of_one_refund_reverse_once(any_db: Database, program, clock) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    clock.at(NOW)
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "7001", Decimal("40"), NOW)  # 200
    workers = 8
    barrier = Barrier(workers)

    def deliver(_: int) -> bool:
        barrier.wait()
        with any_db.session(write=True) as session:
            return refund_order(session, program, "7001", "r1", Decimal("10")).created

    with ThreadPoolExecutor(workers) as pool:
        created = list(pool.map(deliver, range(workers)))
    assert created.count(True) == 1
    with any_db.session() as session:
        assert balance(session, customer_id) == 150 and verify_balances(session) == []


def test_the_cancellation_refund_id_is_reserved(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _customer(sqlite_db)
    with sqlite_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "8001", Decimal("50"), NOW)
        with pytest.raises(LedgerError, match="reserved for the order's cancellation"):
            refund_order(session, program, "8001", "cancellation", Decimal("10"))
