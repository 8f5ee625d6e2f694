"""The points side of a store's orders: paid orders earn, refunds and cancellations take back pro rata, a
fulfilment is recorded once. Order events as a whole (with referrals) are bot/order_events.py."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.loyalty.earning import award_tier_entry, points_expiry
from bot.loyalty.ledger import Conflict, Earning, LedgerError, NotFound, insert_earnings, post_entry
from bot.loyalty.program import Program
from bot.loyalty.tiers import (
    SpendHistory, recompute_tier, term_start, tier_at, tier_status, tiers_reached_at,
)
from bot.models import Customer, LedgerEntry, Order, OrderLine, OrderRefund

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


def check_paid_order(program: Program, external_id: str, total: Decimal, placed_at: datetime,
                     currency: Optional[str], lines: Sequence[LineInput]) -> Tuple[str, Decimal, str]:
    """What a paid order must be before the database is asked anything: (its id, total and currency as
    recorded); LedgerError otherwise."""
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 64:
        raise LedgerError("an order id of 1-64 characters is required")
    total = check_amount(f"order {external_id}: total", total)
    check_placed_at(external_id, placed_at)
    currency = _check_currency(program, currency)
    _check_lines(lines)
    return external_id, total, currency


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
    external_id, total, currency = check_paid_order(program, external_id, total, placed_at, currency, lines)
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


class PaidOrderBatch:
    """Many new paid orders recorded as record_paid_order(update_tier=False) records each one — the same order
    rows, points (at the tier held when each was placed, counting the orders before it in the batch), ledger
    entries and balances — with a few statements for the whole batch instead of a dozen per order: what the
    batch's orders and customers already have is loaded once (`for_orders`), `add` checks an order and works
    out its points in memory, and `write` inserts the orders, their lines and ledger entries with one
    statement each and moves each customer's balance once.

    The caller (bot/order_events.py) decides which orders may take this way and sends the others through
    record_paid_order; after one of those, `forget_customer` and `remember` keep what is loaded true."""

    def __init__(self, session: Session, program: Program) -> None:
        self.session = session
        self.program = program
        self.known: Dict[str, Order] = {}  # recorded orders among the batch's ids
        self.customers: Dict[int, Customer] = {}
        self.spend = SpendHistory(session)
        self.reached: Dict[Tuple[int, str], datetime] = {}
        self.used_keys: Set[str] = set()  # ledger keys "order:<id>" already taken
        self.written: Set[str] = set()  # orders this batch wrote (not loaded as objects)
        self._pending: Dict[str, _PendingOrder] = {}
        self._expiry: Dict[datetime, datetime] = {}  # placed_at → its points' expiry (many orders share a moment)

    @classmethod
    def for_orders(cls, session: Session, program: Program, customer_ids: Iterable[int],
                   external_ids: Iterable[str], earliest: Optional[datetime] = None) -> "PaidOrderBatch":
        """`earliest`: no order of the batch is placed before it (older orders outside every term it asks
        about are then not loaded)."""
        batch = cls(session, program)
        if earliest is not None:
            batch.spend = SpendHistory(session, since=term_start(program, earliest))
        ids = sorted({(external_id or "").strip() for external_id in external_ids})
        customers = sorted(set(customer_ids))
        for chunk in _chunks(ids):
            for order in session.execute(select(Order).where(Order.external_id.in_(chunk))).scalars():
                batch.known[order.external_id] = order
            batch.used_keys.update(session.execute(
                select(LedgerEntry.idempotency_key).where(
                    LedgerEntry.source == "order", LedgerEntry.idempotency_key.in_([f"order:{i}" for i in chunk]))
            ).scalars())
        for chunk in _chunks(customers):
            for customer in session.execute(select(Customer).where(Customer.id.in_(chunk))).scalars():
                batch.customers[customer.id] = customer
        batch.spend.load(customers)
        batch.reached = tiers_reached_at(session, customers)
        return batch

    def pending(self, external_id: str) -> bool:
        return (external_id or "").strip() in self._pending

    def recorded(self, external_id: str) -> bool:
        external_id = (external_id or "").strip()
        return external_id in self.known or external_id in self.written

    def ledger_key_taken(self, external_id: str) -> bool:
        """Whether the ledger already holds this order's points key although the order is not recorded (an
        order erased and sent again): record_paid_order decides what that means, one by one."""
        external_id = (external_id or "").strip()
        return not self.recorded(external_id) and f"order:{external_id}" in self.used_keys

    def add(self, customer_id: int, external_id: str, total: Decimal, placed_at: datetime, *,
            currency: Optional[str] = None, lines: Sequence[LineInput] = (), shipping_address_hash: Optional[str] = None,
            ip_hash: Optional[str] = None) -> bool:
        """Check the order as record_paid_order does. A new one is held for `write` (True); a recorded one is a
        replay with nothing to write (False; OrderConflict when its facts differ). Call `write` first when
        `pending(external_id)`."""
        external_id, total, currency = check_paid_order(self.program, external_id, total, placed_at, currency, lines)
        assert external_id not in self._pending, "write the pending orders before adding the same id again"
        if external_id in self.written and external_id not in self.known:  # twice in one batch: rare
            self.known[external_id] = _find(self.session, external_id)  # type: ignore[assignment]
        existing = self.known.get(external_id)
        if existing is not None:
            _replayed(existing, customer_id, total)
            return False
        customer = self.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"no customer with id {customer_id}")
        held = self.program.tier(customer.tier_name)
        reached = self.reached.get((customer_id, held.name)) if held is not None else None
        tier, _ = tier_at(self.program, self.spend.spend(self.program, customer_id, placed_at), customer, reached,
                          placed_at)
        points = points_for_order(self.program, total, tier.multiplier)
        self._pending[external_id] = _PendingOrder(customer_id, external_id, total, placed_at, currency, points,
                                                   tuple(lines), shipping_address_hash, ip_hash)
        self.spend.add(customer_id, placed_at, total)
        return True

    def write(self) -> Dict[str, int]:
        """Insert the held orders; the points each earned, by id (the rows are not loaded back: that would cost
        as much as writing them). On IntegrityError or DataError nothing of them is written (a savepoint) and
        they are dropped: record them one by one instead."""
        pending, self._pending = self._pending, {}
        if not pending:
            return {}
        session = self.session
        session.flush()
        try:
            with session.begin_nested():
                recorded = self._insert(list(pending.values()))
        except (IntegrityError, DataError):
            for order in pending.values():
                self.spend.forget(order.customer_id)
            raise
        self.written.update(recorded)
        self.used_keys.update(f"order:{external_id}" for external_id, points in recorded.items() if points > 0)
        return recorded

    def _insert(self, orders: List["_PendingOrder"]) -> Dict[str, int]:
        connection = self.session.connection()
        now = clock.now()
        connection.execute(insert(Order.__table__), [{
            "external_id": order.external_id, "customer_id": order.customer_id, "total": order.total,
            "refunded_total": Decimal(0), "currency": order.currency, "status": "paid",
            "points_earned": order.points, "placed_at": order.placed_at, "updated_at": now,
            "shipping_address_hash": order.shipping_address_hash, "ip_hash": order.ip_hash,
        } for order in orders])
        with_lines = [order.external_id for order in orders if order.lines]
        order_ids: Dict[str, int] = {}
        for chunk in _chunks(with_lines):
            order_ids.update((external_id, order_id) for order_id, external_id in connection.execute(
                select(Order.id, Order.external_id).where(Order.external_id.in_(chunk))))
        lines = [{"order_id": order_ids[order.external_id], "sku": line.sku, "title": line.title.strip()[:255],
                  "quantity": line.quantity, "unit_price": Decimal(line.unit_price)}
                 for order in orders for line in order.lines]
        if lines:
            connection.execute(insert(OrderLine.__table__), lines)
        insert_earnings(self.session, [Earning(
            order.customer_id, order.points, f"Order {order.external_id}", "order", f"order:{order.external_id}",
            order.placed_at, self._expires(order.placed_at), source_ref=order.external_id,
        ) for order in orders if order.points > 0])
        return {order.external_id: order.points for order in orders}

    def _expires(self, placed_at: datetime) -> datetime:
        if placed_at not in self._expiry:
            self._expiry[placed_at] = points_expiry(self.program, placed_at)
        return self._expiry[placed_at]

    def remember(self, order: Order) -> None:
        """An order recorded outside the batch (record_paid_order) meanwhile."""
        self.known[order.external_id] = order

    def forget_customer(self, customer_id: int) -> None:
        """The customer's orders changed outside the batch: their spend is read again when next needed."""
        self.spend.forget(customer_id)


@dataclass(frozen=True)
class _PendingOrder:
    customer_id: int
    external_id: str
    total: Decimal
    placed_at: datetime
    currency: str
    points: int
    lines: Tuple[LineInput, ...]
    shipping_address_hash: Optional[str]
    ip_hash: Optional[str]


def _chunks(values: List, size: int = 500) -> Iterator[List]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


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
