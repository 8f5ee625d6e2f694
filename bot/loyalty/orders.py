"""The points side of a store's orders: paid orders earn, refunds and cancellations take back pro rata, a
fulfilment is recorded once. Order events as a whole (with referrals) are bot/order_events.py."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Optional, Sequence, Tuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.loyalty.earning import award_tier_entry, points_expiry
from bot.loyalty.ledger import Conflict, LedgerError, NotFound, post_entry
from bot.loyalty.program import Program
from bot.loyalty.tiers import recompute_tier, tier_status
from bot.models import Customer, Order, OrderLine, OrderRefund

# Orders placed before this are a parsing mistake (or year 1), not history.
EARLIEST_ORDER = datetime(2000, 1, 1, tzinfo=timezone.utc)
# Stores' clocks drift; an order an hour ahead of ours is still real, one days ahead is not.
CLOCK_SKEW = timedelta(hours=1)

# Larger than any real basket; a total above it is a unit mix-up (cents sent as dollars) or an attack.
MAX_ORDER_TOTAL = Decimal("1000000")
MAX_LINE_QUANTITY = 10000
# The refund record a cancellation makes; the store's own refund ids may not take this name.
CANCELLATION_ID = "cancellation"


class UnknownOrder(NotFound):
    """No order with that id."""


class OrderConflict(Conflict):
    """The order id was already recorded with other facts (another customer, another total)."""

    def __init__(self, existing: Order) -> None:
        self.existing = existing
        super().__init__(f"order {existing.external_id} was already recorded for customer {existing.customer_id} "
                         f"with total {existing.total}")


@dataclass(frozen=True)
class Tracking:
    """How a fulfilled order's parcel can be followed, as far as the store says."""

    company: Optional[str] = None
    number: Optional[str] = None
    url: Optional[str] = None


@dataclass(frozen=True)
class LineInput:
    title: str
    quantity: int
    unit_price: Decimal
    sku: Optional[str] = None


@dataclass(frozen=True)
class RecordedOrder:
    order: Order
    points_awarded: int
    created: bool


@dataclass(frozen=True)
class RecordedRefund:
    order: Order
    refund: OrderRefund
    created: bool

    @property
    def points_written_off(self) -> int:
        """Points the refund should have taken back but the balance no longer had."""
        return self.refund.points_due - self.refund.points_reversed


def points_for_order(program: Program, total: Decimal, multiplier: Decimal) -> int:
    """Points for a paid order: whole points, rounded down, tier multiplier applied."""
    raw = Decimal(total) * program.earning.points_per_currency_unit * multiplier
    return int(raw.to_integral_value(rounding=ROUND_FLOOR))


def check_amount(what: str, amount: Decimal) -> Decimal:
    """A money amount the store sent: positive, at most two decimals, not absurd."""
    try:
        amount = Decimal(amount)
    except (ArithmeticError, TypeError, ValueError):
        raise LedgerError(f"{what} must be a number, not {amount!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise LedgerError(f"{what} must be a positive amount, not {amount}")
    if amount > MAX_ORDER_TOTAL:
        raise LedgerError(f"{what} of {amount} is larger than any order this store can take ({MAX_ORDER_TOTAL})")
    if amount != amount.quantize(Decimal("0.01")):
        raise LedgerError(f"{what} {amount} has more than two decimal places")
    return amount


def check_placed_at(external_id: str, placed_at: datetime) -> None:
    if placed_at.tzinfo is None:
        raise LedgerError(f"order {external_id}: placed_at needs a time zone")
    if not EARLIEST_ORDER <= placed_at <= clock.now() + CLOCK_SKEW:
        raise LedgerError(
            f"order {external_id}: placed_at {placed_at.isoformat()} is not between "
            f"{EARLIEST_ORDER:%Y-%m-%d} and now"
        )


def _check_currency(program: Program, currency: Optional[str]) -> str:
    if currency is None:
        return program.currency
    if currency.strip().upper() != program.currency:
        raise LedgerError(f"currency {currency!r} does not match the program's currency {program.currency}")
    return program.currency


def _check_lines(lines: Sequence[LineInput]) -> None:
    for index, line in enumerate(lines):
        if not line.title or not line.title.strip():
            raise LedgerError(f"line {index + 1}: title is required")
        if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) or not 1 <= line.quantity <= MAX_LINE_QUANTITY:
            raise LedgerError(f"line {index + 1}: quantity must be a whole number from 1 to {MAX_LINE_QUANTITY}")
        price = Decimal(line.unit_price)
        if not price.is_finite() or price < 0 or price > MAX_ORDER_TOTAL or price != price.quantize(Decimal("0.01")):
            raise LedgerError(f"line {index + 1}: unit price {line.unit_price} is not a valid amount")


