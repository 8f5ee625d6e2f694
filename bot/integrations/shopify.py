"""Shopify's webhook topics, applied from the inbox (bot/integrations/inbox.py) through the one home of each use
case: order payloads, refunds and fulfilments through bot/order_events.py, customers through bot/membership.py
(bot/identity), the privacy topics through bot/privacy.py. Nothing here composes an order event itself.

Orders are ours under their name without "#" (`#1042` → "1042"), as the history import records them and as
shoppers say them; a refund or a fulfilment names its order only by Shopify's numeric id, so the ids of every
order payload seen are kept (StoreOrderRef), and one that names an order not seen yet waits for it.

Arrival order does not matter: order payloads carry the order's whole state and each part is recorded once
(`apply_order_state`); tracking is taken only from a fulfilment reported later than the one recorded; a
customer update older than one applied changes nothing; a refund of a cancelled order is already covered by
the cancellation, which took back everything left.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.advocacy.fingerprints import address_hash, fingerprint_key, ip_hash
from bot.db import Database
from bot.identity import CustomerFacts, customer_by_email, customer_by_store_id
from bot.log import get_logger
from bot.loyalty.orders import LineInput, Tracking
from bot.loyalty.program import Program
from bot.membership import Joining, join
from bot.models import Order, StoreEvent, StoreOrderRef
from bot.order_events import (
    Fulfilment, OrderState, PaidOrder, Refund, apply_order_state, record_fulfilment, record_refund,
)
from bot.privacy import UnknownCustomer, erase_customer_everywhere, export_customer_data
from bot.integrations.context import StoreContext
from bot.integrations.inbox import Outcome, Topic, WaitingFor, newer_applied, wake_waiting
from bot.settings import Settings

log = get_logger(__name__)

SOURCE = "shopify"
ORDER_TOPICS = ("orders/create", "orders/paid", "orders/updated", "orders/fulfilled", "orders/cancelled")
FULFILMENT_TOPICS = ("fulfillments/create", "fulfillments/update")
CUSTOMER_TOPICS = ("customers/create", "customers/update")
PRIVACY_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
TOPICS = (*ORDER_TOPICS, *FULFILMENT_TOPICS, "refunds/create", *CUSTOMER_TOPICS, *PRIVACY_TOPICS)
# Financial statuses of an order that was paid (refunds are recorded from its refunds, one by one).
PAID_STATUSES = ("paid", "partially_refunded", "refunded")
_CENT = Decimal("0.01")
EXPORTS_FOLDER = Path("exports") / "data-requests"  # under the data folder
_SAFE = re.compile(r"[^a-z0-9.-]+")


class PayloadError(ValueError):
    """A payload that is not the shape Shopify sends for its topic."""


def topics(context: StoreContext) -> Callable[[str], Optional[Topic]]:
    """Shopify's topics → their handlers."""
    def on(session_handler: Callable[[Session, StoreEvent, StoreContext], Outcome]) -> Topic:
        return Topic(lambda session, event: session_handler(session, event, context))

    def own(handler: Callable[[StoreEvent, StoreContext], Outcome]) -> Topic:
        return Topic(lambda event: handler(event, context), own_transaction=True)

    handlers: Dict[str, Topic] = {topic: on(apply_order_payload) for topic in ORDER_TOPICS}
    handlers.update({topic: on(apply_fulfilment) for topic in FULFILMENT_TOPICS})
    handlers["refunds/create"] = on(apply_refund)
    handlers.update({topic: on(apply_customer) for topic in CUSTOMER_TOPICS})
    handlers["customers/data_request"] = own(export_data_request)
    handlers["customers/redact"] = own(redact_customer)
    handlers["shop/redact"] = own(redact_shop)
    return handlers.get


# --- orders ------------------------------------------------------------------------------------------


