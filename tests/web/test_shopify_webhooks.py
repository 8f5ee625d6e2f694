"""POST /webhooks/shopify: Shopify-shaped payloads (tests/fixtures/shopify/webhooks/) signed as Shopify signs them
and replayed through the real endpoint into the real database; the inbox worker of the running app applies them.
Forged deliveries write nothing, a delivery counts once however often and however concurrently it comes, the
order of arrival does not change the result, and a history through the webhooks leaves the store as the same
history through the store API."""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import random
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot import clock
from bot.db import Database
from bot.integrations import StoreContext, store_topics
from bot.integrations.inbox import MAX_ATTEMPTS, apply_due, retry_event
from bot.integrations.shopify import data_request_files
from bot.loyalty.program import Program
from bot.models import Customer, LedgerEntry, Order, OrderRefund, StoreEvent, StoreOrderRef
from bot.settings import PROJECT_ROOT, Settings
from bot.web import create_app
from tests.web.conftest import TOKEN, Api, web_settings

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "shopify" / "webhooks"
SHOP = "rapport-demo.myshopify.com"
SECRET = "shpss_test_secret_for_rapport_demo"
OTHER_SHOP = "other-shop.myshopify.com"
OTHER_SECRET = "shpss_other_shop_secret"
SECRETS = f"{SHOP}={SECRET},{OTHER_SHOP}={OTHER_SECRET}"

# The history of #1042 as Shopify delivers it, in the order it happened.
HISTORY = [("orders/create", "orders-create"), ("orders/paid", "orders-paid"),
           ("fulfillments/create", "fulfillments-create"), ("orders/fulfilled", "orders-fulfilled"),
           ("fulfillments/update", "fulfillments-update"), ("refunds/create", "refunds-create"),
           ("orders/updated", "orders-updated"), ("orders/cancelled", "orders-cancelled")]


def fixture(name: str) -> Dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Shopify:
    """Shopify's side: deliveries to the app, signed with the shop's secret."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.sent = 0

    async def deliver(self, topic: str, payload: Any, *, event_id: Optional[str] = None, shop: str = SHOP,
                      secret: Optional[str] = SECRET, signature: Optional[str] = None) -> Tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.sent += 1
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
                   "X-Shopify-API-Version": "2026-04", "X-Shopify-Webhook-Id": f"webhook-{self.sent}",
                   "X-Shopify-Event-Id": event_id or f"event-{self.sent}",
                   "X-Shopify-Triggered-At": "2026-05-02T18:31:52.000Z"}
        if signature is not None:
            headers["X-Shopify-Hmac-Sha256"] = signature
        elif secret is not None:
            headers["X-Shopify-Hmac-Sha256"] = sign(body, secret)
        response = await self.api.client.post("/webhooks/shopify", data=body, headers=headers)
        return response.status, await response.json()

    async def settled(self, timeout: float = 60.0) -> None:
        """Until the app's worker has applied everything delivered (nothing pending)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.api.db.session() as session:
                pending = session.execute(select(StoreEvent.topic, StoreEvent.last_error)
                                          .where(StoreEvent.state == "pending")).all()
            if not pending:
                return
            assert time.monotonic() < deadline, f"still pending: {pending}"
            await asyncio.sleep(0.05)


@pytest.fixture()
async def shopify(any_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Shopify]:
    app = create_app(web_settings(tmp_path, SHOPIFY_WEBHOOK_SECRETS=SECRETS), any_db, program=program)
    async with TestClient(TestServer(app)) as client:
        yield Shopify(Api(client, any_db))


def states(db: Database) -> List[Tuple[str, str]]:
    with db.session() as session:
        return [tuple(row) for row in session.execute(
            select(StoreEvent.topic, StoreEvent.state).order_by(StoreEvent.id)).all()]


