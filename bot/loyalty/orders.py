"""Orders from the store and the points they earn."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.loyalty.ledger import LedgerError, post_entry
from bot.loyalty.program import Program
from bot.loyalty.tiers import tier_status
from bot.models import Order


@dataclass(frozen=True)
class RecordedOrder:
    order: Order
    points_awarded: int
    created: bool


def points_for_order(program: Program, total: Decimal, multiplier: Decimal) -> int:
    """Points for a paid order: whole points, rounded down, tier multiplier applied."""
    raw = Decimal(total) * program.earning.points_per_currency_unit * multiplier
    return int(raw.to_integral_value(rounding=ROUND_FLOOR))


def record_paid_order(
    session: Session,
    program: Program,
    customer_id: int,
    external_id: str,
    total: Decimal,
    placed_at: datetime,
) -> RecordedOrder:
    """Record a paid order and award its points once, at the tier the customer had before it."""
    total = Decimal(total)
    if total <= 0:
        raise LedgerError(f"order {external_id}: total must be positive, not {total}")
    existing = _find(session, external_id)
    if existing is not None:
        return _replayed(existing, customer_id, total)
    multiplier = tier_status(session, customer_id, program, placed_at).tier.multiplier
    order = Order(
        external_id=external_id,
        customer_id=customer_id,
        total=total,
        currency=program.currency,
        status="paid",
        placed_at=placed_at,
    )
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
    points = points_for_order(program, total, multiplier)
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
            at=placed_at,
        )
    return RecordedOrder(order, points_awarded=points, created=True)


def _find(session: Session, external_id: str) -> Optional[Order]:
    return session.execute(select(Order).where(Order.external_id == external_id)).scalar_one_or_none()


def _replayed(existing: Order, customer_id: int, total: Decimal) -> RecordedOrder:
    if (existing.customer_id, existing.total) != (customer_id, total):
        raise LedgerError(
            f"order {existing.external_id} was already recorded for customer {existing.customer_id} "
            f"with total {existing.total}"
        )
    return RecordedOrder(existing, points_awarded=0, created=False)