def apply_order_payload(session: Session, event: StoreEvent, context: StoreContext) -> Outcome:
    """An order's whole state (orders/create, paid, updated, fulfilled, cancelled): whatever of it is new."""
    order = _payload(event)
    store_id = _store_id(order, "id")
    event.resource, event.resource_updated_at = f"order:{store_id}", _moment(order.get("updated_at"))
    name = order_name(order)
    now = context.now()
    remember_order(session, event.shop, store_id, name, now)
    existing = _order(session, name)
    status = str(order.get("financial_status") or "")
    if existing is None and status not in PAID_STATUSES:
        return Outcome(f"order {name} not paid yet ({status or 'no financial status'}): nothing to record",
                       ignored=True)
    total = existing.total if existing is not None else _money(order.get("total_price"), "total_price")
    if total <= 0:
        return Outcome(f"order {name} has nothing paid: nothing to earn", ignored=True)
    program = context.program()
    customer_id = existing.customer_id if existing is not None else _member(session, program, order)
    if customer_id is None:
        return Outcome(f"order {name} has no customer email: no one to credit", ignored=True)
    key = fingerprint_key(context.settings)
    address = order.get("shipping_address")
    state = OrderState(
        PaidOrder(
            name, customer_id, total, _placed_at(order), currency=_text(order.get("currency")),
            lines=_lines(order.get("line_items")),
            discount_codes=[str(code["code"])[:64] for code in _list(order.get("discount_codes"))
                            if isinstance(code, dict) and code.get("code")][:10],
            shipping_address_hash=address_hash(address if isinstance(address, dict) else None, key),
            ip_hash=ip_hash(_browser_ip(order), key),
        ),
        refunds=[refund for refund in (_refund(name, item) for item in _list(order.get("refunds"))) if refund],
        cancelled_at=_moment(order.get("cancelled_at")),
        fulfilment=_order_fulfilment(name, order),
        source=SOURCE,
    )
    result = apply_order_state(session, program, state, now=now)
    return Outcome.of_order(name, result)


def apply_fulfilment(session: Session, event: StoreEvent, context: StoreContext) -> Outcome:
    """A fulfilment created or updated: the order shipped, with its tracking."""
    fulfilment = _payload(event)
    store_order = _store_id(fulfilment, "order_id")
    event.resource, event.resource_updated_at = f"order:{store_order}", _moment(fulfilment.get("updated_at"))
    status = str(fulfilment.get("status") or "")
    if status != "success":
        return Outcome(f"fulfilment {fulfilment.get('id')} is {status or 'without a status'}: not shipped",
                       ignored=True)
    order = _known_order(session, event.shop, store_order)
    if order is None:
        return Outcome(f"fulfilment of an order that was never paid ({store_order}): nothing to record",
                       ignored=True)
    shipped = _fulfilment(order.external_id, fulfilment)
    recorded = record_fulfilment(session, shipped)
    return Outcome(f"order {order.external_id}: " + ("fulfilled" if recorded.created else "nothing new"),
                   ignored=not recorded.created)


def apply_refund(session: Session, event: StoreEvent, context: StoreContext) -> Outcome:
    """A refund: the same share of the order's points back (bot/order_events.py)."""
    payload = _payload(event)
    store_order = _store_id(payload, "order_id")
    event.resource = f"order:{store_order}"
    event.resource_updated_at = _moment(payload.get("processed_at") or payload.get("created_at"))
    order = _known_order(session, event.shop, store_order)
    if order is None:
        return Outcome(f"refund of an order that was never paid ({store_order}): nothing to take back", ignored=True)
    refund = _refund(order.external_id, payload)
    if refund is None:
        return Outcome(f"refund {payload.get('id')} of order {order.external_id} returned no money", ignored=True)
    if order.status == "cancelled":
        # The cancellation took back everything the order still held, this refund included.
        return Outcome(f"order {order.external_id} is cancelled: its cancellation covered refund {refund.refund_id}",
                       ignored=True)
    taken = record_refund(session, context.program(), refund, now=context.now())
    return Outcome(f"order {order.external_id}: refund {refund.refund_id} "
                   + (f"({taken.points_reversed} points back)" if taken.created else "known already"),
                   ignored=not taken.created)


def order_name(order: Mapping[str, Any]) -> str:
    """Our id of a Shopify order: its name without "#" (as the history import and shoppers say it)."""
    name = str(order.get("name") or order.get("order_number") or "").strip().lstrip("#").strip()
    if not name or len(name) > 64:
        raise PayloadError("the order has no name (or one longer than 64 characters)")
    return name


def remember_order(session: Session, shop: str, store_order_id: str, name: str, now: datetime) -> None:
    """Keep Shopify's id of the order beside ours, once; events waiting for it are due now."""
    known = session.execute(select(StoreOrderRef.order_external_id).where(
        StoreOrderRef.source == SOURCE, StoreOrderRef.shop == shop, StoreOrderRef.store_order_id == store_order_id)
    ).scalar_one_or_none()
    if known is not None:
        return
    try:
        with session.begin_nested():
            session.add(StoreOrderRef(source=SOURCE, shop=shop, store_order_id=store_order_id,
                                      order_external_id=name, created_at=now))
            session.flush()
    except IntegrityError:
        return  # recorded concurrently
    wake_waiting(session, SOURCE, shop, f"order:{store_order_id}", now)


