"""Order events from the store — paid, refunded, cancelled, fulfilled — each with everything it implies, in the
caller's one transaction: the order's points (bot/loyalty/orders.py), the referral a paid order decides and
a refund or cancellation takes back (bot/advocacy/referrals.py), the fulfilment review requests count from.

The store API, the CLI, the history importer and the store webhooks call these; none composes an order event
itself. Every event is idempotent: a replay (the same order, refund id or fulfilment) changes nothing and says
so (`created` False). `apply_order_state` takes an order's whole state as a store reports it and records
whatever of it is new.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import List, Optional, Sequence, Tuple

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.referrals import (
    ReferralOutcome, attribute_order, customers_with_referrals, reconsider_after_refund,
)
from bot.loyalty.ledger import LedgerError
from bot.loyalty.orders import (
    LineInput, PaidOrderBatch, RecordedRefund, Tracking, cancel_order, mark_fulfilled, record_paid_order,
    refund_order,
)
from bot.loyalty.program import Program
from bot.models import Order, OrderRefund

_CENT = Decimal("0.01")


class RefundedLess(LedgerError):
    """A store's refunded total below what was already refunded: a stale report, not a change."""

    def __init__(self, order_id: str, reported: Decimal, already: Decimal) -> None:
        self.reported, self.already = reported, already
        super().__init__(f"order {order_id}: refunded total {reported} is less than the {already} already refunded")


# --- inputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaidOrder:
    """A paid order as the store reports it. The hashes (never raw addresses or IPs) feed the referral
    fraud rules (bot/advocacy/fingerprints.py)."""

    order_id: str
    customer_id: int
    total: Decimal
    placed_at: datetime
    currency: Optional[str] = None
    lines: Sequence[LineInput] = ()
    discount_codes: Sequence[str] = ()  # a friend offer among them attributes the order
    referral_code: Optional[str] = None
    shipping_address_hash: Optional[str] = None
    ip_hash: Optional[str] = None


@dataclass(frozen=True)
class Refund:
    order_id: str
    refund_id: str  # the store's: a replay of the same id changes nothing
    amount: Decimal
    currency: Optional[str] = None
    at: Optional[datetime] = None  # when it happened (a report of history); default now


@dataclass(frozen=True)
class Fulfilment:
    order_id: str
    fulfilled_at: datetime
    tracking: Optional[Tracking] = None
    # The store's time of this report (a webhook's updated_at): tracking from an older report than the one
    # recorded is not taken. None: the report is taken as the latest.
    reported_at: Optional[datetime] = None


@dataclass(frozen=True)
class OrderState:
    """An order's whole state as a store reports it (an export row, a webhook's order object).

    Refunds are given one by one with the store's ids (`refunds`), or, when only the refunded total is known
    (`refunded_total`, an export), as that total: what it adds to the refunds already recorded is recorded as
    one refund keyed by the total it brings the order to (f"{source}-refund-{total}"), so a rerun finds it
    and a later report with more refunded adds only the difference."""

    paid: PaidOrder
    refunds: Sequence[Refund] = ()
    refunded_total: Optional[Decimal] = None
    refunded_at: Optional[datetime] = None  # dates a total-keyed refund (default: cancelled_at or placed_at)
    cancelled_at: Optional[datetime] = None
    fulfilment: Optional[Fulfilment] = None
    source: str = "import"


# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaidResult:
    order: Order
    created: bool  # False: a replay, nothing changed
    points_awarded: int
    referral: Optional[ReferralOutcome]  # the referral this order made or decided, if any


@dataclass(frozen=True)
class TakenBack:
    """A refund or the cancellation, and the referral it cost its reward (if any)."""

    order: Order
    refund: OrderRefund
    created: bool
    points_written_off: int  # points the refund should have taken back but the balance no longer had
    referral: Optional[ReferralOutcome]

    @property
    def points_reversed(self) -> int:
        return self.refund.points_reversed


@dataclass(frozen=True)
class Fulfilled:
    order: Order
    created: bool  # False when this fulfilment (and its tracking) was known already


@dataclass(frozen=True)
class OrderStateResult:
    paid: PaidResult
    refunds: Tuple[TakenBack, ...]  # the refunds recorded now
    refunds_replayed: bool  # the report's refunds were all recorded before
    cancellation: Optional[TakenBack]  # recorded now
    cancellation_replayed: bool
    fulfilled: Optional[Fulfilled]

    @property
    def order(self) -> Order:
        return self.paid.order