def order_view(db: Database, name: str) -> Dict[str, Any]:
    """What the store holds of one order, without our own write times."""
    with db.session() as session:
        order = session.execute(select(Order).where(Order.external_id == name)).scalar_one()
        ledger = session.execute(select(func.coalesce(func.sum(LedgerEntry.points), 0))
                                 .where(LedgerEntry.source_ref == name)).scalar_one()
        refunded = sum(refund.amount for refund in order.refunds)
        return {"status": order.status, "total": order.total, "refunded_total": order.refunded_total,
                "refunds_add_up": refunded == order.refunded_total, "points_earned": order.points_earned,
                "ledger": int(ledger), "fulfilled_at": order.fulfilled_at,
                "tracking": (order.tracking_company, order.tracking_number, order.tracking_url)}


# --- signatures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "forged", "wrong_shop_secret", "unknown_shop", "body_changed"])
async def test_a_delivery_without_the_shops_signature_is_refused_and_writes_nothing(shopify: Shopify, case: str) -> None:
    body = (FIXTURES / "orders-paid.json").read_bytes()
    if case == "missing":
        status, reply = await shopify.deliver("orders/paid", body, secret=None)
    elif case == "forged":
        status, reply = await shopify.deliver("orders/paid", body, signature=base64.b64encode(b"x" * 32).decode())
    elif case == "wrong_shop_secret":  # another shop's valid secret does not sign for this shop
        status, reply = await shopify.deliver("orders/paid", body, secret=OTHER_SECRET)
    elif case == "unknown_shop":
        status, reply = await shopify.deliver("orders/paid", body, shop="stranger.myshopify.com", secret=SECRET)
    else:
        status, reply = await shopify.deliver("orders/paid", body.replace(b'"403.00"', b'"4030.00"'),
                                              signature=sign(body))
    assert (status, reply) == (401, {"error": "unauthorized"})
    assert shopify.api.count(StoreEvent) == 0 and shopify.api.count(Order) == 0 and shopify.api.count(Customer) == 0


async def test_a_paid_order_is_acknowledged_at_once_and_applied_by_the_worker(shopify: Shopify) -> None:
    status, reply = await shopify.deliver("orders/paid", fixture("orders-paid"))
    assert (status, reply) == (200, {"received": True, "duplicate": False})
    # The 200 comes once the delivery is in the inbox (committed), whether or not it was applied yet.
    with shopify.api.db.session() as session:
        assert session.execute(select(StoreEvent.topic)).scalars().all() == ["orders/paid"]
    await shopify.settled()
    assert states(shopify.api.db) == [("orders/paid", "applied")]
    view = order_view(shopify.api.db, "1042")
    assert view["status"] == "paid" and view["points_earned"] == 2015 and view["ledger"] == 2015
    with shopify.api.db.session() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.email, customer.external_id, customer.first_name) == (
            "ann.lee@example.com", "7204917461082", "Ann")
        order = session.execute(select(Order)).scalar_one()
        assert [line.title for line in order.lines] == ["Oak standing desk", "Brass desk lamp"]
        assert order.shipping_address_hash is not None and order.ip_hash is not None
        assert session.execute(select(StoreOrderRef.order_external_id)).scalar_one() == "1042"
    shopify.api.assert_ledger_consistent()


async def test_the_served_app_applies_in_a_child_process_and_replaces_one_killed(sqlite_db: Database,
                                                                                  tmp_path: Path) -> None:
    """The served web app applies events in a child process (its own interpreter lock, so acknowledging never
    waits for applying's Python); killed with SIGKILL, the child is replaced and the next events apply."""
    settings = web_settings(tmp_path, SHOPIFY_WEBHOOK_SECRETS=SECRETS,
                            DATABASE_URL=f"sqlite:///{tmp_path / 'rapport.db'}")
    app = create_app(settings, apply_store_events_in_child=True)
    async with TestClient(TestServer(app)) as client:
        shopify = Shopify(Api(client, sqlite_db))
        assert (await shopify.deliver("orders/paid", fixture("orders-paid")))[0] == 200
        await shopify.settled()
        children = multiprocessing.active_children()
        assert len(children) == 1 and children[0].pid != os.getpid()
        assert order_view(sqlite_db, "1042")["points_earned"] == 2015

        os.kill(children[0].pid, signal.SIGKILL)
        children[0].join(10)
        second = fixture("orders-paid")
        second["id"], second["name"], second["order_number"] = 820982911946154509, "#1043", 1043
        assert (await shopify.deliver("orders/paid", second))[0] == 200
        await shopify.settled()
        assert states(sqlite_db) == [("orders/paid", "applied"), ("orders/paid", "applied")]
        assert order_view(sqlite_db, "1043")["ledger"] > 0
        replacement = multiprocessing.active_children()
        assert len(replacement) == 1 and replacement[0].pid != children[0].pid
        shopify.api.assert_ledger_consistent()
    # The app's cleanup stops its child.
    assert multiprocessing.active_children() == []


