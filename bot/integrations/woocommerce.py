"""WooCommerce's webhook topics (order.created, order.updated, customer.created), applied from the inbox through
the same homes as Shopify's: orders through bot/order_events.py, customers through bot/membership.py.

WooCommerce sends the order's whole state (REST API v3 shape) every time: paid once it is processing or
completed (or later refunded or cancelled, having been paid), its refunds one by one, cancelled, and
completed = shipped (with the Shipment Tracking extension's carrier, number and link when present). An order
is ours under its number, as shoppers say it. It neither retries nor keeps delivery ids, so a delivery is
known by its resource and date_modified: the same state twice is one event.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Dict, List, Mapping, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.advocacy.fingerprints import address_hash, fingerprint_key, ip_hash
from bot.identity import CustomerFacts, customer_by_store_id
from bot.integrations.context import StoreContext
from bot.integrations.inbox import Outcome, Topic, newer_applied
from bot.loyalty.orders import LineInput, Tracking
from bot.loyalty.program import Program
from bot.membership import Joining, join
from bot.models import Order, StoreEvent
from bot.order_events import Fulfilment, OrderState, PaidOrder, Refund, apply_order_state

SOURCE = "woocommerce"
TOPICS = ("order.created", "order.updated", "customer.created")
# Statuses of an order that was paid; cancelled and refunded ones count when they were paid first.
PAID_STATUSES = ("processing", "completed")
_CENT = Decimal("0.01")


class PayloadError(ValueError):
    """A payload that is not the shape WooCommerce sends for its topic."""


def delivery_key(topic: str, body: bytes) -> str:
    """What makes a delivery the same one again: its resource, id and date_modified (WooCommerce gives every
    delivery a fresh id, so that cannot be the key). Unreadable bodies are keyed by their digest."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    resource = topic.partition(".")[0] or "unknown"
    if isinstance(payload, dict) and payload.get("id") is not None:
        modified = payload.get("date_modified_gmt") or payload.get("date_modified") or ""
        return f"{resource}:{payload['id']}:{modified}"[:255]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def topics(context: StoreContext) -> Callable[[str], Optional[Topic]]:
    """WooCommerce's topics → their handlers."""
    handlers: Dict[str, Topic] = {
        "order.created": Topic(lambda session, event: apply_order(session, event, context)),
        "order.updated": Topic(lambda session, event: apply_order(session, event, context)),
        "customer.created": Topic(lambda session, event: apply_customer(session, event, context)),
    }
    return handlers.get


def apply_order(session: Session, event: StoreEvent, context: StoreContext) -> Outcome:
    order = _payload(event)
    if order.get("id") is None:
        raise PayloadError("the order has no id")
    event.resource, event.resource_updated_at = f"order:{order['id']}", _moment(order.get("date_modified_gmt"))
    name = str(order.get("number") or order["id"]).strip().lstrip("#")[:64]
    existing = session.execute(select(Order).where(Order.external_id == name)).scalar_one_or_none()
    status = str(order.get("status") or "")
    was_paid = status in PAID_STATUSES or (status in ("refunded", "cancelled") and order.get("date_paid_gmt"))
    if existing is None and not was_paid:
        return Outcome(f"order {name} not paid ({status or 'no status'}): nothing to record", ignored=True)
    total = existing.total if existing is not None else _money(order.get("total"), "total")
    if total <= 0:
        return Outcome(f"order {name} has nothing paid: nothing to earn", ignored=True)
    program = context.program()
    customer_id = existing.customer_id if existing is not None else _member(session, program, order)
    if customer_id is None:
        return Outcome(f"order {name} has no billing email: no one to credit", ignored=True)
    key = fingerprint_key(context.settings)
    shipping = order.get("shipping") if isinstance(order.get("shipping"), dict) else {}
    address = {"address1": shipping.get("address_1"), "address2": shipping.get("address_2"),
               "city": shipping.get("city"), "zip": shipping.get("postcode"), "province": shipping.get("state"),
               "country": shipping.get("country")}
    placed_at = _moment(order.get("date_paid_gmt")) or _moment(order.get("date_created_gmt"))
    if placed_at is None:
        raise PayloadError("the order has neither date_paid_gmt nor date_created_gmt")
    modified = _moment(order.get("date_modified_gmt")) or placed_at
    refunds: List[Refund] = []
    for item in _list(order.get("refunds")):
        if isinstance(item, dict) and item.get("id") is not None:
            amount = abs(_money(item.get("total") or "0", "refund total", signed=True))
            if amount > 0:
                refunds.append(Refund(name, str(item["id"])[:64], amount, at=modified))
    state = OrderState(
        PaidOrder(name, customer_id, total, placed_at, currency=_text(order.get("currency")) or None,
                  lines=_lines(order.get("line_items")),
                  discount_codes=[str(line["code"])[:64] for line in _list(order.get("coupon_lines"))
                                  if isinstance(line, dict) and line.get("code")][:10],
                  shipping_address_hash=address_hash({k: v for k, v in address.items() if v} or None, key),
                  ip_hash=ip_hash(_text(order.get("customer_ip_address")) or None, key)),
        refunds=refunds,
        cancelled_at=modified if status == "cancelled" else None,
        fulfilment=_fulfilment(name, order) if status == "completed" else None,
        source=SOURCE,
    )
    result = apply_order_state(session, program, state, now=context.now())
    return Outcome.of_order(name, result, "completed")