# --- the events --------------------------------------------------------------------------------------


def record_paid(session: Session, program: Program, paid: PaidOrder, *, update_tier: bool = True,
                now: Optional[datetime] = None) -> PaidResult:
    """Record a paid order: its points, once, at the tier held before it (update_tier=False leaves the tier
    to the caller: an import recomputes it once at the end), then the referral it decides — the friend's
    first order, a friend offer among its codes, or its referral code. A replay is a no-op; the same id with
    other facts is an OrderConflict."""
    recorded = record_paid_order(
        session, program, paid.customer_id, paid.order_id, paid.total, paid.placed_at,
        currency=paid.currency, lines=paid.lines, update_tier=update_tier,
    )
    if not recorded.created:  # a replay was attributed when it was new
        return PaidResult(recorded.order, False, 0, None)
    recorded.order.shipping_address_hash = paid.shipping_address_hash
    recorded.order.ip_hash = paid.ip_hash
    session.flush()
    referral = attribute_order(session, program, recorded.order, discount_codes=paid.discount_codes,
                               referral_code=paid.referral_code, now=now or clock.now())
    return PaidResult(recorded.order, True, recorded.points_awarded, referral)


def record_refund(session: Session, program: Program, refund: Refund, *, now: Optional[datetime] = None) -> TakenBack:
    """Refund part or all of an order: the same share of its points back, and its referral rejected (the
    advocate's points back) when the order no longer qualifies."""
    result = refund_order(session, program, refund.order_id, refund.refund_id, refund.amount,
                          currency=refund.currency, at=refund.at)
    return _taken_back(session, program, result, now)


def record_cancellation(session: Session, program: Program, order_id: str, *, at: Optional[datetime] = None,
                        now: Optional[datetime] = None) -> TakenBack:
    """Cancel an order: whatever it still holds is taken back, and its referral with it."""
    return _taken_back(session, program, cancel_order(session, program, order_id, at=at), now)


def record_fulfilment(session: Session, fulfilment: Fulfilment) -> Fulfilled:
    """The order shipped: the first fulfilment's time counts; tracking details are kept, the latest report
    winning."""
    order, changed = mark_fulfilled(session, fulfilment.order_id, fulfilment.fulfilled_at, fulfilment.tracking,
                                    reported_at=fulfilment.reported_at)
    return Fulfilled(order, changed)


def apply_order_state(session: Session, program: Program, state: OrderState, *, update_tier: bool = True,
                      now: Optional[datetime] = None) -> OrderStateResult:
    """Record whatever is new in an order's reported state: the paid order, its refunds, its cancellation,
    its fulfilment — each as its own event above, so the same report twice changes nothing. A cancelled
    order takes no further refunds (its cancellation took back everything left)."""
    paid = record_paid(session, program, state.paid, update_tier=update_tier, now=now)
    order = paid.order
    was_cancelled = order.status == "cancelled"
    recorded = []
    refunds_replayed = was_cancelled and (bool(state.refunds) or bool(state.refunded_total))
    if not was_cancelled:
        for refund in state.refunds:
            taken = record_refund(session, program, refund, now=now)
            if taken.created:
                recorded.append(taken)
        if state.refunds and not recorded:
            refunds_replayed = True
        if state.refunded_total:
            taken_for_total = _refund_to_total(session, program, state, order, now)
            if taken_for_total is None:
                refunds_replayed = True
            else:
                recorded.append(taken_for_total)
    cancellation = None
    if state.cancelled_at is not None and not was_cancelled:
        cancellation = record_cancellation(session, program, order.external_id, at=state.cancelled_at, now=now)
    fulfilled = record_fulfilment(session, state.fulfilment) if state.fulfilment is not None else None
    return OrderStateResult(paid, tuple(recorded), refunds_replayed, cancellation,
                            state.cancelled_at is not None and was_cancelled, fulfilled)


@dataclass(frozen=True)
class BatchOutcome:
    """What apply_order_states did with one state — what its OrderStateResult says, without the rows (loading
    a batch's orders back would cost as much as writing them) — or the error that refused it alone."""

    error: Optional[Exception] = None  # a LedgerError (OrderConflict, RefundedLess, …), IntegrityError or DataError
    created: bool = False  # the paid order is new (False: a replay)
    points_awarded: int = 0
    refunds_recorded: int = 0
    refunds_replayed: bool = False
    cancelled: bool = False  # the cancellation was recorded now
    cancellation_replayed: bool = False

    @classmethod
    def of(cls, result: OrderStateResult) -> "BatchOutcome":
        return cls(None, result.paid.created, result.paid.points_awarded, len(result.refunds), result.refunds_replayed,
                   result.cancellation is not None, result.cancellation_replayed)


