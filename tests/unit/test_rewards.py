"""Redemption: points out and a unique code in, once; codes honoured once, with reasons when not."""
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from threading import Barrier

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import balance, post_entry, verify_balances
from bot.checkout import check_code, use_code
from bot.loyalty.rewards import CodeRefused, RedemptionError, new_code, normalize_code, redeem
from bot.models import LedgerEntry, RewardCode

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def _member(db: Database, points: int, email: str = "r@example.com") -> int:
    with db.session(write=True) as session:
        customer_id = create_customer(session, email, "Rae").id
        if points:
            post_entry(session, customer_id, points, kind="earn", reason="seed", source="test", idempotency_key=email)
        return customer_id


def _codes(db: Database) -> int:
    with db.session() as session:
        return session.execute(select(func.count(RewardCode.id))).scalar_one()


def test_codes_are_unique_unguessable_and_forgiving_to_type() -> None:
    codes = {new_code() for _ in range(10_000)}
    assert len(codes) == 10_000
    assert all(re.fullmatch(r"RW-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", c) for c in codes)
    code = "RW-AB01-CD23-EF45"
    assert normalize_code(" rw ab01 cd23 ef45 ") == code
    assert normalize_code("RW-ABO1-CD23-EF45") == code  # a typed O for the zero


def test_redeeming_spends_the_points_and_issues_a_code_with_its_terms(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _member(any_db, 2500)
    with any_db.session(write=True) as session:
        redemption = redeem(session, program, customer_id, "twenty-off")
        code = redemption.code
        assert redemption.created and balance(session, customer_id) == 500
        assert (code.kind, code.value, code.min_order, code.points_spent, code.currency) == (
            "amount_off", Decimal("20.00"), Decimal("40.00"), 2000, "USD")
        assert code.expires_at == NOW.replace(month=12) and code.status == "issued"
        entry = session.get(LedgerEntry, code.ledger_entry_id)
        assert (entry.kind, entry.points, entry.reason) == ("redeem", -2000, "Redeemed: $20 off")
        assert verify_balances(session) == []


def test_a_double_submitted_redemption_returns_the_same_code(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _member(any_db, 1000)
    with any_db.session(write=True) as session:
        first = redeem(session, program, customer_id, "free-shipping", idempotency_key="tap-1")
    with any_db.session(write=True) as session:
        again = redeem(session, program, customer_id, "free-shipping", idempotency_key="tap-1")
        assert not again.created and again.code.code == first.code.code
        assert balance(session, customer_id) == 600
    assert _codes(any_db) == 1


@pytest.mark.parametrize(
    "reward_id, points, problem",
    [("nope", 5000, "no reward with id 'nope'"), ("ten-off", 999, "does not have the 1000 points $10 off costs")],
)
def test_unknown_rewards_and_short_balances_are_refused_without_writes(any_db: Database, program, reward_id, points, problem) -> None:
    customer_id = _member(any_db, points)
    with pytest.raises(RedemptionError, match=re.escape(problem)):
        with any_db.session(write=True) as session:
            redeem(session, program, customer_id, reward_id)
    with any_db.session() as session:
        assert balance(session, customer_id) == points
    assert _codes(any_db) == 0


def test_an_unknown_customer_cannot_redeem(sqlite_db: Database, program) -> None:
    with pytest.raises(RedemptionError, match="no customer with id 42"):
        with sqlite_db.session(write=True) as session:
            redeem(session, program, 42, "free-shipping")


def test_100_concurrent_redemptions_against_a_balance_for_one_issue_one_code(any_db: Database, program) -> None:
    customer_id = _member(any_db, 500)  # exactly one $5 off
    workers = 100
    barrier = Barrier(workers)

    def attempt(index: int) -> str:
        barrier.wait()
        try:
            with any_db.session(write=True) as session:
                return redeem(session, program, customer_id, "five-off", idempotency_key=f"click-{index}").code.code
        except RedemptionError:
            return "refused"

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(attempt, range(workers)))
    issued = [r for r in results if r != "refused"]
    assert len(issued) == 1 and results.count("refused") == 99
    with any_db.session() as session:
        assert balance(session, customer_id) == 0
        assert session.execute(select(func.count(RewardCode.id))).scalar_one() == 1
        assert session.execute(select(func.count(LedgerEntry.id)).where(LedgerEntry.kind == "redeem")).scalar_one() == 1
        assert verify_balances(session) == []


def test_codes_are_checked_and_used_once_with_the_reason_when_refused(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _member(any_db, 5000)
    with any_db.session(write=True) as session:
        code = redeem(session, program, customer_id, "twenty-off").code.code
    with any_db.session() as session:
        with pytest.raises(CodeRefused) as refused:
            check_code(session, program, code, order_total=Decimal("39.99"))
        assert refused.value.reason == "below_minimum"
        with pytest.raises(CodeRefused) as refused:
            check_code(session, program, code, currency="EUR")
        assert refused.value.reason == "wrong_currency"
        with pytest.raises(CodeRefused) as refused:
            check_code(session, program, "RW-0000-0000-0000")
        assert refused.value.reason == "unknown"
        assert check_code(session, program, code.lower(), order_total=Decimal("40")).status == "issued"
    with any_db.session(write=True) as session:
        used = use_code(session, program, code, "9001", order_total=Decimal("80"))
        assert (used.status, used.used_order_ref) == ("used", "9001")
        assert use_code(session, program, code, "9001").status == "used"  # the same checkout again: fine
        with pytest.raises(CodeRefused) as refused:
            use_code(session, program, code, "9002")
        assert refused.value.reason == "used" and "9001" in str(refused.value)


def test_an_expired_code_is_refused(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    customer_id = _member(sqlite_db, 500)
    with sqlite_db.session(write=True) as session:
        code = redeem(session, program, customer_id, "free-shipping").code.code
    clock.at(NOW + timedelta(days=184))
    with sqlite_db.session(write=True) as session:
        with pytest.raises(CodeRefused) as refused:
            use_code(session, program, code, "9003")
    assert refused.value.reason == "expired" and "expired on 2026-12-15" in str(refused.value)


def test_two_checkouts_racing_for_one_code_use_it_once(any_db: Database, program) -> None:
    customer_id = _member(any_db, 500)
    with any_db.session(write=True) as session:
        code = redeem(session, program, customer_id, "free-shipping").code.code
    workers = 10
    barrier = Barrier(workers)

    def checkout(index: int) -> str:
        barrier.wait()
        try:
            with any_db.session(write=True) as session:
                return use_code(session, program, code, f"order-{index}").used_order_ref
        except CodeRefused as refused:
            return refused.reason

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(checkout, range(workers)))
    assert results.count("used") == workers - 1


def test_one_idempotency_key_cannot_redeem_a_different_reward(sqlite_db: Database, program) -> None:
    from bot.loyalty.ledger import Conflict

    customer_id = _member(sqlite_db, 2000)
    with sqlite_db.session(write=True) as session:
        redeem(session, program, customer_id, "five-off", idempotency_key="k1")
    with pytest.raises(Conflict, match="already used"):
        with sqlite_db.session(write=True) as session:
            redeem(session, program, customer_id, "ten-off", idempotency_key="k1")