async def test_an_unknown_topic_is_acknowledged_and_ignored(shopify: Shopify) -> None:
    status, reply = await shopify.deliver("products/create", {"id": 788032119674292922, "title": "Example T-Shirt"})
    assert status == 200 and reply["ignored"] == "topic not handled"
    assert shopify.api.count(StoreEvent) == 0


# --- once --------------------------------------------------------------------------------------------


async def test_the_same_event_ten_times_and_ten_times_at_once_is_applied_once(shopify: Shopify) -> None:
    payload = fixture("orders-paid")
    replies = [await shopify.deliver("orders/paid", payload, event_id="evt-paid-1042") for _ in range(10)]
    replies += await asyncio.gather(*(shopify.deliver("orders/paid", payload, event_id="evt-paid-1042")
                                      for _ in range(10)))
    assert all(status == 200 for status, _ in replies)
    assert sum(not reply["duplicate"] for _, reply in replies) == 1
    # Racing ones too: Shopify's retries of another event id carry the same order and change nothing either.
    await asyncio.gather(*(shopify.deliver("orders/paid", payload, event_id=f"evt-retry-{n}") for n in range(10)))
    await shopify.settled()
    assert shopify.api.count(StoreEvent) == 11
    with shopify.api.db.session() as session:
        earned = session.execute(select(func.count()).select_from(LedgerEntry)
                                 .where(LedgerEntry.kind == "earn", LedgerEntry.source_ref == "1042")).scalar_one()
    assert earned == 1 and order_view(shopify.api.db, "1042")["ledger"] == 2015
    shopify.api.assert_ledger_consistent()


# --- order of arrival --------------------------------------------------------------------------------

EXPECTED_END = {
    "status": "cancelled", "total": 403, "refunded_total": 403, "refunds_add_up": True, "points_earned": 2015, "ledger": 0,
    "fulfilled_at": datetime(2026, 5, 3, 13, 12, 5, tzinfo=timezone.utc),
    "tracking": ("UPS", "1Z999AA10123456785",
                 "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z999AA10123456785"),
}


def _renamed(payload: Dict[str, Any], number: int) -> Dict[str, Any]:
    """The same history for another order of the same shopper (its own id and name)."""
    text = json.dumps(payload).replace("5790221451354", f"57902214{number:05d}").replace("#1042", f"#5{number:03d}")
    return json.loads(text)


async def test_the_result_does_not_depend_on_the_order_events_arrive_in(shopify: Shopify) -> None:
    history = [(topic, fixture(name)) for topic, name in HISTORY]
    rng = random.Random(1042)
    orders = [list(range(len(history))), list(reversed(range(len(history))))]
    orders += [rng.sample(range(len(history)), len(history)) for _ in range(10)]
    # Refund before its paid order, and a stale update after a newer one, explicitly.
    orders.append([5, 4, 2, 1, 0, 3, 6, 7])
    orders.append([1, 7, 6, 5, 4, 3, 2, 0])
    for number, permutation in enumerate(orders, start=1):
        for index in permutation:
            topic, payload = history[index]
            status, _ = await shopify.deliver(topic, _renamed(payload, number))
            assert status == 200
    await shopify.settled()
    assert {state for _, state in states(shopify.api.db)} <= {"applied", "ignored"}, states(shopify.api.db)
    for number, permutation in enumerate(orders, start=1):
        view = order_view(shopify.api.db, f"5{number:03d}")
        assert view == EXPECTED_END, (permutation, view)
    shopify.api.assert_ledger_consistent()