def apply_customer(session: Session, event: StoreEvent, context: StoreContext) -> Outcome:
    customer = _payload(event)
    if customer.get("id") is None:
        raise PayloadError("the customer has no id")
    store_id = str(customer["id"])[:64]
    event.resource, event.resource_updated_at = f"customer:{store_id}", _moment(customer.get("date_modified_gmt"))
    if newer_applied(session, event):
        return Outcome(f"customer {store_id}: older than an update already applied", ignored=True)
    email = _text(customer.get("email"))
    if not email:
        return Outcome(f"customer {store_id} has no email address: not a member yet", ignored=True)
    joined = join(session, context.program(), Joining(CustomerFacts(
        email=email, store_id=store_id, first_name=_text(customer.get("first_name"))[:100] or None,
        last_name=_text(customer.get("last_name"))[:100] or None)),
        email_may_change=True, store_id_label="WooCommerce customer id")
    if joined.created:
        return Outcome(f"customer {store_id} joined as member {joined.customer.id}")
    change = " updated" if joined.updated else ", nothing new"
    return Outcome(f"customer {store_id}: member {joined.customer.id}{change}", ignored=not joined.updated)


def _member(session: Session, program: Program, order: Mapping[str, Any]) -> Optional[int]:
    billing = order.get("billing") if isinstance(order.get("billing"), dict) else {}
    email = _text(billing.get("email"))
    customer_number = order.get("customer_id")
    store_id = str(customer_number)[:64] if customer_number not in (None, 0, "0", "") else None
    if not email:
        known = customer_by_store_id(session, store_id) if store_id else None
        return known.id if known is not None else None
    joined = join(session, program, Joining(CustomerFacts(
        email=email, store_id=store_id, first_name=_text(billing.get("first_name"))[:100] or None,
        last_name=_text(billing.get("last_name"))[:100] or None)),
        email_may_change=True, store_id_label="WooCommerce customer id")
    return joined.customer.id


def _fulfilment(name: str, order: Mapping[str, Any]) -> Optional[Fulfilment]:
    completed = _moment(order.get("date_completed_gmt")) or _moment(order.get("date_modified_gmt"))
    if completed is None:
        return None
    tracking = None
    for meta in _list(order.get("meta_data")):  # the Shipment Tracking extension's items
        if isinstance(meta, dict) and meta.get("key") == "_wc_shipment_tracking_items" and _list(meta.get("value")):
            item = _list(meta["value"])[-1]
            if isinstance(item, dict):
                url = _text(item.get("custom_tracking_link"))
                carrier = _text(item.get("tracking_provider")) or _text(item.get("custom_tracking_provider"))
                tracking = Tracking(company=carrier[:100] or None,
                                    number=_text(item.get("tracking_number"))[:100] or None,
                                    url=url[:500] if url.startswith(("https://", "http://")) else None)
    return Fulfilment(name, completed, tracking if tracking != Tracking() else None,
                      reported_at=_moment(order.get("date_modified_gmt")))


def _lines(items: Any) -> List[LineInput]:
    lines = []
    for item in _list(items)[:1000]:
        if not isinstance(item, dict):
            continue
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            continue
        lines.append(LineInput(title=(_text(item.get("name")) or "item")[:255], quantity=quantity,
                               unit_price=_money(item.get("price") if item.get("price") is not None else "0", "price"),
                               sku=_text(item.get("sku"))[:64] or None))
    return lines


def _payload(event: StoreEvent) -> Dict[str, Any]:
    try:
        payload = json.loads(event.payload)
    except ValueError:
        raise PayloadError(f"{event.topic}: the body is not JSON") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"{event.topic}: the body is not a JSON object")
    return payload


def _moment(value: Any) -> Optional[datetime]:
    """WooCommerce's *_gmt times ("2026-05-02T18:31:37", no zone: UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _money(value: Any, what: str, *, signed: bool = False) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{what} {value!r} is not an amount") from None
    if not amount.is_finite() or (amount < 0 and not signed):
        raise PayloadError(f"{what} {value!r} is not an amount")
    # WooCommerce sends a line's price unrounded ("29.333333"): to the cent, as its totals are.
    return amount.quantize(_CENT)


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