def _known_order(session: Session, shop: str, store_order_id: str) -> Optional[Order]:
    """Our order for Shopify's id; None when the order was seen but never paid (nothing of it is recorded).
    WaitingFor when no payload of it has arrived yet."""
    name = session.execute(select(StoreOrderRef.order_external_id).where(
        StoreOrderRef.source == SOURCE, StoreOrderRef.shop == shop, StoreOrderRef.store_order_id == store_order_id)
    ).scalar_one_or_none()
    if name is None:
        raise WaitingFor(f"order:{store_order_id}", f"waiting for order {store_order_id}: none of its order "
                                                    f"events has arrived yet")
    return _order(session, name)


def _order(session: Session, name: str) -> Optional[Order]:
    return session.execute(select(Order).where(Order.external_id == name)).scalar_one_or_none()


def _member(session: Session, program: Program, order: Mapping[str, Any]) -> Optional[int]:
    """The member the order is for, joined now when the store never told us about them (as customers/create
    would: bot/membership.py)."""
    customer = order.get("customer") if isinstance(order.get("customer"), dict) else {}
    email = _text(customer.get("email")) or _text(order.get("email")) or _text(order.get("contact_email"))
    store_id = str(customer["id"]) if customer.get("id") is not None else None
    if not email:
        known = customer_by_store_id(session, store_id) if store_id else None
        return known.id if known is not None else None
    joined = join(session, program, Joining(CustomerFacts(
        email=email, store_id=store_id, first_name=_name(customer.get("first_name")),
        last_name=_name(customer.get("last_name")))), email_may_change=True, store_id_label="Shopify customer id")
    return joined.customer.id


def _placed_at(order: Mapping[str, Any]) -> datetime:
    placed = _moment(order.get("processed_at")) or _moment(order.get("created_at"))
    if placed is None:
        raise PayloadError("the order has neither processed_at nor created_at")
    return placed


def _lines(items: Any) -> List[LineInput]:
    lines = []
    for item in _list(items)[:1000]:
        if not isinstance(item, dict):
            continue
        title = _text(item.get("title")) or _text(item.get("name")) or "item"
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            continue
        lines.append(LineInput(title=title[:255], quantity=quantity,
                               unit_price=_money(item.get("price") or "0", "line price"),
                               sku=(_text(item.get("sku")) or None) and _text(item.get("sku"))[:64]))
    return lines


def _browser_ip(order: Mapping[str, Any]) -> Optional[str]:
    details = order.get("client_details") if isinstance(order.get("client_details"), dict) else {}
    return _text(order.get("browser_ip")) or _text(details.get("browser_ip")) or None


def _refund(name: str, refund: Any) -> Optional[Refund]:
    """A Shopify refund as ours: its money is what its successful refund transactions returned (else its line
    items' subtotals and taxes); None when it returned none (a restock only)."""
    if not isinstance(refund, dict) or refund.get("id") is None:
        return None
    transactions = [item for item in _list(refund.get("transactions")) if isinstance(item, dict)]
    refunded = [item for item in transactions if item.get("kind") == "refund" and item.get("status") == "success"]
    if transactions:
        amount = sum((_money(item.get("amount"), "refund amount") for item in refunded), Decimal(0))
    else:
        amount = sum((_money(item.get("subtotal") or 0, "refund subtotal")
                      + _money(item.get("total_tax") or 0, "refund tax")
                      for item in _list(refund.get("refund_line_items")) if isinstance(item, dict)), Decimal(0))
    if amount <= 0:
        return None
    return Refund(name, str(refund["id"])[:64], amount.quantize(_CENT), at=_moment(refund.get("created_at")))


def _order_fulfilment(name: str, order: Mapping[str, Any]) -> Optional[Fulfilment]:
    """The order's shipment: its first successful fulfilment's time, its latest one's tracking."""
    shipped = [item for item in _list(order.get("fulfillments"))
               if isinstance(item, dict) and item.get("status") == "success" and _moment(item.get("created_at"))]
    if not shipped:
        return None
    latest = max(shipped, key=lambda item: _moment(item.get("updated_at")) or _moment(item["created_at"]))
    first = min(_moment(item["created_at"]) for item in shipped)
    return Fulfilment(name, first, _tracking(latest), reported_at=_moment(latest.get("updated_at")))


