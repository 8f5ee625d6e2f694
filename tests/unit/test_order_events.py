"""Order events as a store's webhook would send them: an order's whole state, reported again and again
(bot/order_events.py apply_order_state), on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.advocacy.referrals import referral_code_for, register_signup
from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import LedgerError, balance, verify_balances
from bot.loyalty.orders import Tracking, UnknownOrder
from bot.models import Order, Referral
from bot.order_events import (
    Fulfilment, OrderState, PaidOrder, Refund, RefundedLess, apply_order_state, record_fulfilment,
)

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
PLACED = NOW - timedelta(hours=2)


def people(db: Database, program) -> dict:
    """Ann, an advocate; Cleo, who joined with Ann's code."""
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        cleo = create_customer(session, "cleo@example.com", "Cleo").id
        register_signup(session, program, cleo, referral_code_for(session, ann, NOW).code, None, NOW)
    return {"ann": ann, "cleo": cleo}


def apply(db: Database, program, state: OrderState):
    with db.session(write=True) as session:
        return apply_order_state(session, program, state, now=NOW)


def points(db: Database, customer_id: int) -> int:
    with db.session() as session:
        return balance(session, customer_id)


def test_an_orders_state_reported_again_and_again_is_recorded_once_per_change(any_db: Database, program,
                                                                              clock) -> None:
    clock.at(NOW)
    who = people(any_db, program)
    paid = PaidOrder("W1", who["cleo"], Decimal("60.00"), PLACED, currency="USD")
    shipped = Fulfilment("W1", PLACED + timedelta(hours=1), Tracking("UPS", "1Z999", "https://ups.example/1Z999"))

    first = apply(any_db, program, OrderState(paid, fulfilment=shipped))
    assert first.paid.created and first.paid.points_awarded == 300 and first.paid.referral.status == "rewarded"
    assert first.fulfilled.created and (first.order.tracking_company, first.order.tracking_number) == ("UPS", "1Z999")
    assert (points(any_db, who["cleo"]), points(any_db, who["ann"])) == (300, 500)

    again = apply(any_db, program, OrderState(paid, fulfilment=shipped))
    assert not again.paid.created and again.paid.referral is None and not again.fulfilled.created
    assert again.refunds == () and again.cancellation is None

    # A partial refund, then a second one: each refund id once, however often the state is reported.
    one = Refund("W1", "rf-1", Decimal("10.00"), currency="USD")
    two = Refund("W1", "rf-2", Decimal("15.00"), currency="USD")
    refunded = apply(any_db, program, OrderState(paid, refunds=[one], fulfilment=shipped))
    assert [taken.points_reversed for taken in refunded.refunds] == [50] and refunded.refunds[0].referral is None
    both = apply(any_db, program, OrderState(paid, refunds=[one, two], fulfilment=shipped))
    assert [taken.refund.external_id for taken in both.refunds] == ["rf-2"]
    assert both.refunds[0].referral is None  # $35 kept: still above the $30 minimum
    assert apply(any_db, program, OrderState(paid, refunds=[one, two])).refunds_replayed

    # The cancellation takes back the rest, once; a cancelled order takes no further refunds.
    cancelled = apply(any_db, program, OrderState(paid, refunds=[one, two], cancelled_at=NOW))
    assert cancelled.cancellation is not None and cancelled.order.status == "cancelled"
    assert cancelled.cancellation.referral.status == "rejected" and points(any_db, who["ann"]) == 0
    late = apply(any_db, program, OrderState(paid, refunds=[one, two, Refund("W1", "rf-3", Decimal("1.00"))],
                                             cancelled_at=NOW))
    assert late.cancellation is None and late.cancellation_replayed and late.refunds_replayed
    assert points(any_db, who["cleo"]) == 0
    with any_db.session() as session:
        assert verify_balances(session) == []


def test_a_refunded_total_adds_only_what_is_new_and_never_goes_back(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    who = people(sqlite_db, program)
    paid = PaidOrder("T1", who["cleo"], Decimal("100.00"), PLACED)
    apply(sqlite_db, program, OrderState(paid, refunded_total=Decimal("20.00")))
    result = apply(sqlite_db, program, OrderState(paid, refunded_total=Decimal("50.00")))
    assert [taken.refund.external_id for taken in result.refunds] == ["import-refund-50.00"]
    assert result.refunds[0].refund.amount == Decimal("30.00")
    assert apply(sqlite_db, program, OrderState(paid, refunded_total=Decimal("50.00"))).refunds_replayed
    with pytest.raises(RefundedLess) as stale:
        apply(sqlite_db, program, OrderState(paid, refunded_total=Decimal("40.00")))
    assert (stale.value.reported, stale.value.already) == (Decimal("40.00"), Decimal("50.00"))


def test_a_fulfilment_counts_once_and_its_tracking_follows_the_latest(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    who = people(sqlite_db, program)
    apply(sqlite_db, program, OrderState(PaidOrder("F1", who["cleo"], Decimal("60.00"), PLACED)))
    with sqlite_db.session(write=True) as session:
        assert record_fulfilment(session, Fulfilment("F1", NOW - timedelta(hours=1))).created
        assert not record_fulfilment(session, Fulfilment("F1", NOW)).created  # the first time counts
        later = record_fulfilment(session, Fulfilment("F1", NOW, Tracking(number="ABC-1")))
        assert later.created and later.order.fulfilled_at == NOW - timedelta(hours=1)
        assert not record_fulfilment(session, Fulfilment("F1", NOW, Tracking(number="ABC-1"))).created
        with pytest.raises(UnknownOrder):
            record_fulfilment(session, Fulfilment("nope", NOW))
    with sqlite_db.session() as session:
        order = session.execute(select(Order)).scalar_one()
        assert (order.tracking_number, order.tracking_company) == ("ABC-1", None)
        assert session.execute(select(Referral.status)).scalar_one() == "rewarded"


def test_an_order_event_refused_by_a_rule_writes_nothing(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    who = people(sqlite_db, program)
    with pytest.raises(LedgerError):
        apply(sqlite_db, program, OrderState(PaidOrder("X1", who["cleo"], Decimal("60.00"), PLACED),
                                             refunds=[Refund("X1", "r1", Decimal("61.00"))]))
    with sqlite_db.session() as session:
        assert session.execute(select(Order)).first() is None
        assert session.execute(select(Referral.status)).scalar_one() == "joined"