async def test_tracking_from_an_older_report_never_replaces_newer_tracking(shopify: Shopify) -> None:
    await shopify.deliver("orders/paid", fixture("orders-paid"))
    await shopify.deliver("fulfillments/update", fixture("fulfillments-update"))
    await shopify.settled()
    await shopify.deliver("fulfillments/create", fixture("fulfillments-create"))  # older: created first, came late
    await shopify.deliver("orders/fulfilled", fixture("orders-fulfilled"))  # carries the older fulfilment too
    await shopify.settled()
    assert order_view(shopify.api.db, "1042")["tracking"][1] == "1Z999AA10123456785"


async def test_a_customer_update_older_than_the_one_applied_changes_nothing(shopify: Shopify) -> None:
    await shopify.deliver("customers/update", fixture("customers-update"))
    await shopify.settled()
    await shopify.deliver("customers/create", fixture("customers-create"))  # older email, arrives late
    await shopify.settled()
    assert states(shopify.api.db) == [("customers/update", "applied"), ("customers/create", "ignored")]
    with shopify.api.db.session() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.email, customer.external_id) == ("ann.lee.home@example.com", "7204917461082")
        assert customer.points_balance == 100  # the signup bonus, once


# --- the same history through the store API ----------------------------------------------------------


async def test_a_history_through_the_webhooks_leaves_the_store_as_the_same_history_through_the_api(
        shopify: Shopify, program: Program, tmp_path: Path) -> None:
    for topic, name in HISTORY:
        await shopify.deliver(topic, fixture(name))
    await shopify.settled()

    other = Database(f"sqlite:///{tmp_path / 'through-the-api.db'}")
    other.create_schema()
    try:
        # The same data folder: the same fingerprint key for the address and IP hashes.
        app = create_app(web_settings(tmp_path), other, program=program)
        async with TestClient(TestServer(app)) as client:
            api = Api(client, other)
            paid = fixture("orders-paid")
            assert (await api.post("/api/customers", {
                "email": "ann.lee@example.com", "external_id": "7204917461082", "first_name": "Ann",
                "last_name": "Lee"})).status == 201
            address = {key: paid["shipping_address"][key] for key in
                       ("address1", "address2", "city", "province", "zip", "country")}
            steps = [
                {"event": "paid", "order_id": "1042", "customer": {"external_id": "7204917461082"},
                 "total": "403.00", "currency": "USD", "placed_at": paid["processed_at"],
                 "lines": [{"sku": line["sku"], "title": line["title"], "quantity": line["quantity"],
                            "unit_price": line["price"]} for line in paid["line_items"]],
                 "shipping_address": address, "client_ip": paid["browser_ip"]},
                {"event": "fulfilled", "order_id": "1042", "fulfilled_at": "2026-05-03T09:12:05-04:00",
                 "tracking": {"company": "UPS", "number": "1Z999AA10123456785",
                              "url": EXPECTED_END["tracking"][2]}},
                {"event": "refunded", "order_id": "1042", "refund_id": "926744854618", "amount": "27.00",
                 "currency": "USD"},
                {"event": "cancelled", "order_id": "1042"},
            ]
            for step in steps:
                reply = await api.post("/api/orders", step)
                assert reply.status == 201, reply.json
    finally:
        through_api = _store(other)
        other.dispose()
    assert _store(shopify.api.db) == through_api


def _store(db: Database) -> Dict[str, Any]:
    with db.session() as session:
        customers = [(c.email, c.external_id, c.first_name, c.last_name, c.points_balance, c.tier_name)
                     for c in session.execute(select(Customer).order_by(Customer.id)).scalars()]
        ledger = sorted((e.points, e.kind, e.reason, e.source, e.source_ref, e.idempotency_key)
                        for e in session.execute(select(LedgerEntry)).scalars())
        orders = [(o.external_id, o.status, o.total, o.refunded_total, o.points_earned, o.placed_at, o.fulfilled_at,
                   o.tracking_company, o.tracking_number, o.tracking_url, o.shipping_address_hash, o.ip_hash,
                   [(line.sku, line.title, line.quantity, line.unit_price) for line in o.lines])
                  for o in session.execute(select(Order)).scalars()]
        refunds = sorted((r.external_id, r.amount, r.points_due, r.points_reversed)
                         for r in session.execute(select(OrderRefund)).scalars())
    return {"customers": customers, "ledger": ledger, "orders": orders, "refunds": refunds}