def _fulfilment(name: str, fulfilment: Mapping[str, Any]) -> Fulfilment:
    created = _moment(fulfilment.get("created_at"))
    if created is None:
        raise PayloadError("the fulfilment has no created_at")
    return Fulfilment(name, created, _tracking(fulfilment), reported_at=_moment(fulfilment.get("updated_at")))


def _tracking(fulfilment: Mapping[str, Any]) -> Optional[Tracking]:
    url = _text(fulfilment.get("tracking_url"))
    found = Tracking(company=_text(fulfilment.get("tracking_company"))[:100] or None,
                     number=_text(fulfilment.get("tracking_number"))[:100] or None,
                     url=url[:500] if url.startswith(("https://", "http://")) else None)
    return found if found != Tracking() else None


# --- customers ---------------------------------------------------------------------------------------


def apply_customer(session: Session, event: StoreEvent, context: StoreContext) -> Outcome:
    """A customer created or updated in the store: the member they are (bot/membership.py), joined when new."""
    customer = _payload(event)
    store_id = _store_id(customer, "id")
    event.resource, event.resource_updated_at = f"customer:{store_id}", _moment(customer.get("updated_at"))
    if newer_applied(session, event):
        return Outcome(f"customer {store_id}: older than an update already applied", ignored=True)
    email = _text(customer.get("email"))
    if not email:
        return Outcome(f"customer {store_id} has no email address: not a member yet", ignored=True)
    joined = join(session, context.program(), Joining(CustomerFacts(
        email=email, store_id=store_id, first_name=_name(customer.get("first_name")),
        last_name=_name(customer.get("last_name")))), email_may_change=True, store_id_label="Shopify customer id")
    if joined.created:
        return Outcome(f"customer {store_id} joined as member {joined.customer.id} ({joined.signup_points} points)")
    if joined.updated:
        return Outcome(f"customer {store_id}: member {joined.customer.id} updated")
    return Outcome(f"customer {store_id}: member {joined.customer.id}, nothing new", ignored=True)


# --- privacy (Shopify's mandatory compliance topics) -------------------------------------------------


def export_data_request(event: StoreEvent, context: StoreContext) -> Outcome:
    """customers/data_request: everything held about the customer in a JSON file for the merchant to hand
    over (listed by `data_request_files`)."""
    payload = _payload(event)
    customer_id = _requested_customer(context.database, payload)
    store_customer = (payload.get("customer") or {}).get("id")
    if store_customer is not None:  # a later customers/redact blanks this delivery too
        with context.database.session(write=True) as session:
            session.execute(update(StoreEvent).where(StoreEvent.id == event.id)
                            .values(resource=f"customer:{str(store_customer)[:64]}")
                            .execution_options(synchronize_session=False))
    request_id = _SAFE.sub("-", str((payload.get("data_request") or {}).get("id") or event.id).lower())[:40]
    now = context.now()
    if customer_id is None:
        data: Dict[str, Any] = {"format": "rapport.customer-data.v1", "exported_at": now.isoformat(),
                                "customer": None, "note": "no data is held about this customer"}
    else:
        with context.database.session() as session:
            data = export_customer_data(session, customer_id, now=now)
    data["request"] = {"source": SOURCE, "shop": event.shop, "data_request_id": request_id,
                       "shopify_customer_id": (payload.get("customer") or {}).get("id"),
                       "orders_requested": payload.get("orders_requested") or []}
    folder = context.settings.data_dir / EXPORTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{SOURCE}-{_SAFE.sub('-', event.shop.lower())}-{request_id}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(partial, path)  # whole or not at all
    who = f"member {customer_id}" if customer_id is not None else "no member"
    log.info("privacy.data_request_exported", shop=event.shop, customer_id=customer_id, file=path.name)
    return Outcome(f"data request for {who} exported to {path.name}")


