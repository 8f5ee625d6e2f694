from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import update

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import LedgerError, balance, post_entry, verify_balances
from bot.loyalty.orders import points_for_order, record_paid_order
from bot.models import Customer


def _customer(db: Database, email: str = "ann@example.com") -> int:
    with db.session(write=True) as session:
        return create_customer(session, email, "Ann").id


def test_entries_move_the_balance_and_replays_apply_once(any_db: Database) -> None:
    customer_id = _customer(any_db)
    for _ in range(10):
        with any_db.session(write=True) as session:
            post_entry(session, customer_id, 250, kind="earn", reason="Order 7", source="order", idempotency_key="order:7")
    with any_db.session(write=True) as session:
        posted = post_entry(session, customer_id, -100, kind="redeem", reason="Free shipping", source="reward", idempotency_key="r1")
        assert posted.created
        again = post_entry(session, customer_id, -100, kind="redeem", reason="Free shipping", source="reward", idempotency_key="r1")
        assert not again.created and again.entry.id == posted.entry.id
    with any_db.session() as session:
        assert balance(session, customer_id) == 150
        assert verify_balances(session) == []


def test_same_key_under_another_source_is_a_different_entry(any_db: Database) -> None:
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        post_entry(session, customer_id, 10, kind="earn", reason="a", source="quiz", idempotency_key="1")
        post_entry(session, customer_id, 20, kind="earn", reason="b", source="review", idempotency_key="1")
        assert balance(session, customer_id) == 30


def test_overdraft_is_refused_and_leaves_nothing(any_db: Database) -> None:
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        post_entry(session, customer_id, 100, kind="earn", reason="signup", source="signup", idempotency_key="s")
        with pytest.raises(LedgerError, match="does not have 500 points"):
            post_entry(session, customer_id, -500, kind="redeem", reason="$5 off", source="reward", idempotency_key="x")
        assert balance(session, customer_id) == 100
    with any_db.session() as session:
        assert verify_balances(session) == []


@pytest.mark.parametrize("points", [0, 1.5, True, "10"])
def test_impossible_amounts_are_refused(sqlite_db: Database, points) -> None:
    customer_id = _customer(sqlite_db)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(LedgerError):
            post_entry(session, customer_id, points, kind="earn", reason="x", source="t", idempotency_key="k")


def test_unknown_customer_and_kind_are_refused(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        with pytest.raises(LedgerError, match="no customer"):
            post_entry(session, 999, 5, kind="earn", reason="x", source="t", idempotency_key="k")
        with pytest.raises(LedgerError, match="unknown ledger entry kind"):
            post_entry(session, 1, 5, kind="gift", reason="x", source="t", idempotency_key="k")


def test_verify_finds_a_tampered_balance(any_db: Database) -> None:
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        post_entry(session, customer_id, 40, kind="earn", reason="x", source="t", idempotency_key="k")
        session.execute(update(Customer).where(Customer.id == customer_id).values(points_balance=41))
    with any_db.session() as session:
        [mismatch] = verify_balances(session)
    assert (mismatch.customer_id, mismatch.balance, mismatch.ledger_sum) == (customer_id, 41, 40)


def test_paid_order_earns_at_the_tier_before_it_and_only_once(any_db: Database, program) -> None:
    customer_id = _customer(any_db)
    now = datetime.now(timezone.utc)
    with any_db.session(write=True) as session:
        first = record_paid_order(session, program, customer_id, "A1", Decimal("320.00"), now - timedelta(days=10))
        second = record_paid_order(session, program, customer_id, "A2", Decimal("100.00"), now - timedelta(days=5))
        replay = record_paid_order(session, program, customer_id, "A2", Decimal("100.00"), now - timedelta(days=5))
    assert first.points_awarded == 1600  # Bronze: 5 points per $1
    assert second.points_awarded == 625  # Silver after $320: 1.25x
    assert not replay.created and replay.points_awarded == 0
    with any_db.session() as session:
        assert balance(session, customer_id) == 1600 + 100 + 625  # + Silver's entry reward


def test_order_points_round_down_and_totals_must_be_positive(sqlite_db: Database, program) -> None:
    assert points_for_order(program, Decimal("19.99"), Decimal("1.25")) == 124
    customer_id = _customer(sqlite_db)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(LedgerError, match="must be a positive amount"):
            record_paid_order(session, program, customer_id, "Z", Decimal("-3"), datetime.now(timezone.utc))


def test_concurrent_replays_of_one_award_apply_once(any_db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from bot.models import LedgerEntry
    from sqlalchemy import func, select

    customer_id = _customer(any_db)
    workers = 8
    barrier = Barrier(workers)

    def award(_: int) -> bool:
        barrier.wait()
        with any_db.session(write=True) as session:
            return post_entry(session, customer_id, 500, kind="earn", reason="Order 99", source="order",
                              idempotency_key="order:99").created

    with ThreadPoolExecutor(workers) as pool:
        created = list(pool.map(award, range(workers)))
    assert created.count(True) == 1
    with any_db.session() as session:
        assert balance(session, customer_id) == 500
        assert session.execute(select(func.count(LedgerEntry.id))).scalar_one() == 1
        assert verify_balances(session) == []


def test_a_posted_entry_is_readable_after_the_transaction(sqlite_db: Database) -> None:
    customer_id = _customer(sqlite_db)
    with sqlite_db.session(write=True) as session:
        posted = post_entry(session, customer_id, 70, kind="earn", reason="quiz", source="quiz", idempotency_key="q1")
        customer = session.get(Customer, customer_id)
        assert customer.points_balance == 70
    assert (posted.entry.points, posted.entry.reason) == (70, "quiz")
    assert customer.points_balance == 70


def test_the_same_key_for_a_different_change_is_refused(any_db: Database) -> None:
    customer_id = _customer(any_db)
    other_id = _customer(any_db, "bo@example.com")
    with any_db.session(write=True) as session:
        post_entry(session, customer_id, 100, kind="earn", reason="x", source="order", idempotency_key="order:5")
    for change in ({"customer_id": other_id, "points": 100}, {"customer_id": customer_id, "points": 90}):
        with any_db.session(write=True) as session:
            with pytest.raises(LedgerError, match="already used for 100 points"):
                post_entry(session, change["customer_id"], change["points"], kind="earn", reason="x",
                           source="order", idempotency_key="order:5")
    with any_db.session() as session:
        assert balance(session, customer_id) == 100 and balance(session, other_id) == 0


def test_an_order_id_cannot_be_reused_for_another_order(any_db: Database, program) -> None:
    customer_id = _customer(any_db)
    now = datetime.now(timezone.utc)
    with any_db.session(write=True) as session:
        record_paid_order(session, program, customer_id, "B7", Decimal("40.00"), now)
        with pytest.raises(LedgerError, match="already recorded"):
            record_paid_order(session, program, customer_id, "B7", Decimal("41.00"), now)


def test_concurrent_deliveries_of_one_order_award_once(any_db: Database, program) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    customer_id = _customer(any_db)
    workers = 6
    barrier = Barrier(workers)
    placed = datetime.now(timezone.utc)

    def deliver(_: int) -> int:
        barrier.wait()
        with any_db.session(write=True) as session:
            return record_paid_order(session, program, customer_id, "C1", Decimal("20.00"), placed).points_awarded

    with ThreadPoolExecutor(workers) as pool:
        awarded = list(pool.map(deliver, range(workers)))
    assert sorted(awarded) == [0] * (workers - 1) + [100]
    with any_db.session() as session:
        assert balance(session, customer_id) == 100