# --- failures are retried, then shown ----------------------------------------------------------------


async def test_an_event_that_keeps_failing_is_retried_with_backoff_then_failed_and_can_be_retried(
        shopify: Shopify, program: Program, tmp_path: Path) -> None:
    wrong_currency = fixture("orders-paid")
    wrong_currency["currency"] = "EUR"  # not the program's: the order service refuses it
    await shopify.deliver("orders/paid", wrong_currency)
    db = shopify.api.db
    context = StoreContext(db, lambda: program, web_settings(tmp_path), clock.now)
    moment = clock.now()
    for _ in range(MAX_ATTEMPTS + 2):
        moment += timedelta(hours=5)  # past any backoff
        apply_due(db, store_topics(context), lambda: moment)
    with db.session() as session:
        event = session.execute(select(StoreEvent)).scalar_one()
        assert (event.state, event.attempts) == ("failed", MAX_ATTEMPTS)
        assert "EUR" in event.last_error and event.next_attempt_at is None
        assert retry_event(session, event.id, moment)
    with db.session() as session:
        event = session.execute(select(StoreEvent)).scalar_one()
        assert (event.state, event.attempts) == ("pending", 0)
    assert shopify.api.count(Order) == 0


# --- privacy -----------------------------------------------------------------------------------------


async def test_the_privacy_topics_export_erase_and_forget(shopify: Shopify, tmp_path: Path) -> None:
    for topic, name in HISTORY[:4]:
        await shopify.deliver(topic, fixture(name))
    await shopify.settled()
    settings = web_settings(tmp_path)

    await shopify.deliver("customers/data_request", fixture("customers-data_request"))
    await shopify.settled()
    [export] = data_request_files(settings)
    data = json.loads(export.read_text())
    assert data["customer"]["email"] == "ann.lee@example.com"
    assert [order["external_id"] for order in data["orders"]] == ["1042"]
    assert data["orders"][0]["tracking_number"] == "1Z999AA10123456784"
    assert sum(entry["points"] for entry in data["ledger"]) == 2215  # the signup bonus, the order and the Silver entry bonus
    assert data["request"]["data_request_id"] == "1093"

    await shopify.deliver("customers/redact", fixture("customers-redact"))
    await shopify.settled()
    with shopify.api.db.session() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.email, customer.external_id, customer.first_name, customer.points_balance) == (
            None, None, None, 0)
        payloads = session.execute(select(StoreEvent.topic, StoreEvent.payload)).all()
    assert all("ann.lee@example.com" not in payload for _, payload in payloads), payloads

    await shopify.deliver("shop/redact", fixture("shop-redact"))
    await shopify.settled()
    assert states(shopify.api.db) == [("shop/redact", "applied")]
    assert shopify.api.count(StoreOrderRef) == 0 and data_request_files(settings) == []


async def test_erasing_a_customer_from_the_console_empties_their_stored_deliveries(shopify: Shopify) -> None:
    from bot.privacy import erase_customer

    for topic, name in HISTORY[:3]:
        await shopify.deliver(topic, fixture(name))
    await shopify.deliver("customers/update", fixture("customers-update"))
    await shopify.settled()
    with shopify.api.db.session(write=True) as session:
        customer = session.execute(select(Customer)).scalar_one()
        report = erase_customer(session, customer.id, actor="owner@shop.example", now=clock.now())
    assert report.anonymised["store_events"] == 4
    with shopify.api.db.session() as session:
        payloads = session.execute(select(StoreEvent.payload)).scalars().all()
    assert payloads == ["{}"] * 4
