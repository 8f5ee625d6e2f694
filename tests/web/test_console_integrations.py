"""The console's Integrations page: connected stores with their webhook address and refused deliveries, the event
inbox with a failed event's error and its retry, and the data request files — on the real app and database."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator

import pytest
from sqlalchemy import select

from bot import clock
from bot.db import Database
from bot.integrations import StoreContext, store_topics
from bot.integrations.inbox import MAX_ATTEMPTS, apply_due
from bot.loyalty.program import Program
from bot.models import AuditEvent, StoreEvent
from bot.settings import PROJECT_ROOT
from tests.web.conftest import web_settings
from tests.web.console import Console, console_for, make_merchant

SHOP = "rapport-demo.myshopify.com"
SECRET = "shpss_console_test"
FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "shopify" / "webhooks"


@pytest.fixture()
async def console(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Console]:
    async for value in console_for(sqlite_db, program, tmp_path, SHOPIFY_WEBHOOK_SECRETS=f"{SHOP}={SECRET}"):
        yield value


async def _deliver(console: Console, topic: str, body: bytes, secret: str = SECRET) -> int:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    response = await console.client.post("/webhooks/shopify", data=body, headers={
        "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Event-Id": hashlib.sha1(body).hexdigest(), "Content-Type": "application/json"})
    return response.status


async def test_the_owner_sees_stores_a_failed_event_retries_it_and_downloads_a_data_request(
        console: Console, sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    make_merchant(sqlite_db, "owner@shop.example", "owner")
    paid = json.loads((FIXTURES / "orders-paid.json").read_text())
    paid["currency"] = "EUR"
    assert await _deliver(console, "orders/paid", json.dumps(paid).encode()) == 200
    assert await _deliver(console, "orders/paid", b"{}", secret="forged") == 401
    assert await _deliver(console, "customers/data_request",
                          (FIXTURES / "customers-data_request.json").read_bytes()) == 200
    context = StoreContext(sqlite_db, lambda: program, web_settings(tmp_path), clock.now)
    moment = clock.now()
    for _ in range(MAX_ATTEMPTS + 1):
        moment += timedelta(hours=5)
        apply_due(sqlite_db, store_topics(context), lambda: moment)
    with sqlite_db.session() as session:
        failed = session.execute(select(StoreEvent).where(StoreEvent.topic == "orders/paid")).scalar_one()
        assert failed.state == "failed"

    assert (await console.sign_in("owner@shop.example")).status == 303
    page = await (await console.get("/console/integrations")).text()
    assert "http://localhost:8000/webhooks/shopify" in page and SHOP in page
    assert "failed 1" in page and "applied 1" in page
    assert "1, latest" in page  # the forged delivery
    assert "EUR" in page and f'/console/integrations/events/{failed.id}/retry' in page
    assert "shopify-rapport-demo.myshopify.com-1093.json" in page

    retried = await console.post(f"/console/integrations/events/{failed.id}/retry")
    assert retried.status == 303 and retried.headers["Location"].endswith(f"?retried={failed.id}")
    with sqlite_db.session() as session:
        assert session.get(StoreEvent, failed.id).state == "pending"
    again = await console.post(f"/console/integrations/events/{failed.id}/retry")
    assert again.status == 409

    download = await console.get("/console/integrations/data-requests/shopify-rapport-demo.myshopify.com-1093.json")
    assert download.status == 200 and json.loads(await download.text())["request"]["data_request_id"] == "1093"
    missing = await console.get("/console/integrations/data-requests/..%2F..%2Fsecrets.json")
    assert missing.status == 404
    with sqlite_db.session() as session:
        logged = session.execute(select(AuditEvent.action, AuditEvent.subject).order_by(AuditEvent.id)).all()
    assert [tuple(row) for row in logged] == [("store_event_retried", f"store event {failed.id}"),
                                              ("data_request_downloaded",
                                               "shopify-rapport-demo.myshopify.com-1093.json")]


async def test_an_agent_may_not_open_the_integrations_page(console: Console, sqlite_db: Database) -> None:
    make_merchant(sqlite_db, "agent@shop.example", "agent")
    assert (await console.sign_in("agent@shop.example")).status == 303
    assert (await console.get("/console/integrations")).status == 403