def record_paid_order(
    session: Session,
    program: Program,
    customer_id: int,
    external_id: str,
    total: Decimal,
    placed_at: datetime,
    *,
    currency: Optional[str] = None,
    lines: Sequence[LineInput] = (),
    update_tier: bool = True,
) -> RecordedOrder:
    """Record a paid order and award its points once, at the tier the customer had before it.

    Replaying the same order is a no-op; the same id with different facts is refused.
    """
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 64:
        raise LedgerError("an order id of 1-64 characters is required")
    total = check_amount(f"order {external_id}: total", total)
    check_placed_at(external_id, placed_at)
    currency = _check_currency(program, currency)
    _check_lines(lines)
    existing = _find(session, external_id)
    if existing is not None:
        return _replayed(existing, customer_id, total)
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"no customer with id {customer_id}")
    multiplier = tier_status(session, customer_id, program, placed_at).tier.multiplier
    points = points_for_order(program, total, multiplier)
    order = Order(
        external_id=external_id,
        customer_id=customer_id,
        total=total,
        refunded_total=Decimal(0),
        currency=currency,
        status="paid",
        points_earned=points,
        placed_at=placed_at,
        updated_at=clock.now(),
    )
    order.lines = [
        OrderLine(sku=line.sku, title=line.title.strip()[:255], quantity=line.quantity, unit_price=Decimal(line.unit_price))
        for line in lines
    ]
    try:
        with session.begin_nested():
            session.add(order)
            session.flush()
    except IntegrityError:
        # A concurrent delivery of the same order got there first.
        winner = _find(session, external_id)
        if winner is None:
            raise
        return _replayed(winner, customer_id, total)
    if points > 0:
        post_entry(
            session,
            customer_id,
            points,
            kind="earn",
            reason=f"Order {external_id}",
            source="order",
            source_ref=external_id,
            idempotency_key=f"order:{external_id}",
            expires_at=points_expiry(program, placed_at),
            at=placed_at,
        )
    if update_tier:
        recompute_tier(session, program, customer_id, clock.now(), f"order {external_id}", award_tier_entry)
    return RecordedOrder(order, points_awarded=points, created=True)


def refund_order(
    session: Session,
    program: Program,
    external_id: str,
    refund_id: str,
    amount: Decimal,
    *,
    currency: Optional[str] = None,
    at: Optional[datetime] = None,
) -> RecordedRefund:
    """Refund part or all of an order and take back the same share of the points it earned.

    Shares are computed on the running refunded total, so partial refunds that add up to the
    whole order take back exactly what it earned.
    """
    refund_id = (refund_id or "").strip()
    if not refund_id or len(refund_id) > 64:
        raise LedgerError("a refund id of 1-64 characters is required")
    if refund_id == CANCELLATION_ID:
        raise LedgerError(f"refund id {CANCELLATION_ID!r} is reserved for the order's cancellation")
    amount = check_amount(f"refund {refund_id}: amount", amount)
    _check_currency(program, currency)
    order = _locked(session, external_id)
    existing = _find_refund(session, order, refund_id)
    if existing is not None:
        if existing.amount != amount:
            raise Conflict(
                f"refund {refund_id} of order {external_id} was already recorded for {existing.amount}, not {amount}"
            )
        return RecordedRefund(order, existing, created=False)
    if order.status == "cancelled":
        raise LedgerError(f"order {external_id} is cancelled; nothing is left to refund")
    remaining = order.total - order.refunded_total
    if amount > remaining:
        raise LedgerError(f"refund of {amount} exceeds the {remaining} left to refund on order {external_id}")
    return _take_back(session, program, order, refund_id, amount, "refunded" if amount == remaining else "partially_refunded", at)


def cancel_order(session: Session, program: Program, external_id: str, *, at: Optional[datetime] = None) -> RecordedRefund:
    """Cancel an order: whatever was not refunded yet is refunded, and the order stops counting as spend."""
    order = _locked(session, external_id)
    existing = _find_refund(session, order, CANCELLATION_ID)
    if existing is not None:
        return RecordedRefund(order, existing, created=False)
    remaining = order.total - order.refunded_total
    return _take_back(session, program, order, CANCELLATION_ID, remaining, "cancelled", at)