def apply_order_states(session: Session, program: Program, states: Sequence[OrderState], *,
                       now: Optional[datetime] = None) -> List[BatchOutcome]:
    """apply_order_state(update_tier=False) for each state in turn — a history import: the caller recomputes
    tiers afterwards — ending exactly as applying them one by one would, with each state refused alone.

    Most states of a history are a paid order and nothing else, by a customer no referral involves; those
    are recorded together (PaidOrderBatch: their points worked out in memory, the rows inserted a batch at a
    time). The others — refunds, cancellations, fulfilments, codes, referral friends — go through
    apply_order_state one by one, each in a savepoint, after the orders before them are written."""
    outcomes: List[Optional[BatchOutcome]] = [None] * len(states)
    customer_ids = {state.paid.customer_id for state in states}
    earliest = min((state.paid.placed_at for state in states), default=None)
    batch = PaidOrderBatch.for_orders(session, program, customer_ids, (state.paid.order_id for state in states),
                                      earliest=earliest)
    with_referrals = customers_with_referrals(session, list(customer_ids))
    held: List[int] = []  # indexes of states waiting in the batch

    def write() -> None:
        try:
            recorded = batch.write()
        except (IntegrityError, DataError):
            for index in held:  # the bulk insert failed as a whole: find the culprit one by one
                outcomes[index] = one_by_one(index)
        else:
            for index in held:
                outcomes[index] = BatchOutcome(created=True, points_awarded=recorded[states[index].paid.order_id.strip()])
        held.clear()

    def one_by_one(index: int) -> BatchOutcome:
        state = states[index]
        try:
            with session.begin_nested():
                result = apply_order_state(session, program, state, update_tier=False, now=now)
        except (LedgerError, IntegrityError, DataError) as error:
            return BatchOutcome(error=error)
        finally:
            batch.forget_customer(state.paid.customer_id)
        batch.remember(result.order)
        return BatchOutcome.of(result)

    for index, state in enumerate(states):
        paid = state.paid
        if batch.pending(paid.order_id):  # the same order twice in the batch: the first is written first
            write()
        paid_only = (not state.refunds and not state.refunded_total and state.cancelled_at is None
                     and state.fulfilment is None)
        # A new order's referral is attribute_order's to decide unless nothing can attribute it.
        attributes_nothing = (not paid.discount_codes and paid.referral_code is None
                              and paid.customer_id not in with_referrals and not batch.ledger_key_taken(paid.order_id))
        if paid_only and (attributes_nothing or batch.recorded(paid.order_id)):
            try:
                new = batch.add(paid.customer_id, paid.order_id, paid.total, paid.placed_at, currency=paid.currency,
                                lines=paid.lines, shipping_address_hash=paid.shipping_address_hash, ip_hash=paid.ip_hash)
            except LedgerError as error:
                outcomes[index] = BatchOutcome(error=error)
                continue
            if new:
                held.append(index)
            else:
                outcomes[index] = BatchOutcome()  # a replay: apply_order_state would change nothing either
            continue
        write()
        outcomes[index] = one_by_one(index)
    write()
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def _refund_to_total(session: Session, program: Program, state: OrderState, order: Order,
                     now: Optional[datetime]) -> Optional[TakenBack]:
    """The refund that brings the order to the reported refunded total; None when it is there already."""
    target = Decimal(state.refunded_total or 0)
    already = order.refunded_total
    if target < already:
        raise RefundedLess(order.external_id, target, already)
    if target == already:
        return None
    paid = state.paid
    refund = Refund(order.external_id, f"{state.source}-refund-{target.quantize(_CENT)}", target - already,
                    currency=paid.currency, at=state.refunded_at or state.cancelled_at or paid.placed_at)
    return record_refund(session, program, refund, now=now)


def _taken_back(session: Session, program: Program, result: RecordedRefund, now: Optional[datetime]) -> TakenBack:
    # Also on a replay: a retry after a failure between the refund and this step still decides the referral
    # (a rejected referral is never reconsidered, so this changes nothing twice).
    referral = reconsider_after_refund(session, program, result.order, now or clock.now())
    return TakenBack(result.order, result.refund, result.created, result.points_written_off,
                     ReferralOutcome.of(referral) if referral is not None else None)
