"""What a shopper may know about their own orders, from what the store reported (webhooks, the store API, the
history import): paid, shipped (carrier, tracking number and link), refunded in part or whole, cancelled —
and when it last changed. A guest proves an order is theirs with its number and its email together; a
lookup that fails says the same whether the number exists or not."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import List, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Customer, Order
from bot.shared.text import normalize_email

# An order shipped this recently may still be on its way, and one not shipped yet is still awaited this long
# after it was placed (an older one the store never reported shipped is history, not news): both count as open.
IN_TRANSIT = timedelta(days=14)
AWAITED = timedelta(days=60)
RECENT_ORDERS = 5
# "#1042", "order 1042", "no. 1042": the digits of a store's order name (letters too, as "R1042").
_ORDER_NUMBER = re.compile(r"(?:#|\bno\.?\s*|\border\s*(?:number|nr\.?|#)?\s*)\s*([A-Za-z]{0,3}\d{3,12})\b",
                           re.IGNORECASE)
_BARE_NUMBER = re.compile(r"(?<![\d.,$€£])\b(\d{3,12})\b(?![.,]\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class OrderStatus:
    number: str  # the store's name without "#"
    placed_at: datetime
    total: Decimal
    currency: str
    status: str  # paid | partially_refunded | refunded | cancelled
    refunded_total: Decimal
    refunded_at: Optional[datetime]  # the latest refund's (or the cancellation's)
    fulfilled_at: Optional[datetime]
    tracking_company: Optional[str]
    tracking_number: Optional[str]
    tracking_url: Optional[str]
    changed_at: datetime  # when the latest of these happened

    @property
    def shipped(self) -> bool:
        return self.fulfilled_at is not None

    def is_open(self, now: datetime) -> bool:
        """Not cancelled or refunded in full, and awaiting shipment or shipped recently (maybe still on its way)."""
        if self.status in ("cancelled", "refunded"):
            return False
        if self.fulfilled_at is None:
            return now - self.placed_at <= AWAITED
        return now - self.fulfilled_at <= IN_TRANSIT


def recent_orders(session: Session, customer_id: int, limit: int = RECENT_ORDERS) -> List[OrderStatus]:
    """The customer's latest orders, newest first."""
    orders = session.execute(select(Order).where(Order.customer_id == customer_id)
                             .order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit)).scalars()
    return [_status(order) for order in orders]


def customer_order(session: Session, customer_id: int, number: str) -> Optional[OrderStatus]:
    """The customer's order with this number; None when they have none by that number."""
    order = _by_number(session, number)
    return _status(order) if order is not None and order.customer_id == customer_id else None


def guest_order(session: Session, number: str, email: str) -> Optional[OrderStatus]:
    """The order with this number when its customer has this email; None otherwise, whichever part failed."""
    order = _by_number(session, number)
    if order is None:
        return None
    customer = session.get(Customer, order.customer_id)
    wanted = normalize_email(email)
    return _status(order) if customer is not None and customer.email and wanted == customer.email else None


def order_number_in(text: str) -> Optional[str]:
    """The order number a message names ("has #1042 shipped?", "order 1042 status"), or None."""
    text = _EMAIL.sub(" ", text or "")
    found = _ORDER_NUMBER.search(text) or _BARE_NUMBER.search(text)
    return found.group(1).upper() if found else None


def email_in(text: str) -> Optional[str]:
    found = _EMAIL.search(text or "")
    return found.group(0) if found else None


def _by_number(session: Session, number: str) -> Optional[Order]:
    wanted = (number or "").strip().lstrip("#").strip()
    if not wanted or len(wanted) > 64:
        return None
    return session.execute(select(Order).where(Order.external_id == wanted)).scalar_one_or_none()


def _status(order: Order) -> OrderStatus:
    refunds = list(order.refunds)
    refunded_at = max((refund.created_at for refund in refunds), default=None)
    moments = [order.placed_at, order.fulfilled_at, order.tracking_reported_at, refunded_at]
    return OrderStatus(
        number=order.external_id, placed_at=order.placed_at, total=order.total, currency=order.currency,
        status=order.status, refunded_total=order.refunded_total, refunded_at=refunded_at,
        fulfilled_at=order.fulfilled_at, tracking_company=order.tracking_company,
        tracking_number=order.tracking_number, tracking_url=order.tracking_url,
        changed_at=max(moment for moment in moments if moment is not None),
    )