def redact_customer(event: StoreEvent, context: StoreContext) -> Outcome:
    """customers/redact: the existing erasure (bot/privacy.py), and the deliveries that carried their data."""
    payload = _payload(event)
    customer_id = _requested_customer(context.database, payload)
    store_customer = (payload.get("customer") or {}).get("id")
    orders = [str(item) for item in _list(payload.get("orders_to_redact"))]
    resources = [f"order:{order}" for order in orders] + ([f"customer:{store_customer}"] if store_customer else [])
    if customer_id is not None:
        try:
            erase_customer_everywhere(context.database, context.settings, customer_id,
                                      actor=f"shopify customers/redact ({event.shop})", now=context.now())
        except UnknownCustomer:
            customer_id = None
    with context.database.session(write=True) as session:
        blanked = _blank_payloads(session, event.shop, resources, keep=event.id)
        session.execute(update(StoreEvent).where(StoreEvent.id == event.id).values(payload="{}")
                        .execution_options(synchronize_session=False))
    who = f"member {customer_id} erased" if customer_id is not None else "no such member here"
    return Outcome(f"customer redacted: {who}; {blanked} stored deliveries blanked")


def redact_shop(event: StoreEvent, context: StoreContext) -> Outcome:
    """shop/redact: what this integration holds of the shop — its deliveries, its order ids and its data
    request files. The loyalty program's members stay: they are the merchant's own, who runs Rapport."""
    with context.database.session(write=True) as session:
        events = session.execute(delete(StoreEvent).where(
            StoreEvent.source == SOURCE, StoreEvent.shop == event.shop, StoreEvent.id != event.id)
            .execution_options(synchronize_session=False)).rowcount or 0
        refs = session.execute(delete(StoreOrderRef).where(
            StoreOrderRef.source == SOURCE, StoreOrderRef.shop == event.shop)
            .execution_options(synchronize_session=False)).rowcount or 0
        session.execute(update(StoreEvent).where(StoreEvent.id == event.id).values(payload="{}")
                        .execution_options(synchronize_session=False))
    files = 0
    for path in data_request_files(context.settings, shop=event.shop):
        path.unlink(missing_ok=True)
        files += 1
    log.info("privacy.shop_redacted", shop=event.shop, events=events, order_refs=refs, files=files)
    return Outcome(f"shop redacted: {events} deliveries, {refs} order ids, {files} data request files")


def data_request_files(settings: Settings, *, shop: Optional[str] = None) -> List[Path]:
    """The data request exports waiting for the merchant, newest first (of one shop when given)."""
    folder = settings.data_dir / EXPORTS_FOLDER
    if not folder.is_dir():
        return []
    prefix = f"{SOURCE}-{_SAFE.sub('-', shop.lower())}-" if shop else ""
    found = [path for path in folder.glob("*.json") if path.name.startswith(prefix)]
    return sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)


def _requested_customer(database: Database, payload: Mapping[str, Any]) -> Optional[int]:
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    with database.session() as session:
        found = customer_by_store_id(session, str(customer["id"])) if customer.get("id") is not None else None
        if found is None and _text(customer.get("email")):
            found = customer_by_email(session, _text(customer.get("email")))
        return found.id if found is not None else None


def _blank_payloads(session: Session, shop: str, resources: Sequence[str], *, keep: int) -> int:
    """Empty the stored payloads of these resources' deliveries; pending ones are then ignored."""
    if not resources:
        return 0
    about = (StoreEvent.source == SOURCE, StoreEvent.shop == shop, StoreEvent.resource.in_(list(resources)),
             StoreEvent.id != keep)
    session.execute(update(StoreEvent).where(*about, StoreEvent.state == "pending")
                    .values(state="ignored", outcome="redacted before it was applied", next_attempt_at=None)
                    .execution_options(synchronize_session=False))
    return int(session.execute(update(StoreEvent).where(*about).values(payload="{}")
                               .execution_options(synchronize_session=False)).rowcount or 0)


# --- reading payloads --------------------------------------------------------------------------------


def _payload(event: StoreEvent) -> Dict[str, Any]:
    try:
        payload = json.loads(event.payload)
    except ValueError:
        raise PayloadError(f"{event.topic}: the body is not JSON") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"{event.topic}: the body is not a JSON object")
    return payload


def _store_id(payload: Mapping[str, Any], field: str) -> str:
    value = payload.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip():
        raise PayloadError(f"{field} is missing")
    return str(value).strip()[:64]


def _moment(value: Any) -> Optional[datetime]:
    """Shopify's ISO 8601 times ("2021-12-31T19:00:00-05:00") in UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _money(value: Any, what: str) -> Decimal:
    """Shopify's amounts ("403.00"), to the cent; PayloadError for anything but a number of at least 0."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{what} {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise PayloadError(f"{what} {value!r} is not an amount")
    return amount.quantize(_CENT)


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _name(value: Any) -> Optional[str]:
    return _text(value)[:100] or None
