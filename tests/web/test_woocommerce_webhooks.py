"""POST /webhooks/woocommerce: WooCommerce-shaped payloads (tests/fixtures/woocommerce/) signed as WooCommerce signs
them, through the real endpoint into the real database. Unsigned or forged deliveries write nothing, the ping
a new webhook sends is answered, a state delivered twice counts once, and arrival order does not matter."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Optional, Tuple

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.db import Database
from bot.loyalty.program import Program
from bot.models import Customer, LedgerEntry, Order, StoreEvent
from bot.settings import PROJECT_ROOT
from bot.web import create_app
from tests.web.conftest import Api, web_settings

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "woocommerce"
SECRET = "wc-webhook-secret-for-tests"
HISTORY = [("order.created", "order-created"), ("order.updated", "order-updated-processing"),
           ("order.updated", "order-updated-completed"), ("order.updated", "order-updated-refund"),
           ("order.updated", "order-updated-cancelled")]


def fixture(name: str) -> Dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class WooCommerce:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.sent = 0

    async def deliver(self, topic: Optional[str], payload: Any, *, secret: Optional[str] = SECRET,
                      signature: Optional[str] = None) -> Tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.sent += 1
        headers = {"Content-Type": "application/json", "X-WC-Webhook-Source": "https://shop.example/",
                   "X-WC-Webhook-ID": "3", "X-WC-Webhook-Delivery-ID": f"{self.sent:032x}"}
        if topic is not None:
            resource, _, event = topic.partition(".")
            headers.update({"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
                            "X-WC-Webhook-Event": event})
        if signature is not None:
            headers["X-WC-Webhook-Signature"] = signature
        elif secret is not None:
            headers["X-WC-Webhook-Signature"] = base64.b64encode(
                hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        response = await self.api.client.post("/webhooks/woocommerce", data=body, headers=headers)
        return response.status, await response.json()

    async def settled(self, timeout: float = 60.0) -> None:
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
async def woo(any_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[WooCommerce]:
    app = create_app(web_settings(tmp_path, WOOCOMMERCE_WEBHOOK_SECRET=SECRET), any_db, program=program)
    async with TestClient(TestServer(app)) as client:
        yield WooCommerce(Api(client, any_db))


async def test_the_ping_of_a_new_webhook_is_answered_and_writes_nothing(woo: WooCommerce) -> None:
    status, reply = await woo.deliver(None, b"webhook_id=3", secret=None)
    assert (status, reply) == (200, {"received": True, "ping": True})
    assert woo.api.count(StoreEvent) == 0


@pytest.mark.parametrize("case", ["missing", "forged", "other_secret"])
async def test_a_delivery_without_the_stores_signature_is_refused_and_writes_nothing(woo: WooCommerce, case: str) -> None:
    body = (FIXTURES / "order-updated-processing.json").read_bytes()
    if case == "missing":
        status, _ = await woo.deliver("order.updated", body, secret=None)
    elif case == "forged":
        status, _ = await woo.deliver("order.updated", body, signature="5poyFy4qB6fdvvT5pGbefZmfkpL48uD47F0WYwfmpo4=")
    else:
        status, _ = await woo.deliver("order.updated", body, secret="someone-elses")
    assert status == 401
    assert woo.api.count(StoreEvent) == 0 and woo.api.count(Order) == 0


async def test_a_paid_order_earns_once_whatever_the_number_of_deliveries(woo: WooCommerce) -> None:
    payload = fixture("order-updated-processing")
    replies = await asyncio.gather(*(woo.deliver("order.updated", payload) for _ in range(10)))
    assert all(status == 200 for status, _ in replies) and sum(not reply["duplicate"] for _, reply in replies) == 1
    await woo.deliver("order.created", fixture("order-created"))  # pending: not paid yet, nothing to record
    await woo.settled()
    with woo.api.db.session() as session:
        order = session.execute(select(Order)).scalar_one()
        customer = session.get(Customer, order.customer_id)
        assert (order.external_id, order.status, order.points_earned) == ("4750", "paid", 2015)
        assert (customer.email, customer.external_id) == ("ann.lee@example.com", "26")
        earned = session.execute(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "earn",
                                                                                      LedgerEntry.source == "order")
                                 ).scalar_one()
    assert earned == 1
    woo.api.assert_ledger_consistent()


async def test_the_history_ends_the_same_in_any_order_of_arrival(woo: WooCommerce) -> None:
    history = [(topic, fixture(name)) for topic, name in HISTORY]
    rng = random.Random(4750)
    orders = [list(range(len(history))), list(reversed(range(len(history))))]
    orders += [rng.sample(range(len(history)), len(history)) for _ in range(4)]
    for number, permutation in enumerate(orders, start=1):
        for index in permutation:
            topic, payload = history[index]
            payload = dict(payload, number=f"9{number:03d}", id=9000 + number)
            assert (await woo.deliver(topic, payload))[0] == 200
    await woo.settled()
    with woo.api.db.session() as session:
        for number, permutation in enumerate(orders, start=1):
            order = session.execute(select(Order).where(Order.external_id == f"9{number:03d}")).scalar_one()
            ledger = session.execute(select(func.sum(LedgerEntry.points))
                                     .where(LedgerEntry.source_ref == order.external_id)).scalar_one()
            assert (order.status, order.refunded_total, order.points_earned, ledger) == ("cancelled", 403, 2015, 0), \
                permutation
            assert order.fulfilled_at == datetime(2026, 5, 3, 13, 12, 5, tzinfo=timezone.utc)
            assert (order.tracking_company, order.tracking_number) == ("UPS", "1Z999AA10123456784")
    woo.api.assert_ledger_consistent()


async def test_a_new_customer_joins_the_program(woo: WooCommerce) -> None:
    assert (await woo.deliver("customer.created", fixture("customer-created")))[0] == 200
    await woo.settled()
    with woo.api.db.session() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.email, customer.external_id, customer.first_name, customer.points_balance) == (
            "ann.lee@example.com", "26", "Ann", 100)


async def test_other_topics_are_answered_and_ignored(woo: WooCommerce) -> None:
    status, reply = await woo.deliver("product.updated", {"id": 93, "name": "Oak standing desk"})
    assert status == 200 and reply["ignored"] == "topic not handled"
    assert woo.api.count(StoreEvent) == 0