def _take_back(
    session: Session, program: Program, order: Order, refund_id: str, amount: Decimal, status: str,
    at: Optional[datetime],
) -> RecordedRefund:
    when = at or clock.now()
    refunded = order.refunded_total + amount
    already_due = int(
        session.execute(
            select(func.coalesce(func.sum(OrderRefund.points_due), 0)).where(OrderRefund.order_id == order.id)
        ).scalar_one()
    )
    share = (Decimal(order.points_earned) * refunded / order.total).to_integral_value(rounding=ROUND_FLOOR)
    due = int(share) - already_due
    reversed_points = due
    allow_negative = program.refunds_allow_negative_balance
    if due > 0 and not allow_negative:
        balance = session.execute(
            select(Customer.points_balance).where(Customer.id == order.customer_id).with_for_update()
        ).scalar_one()
        reversed_points = max(0, min(due, int(balance)))
    refund = OrderRefund(
        order_id=order.id, external_id=refund_id, amount=amount, points_due=due, points_reversed=reversed_points,
        created_at=when,
    )
    session.add(refund)
    order.refunded_total = refunded
    order.status = status
    order.updated_at = clock.now()
    session.flush()
    if reversed_points > 0:
        written_off = due - reversed_points
        post_entry(
            session,
            order.customer_id,
            -reversed_points,
            kind="reverse",
            reason=(f"Order {order.external_id} {'cancelled' if status == 'cancelled' else 'refunded'}"
                    + (f" ({written_off} points already spent, written off)" if written_off else "")),
            source="refund",
            source_ref=order.external_id,
            idempotency_key=f"refund:{order.external_id}:{refund_id}",
            allow_negative_balance=allow_negative,
            at=when,
        )
    return RecordedRefund(order, refund, created=True)


def mark_fulfilled(session: Session, external_id: str, fulfilled_at: datetime,
                   tracking: Optional[Tracking] = None, *, reported_at: Optional[datetime] = None) -> Tuple[Order, bool]:
    """Record that the order shipped: the earliest fulfilment's time counts (review and feedback requests are
    timed from it); tracking details the store sends are kept, the latest winning — by the store's own time
    of the report (`reported_at`) when it gives one, so a late, older report never replaces newer tracking.
    (the order, whether anything changed)."""
    order = find_order(session, external_id)
    # Conditional: of two deliveries of the same fulfilment, one sets it; an earlier fulfilment reported
    # late still counts as the first (the result does not depend on the order reports arrive in).
    changed = session.execute(
        update(Order).where(Order.id == order.id, or_(Order.fulfilled_at.is_(None), Order.fulfilled_at > fulfilled_at))
        .values(fulfilled_at=fulfilled_at, updated_at=clock.now()).execution_options(synchronize_session=False)
    ).rowcount == 1
    session.refresh(order)
    stale = reported_at is not None and order.tracking_reported_at is not None \
        and reported_at < order.tracking_reported_at
    if tracking is not None and not stale:
        wanted = {"tracking_company": tracking.company, "tracking_number": tracking.number,
                  "tracking_url": tracking.url}
        wanted = {name: value for name, value in wanted.items() if value is not None}
        if any(getattr(order, name) != value for name, value in wanted.items()):
            for name, value in wanted.items():
                setattr(order, name, value)
            order.updated_at = clock.now()
            changed = True
        if reported_at is not None and order.tracking_reported_at != reported_at:
            order.tracking_reported_at = reported_at
        session.flush()
    return order, changed


def find_order(session: Session, external_id: str) -> Order:
    """The order with the store's id; UnknownOrder when there is none."""
    order = _find(session, (external_id or "").strip())
    if order is None:
        raise UnknownOrder(f"no order with id {external_id!r}")
    return order


def _locked(session: Session, external_id: str) -> Order:
    order = session.execute(
        select(Order).where(Order.external_id == (external_id or "").strip()).with_for_update()
    ).scalar_one_or_none()
    if order is None:
        raise UnknownOrder(f"no order with id {external_id!r}")
    return order


def _find_refund(session: Session, order: Order, refund_id: str) -> Optional[OrderRefund]:
    return session.execute(
        select(OrderRefund).where(OrderRefund.order_id == order.id, OrderRefund.external_id == refund_id)
    ).scalar_one_or_none()


def _find(session: Session, external_id: str) -> Optional[Order]:
    return session.execute(select(Order).where(Order.external_id == external_id)).scalar_one_or_none()


def _replayed(existing: Order, customer_id: int, total: Decimal) -> RecordedOrder:
    if (existing.customer_id, existing.total) != (customer_id, total):
        raise OrderConflict(existing)
    return RecordedOrder(existing, points_awarded=0, created=False)
