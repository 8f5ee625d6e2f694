"""The demo store page (GET /demo) of the web app, on a seeded SQLite store."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import AsyncIterator, Dict, Optional

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.db import Database
from bot.demo import seed_demo
from bot.identity.customer_tokens import customer_token
from bot.loyalty.program import Program
from bot.models import Customer
from bot.settings import PROJECT_ROOT
from bot.web import create_app, demo_store
from tests.web.conftest import web_settings

SECRET = "demo-widget-secret"
RASA_PORT = "5123"


def _seeded(database: Database, program: Program) -> Database:
    with database.session(write=True) as session:
        seed_demo(session, program, "https://oak-and-ember.example")
    return database


async def _client(database: Database, program: Program, tmp_path: Path, **env: str) -> TestClient:
    settings = web_settings(tmp_path, RASA_PORT=RASA_PORT, **env)
    client = TestClient(TestServer(create_app(settings, database, program=program)))
    await client.start_server()
    return client


@pytest.fixture()
async def store(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await _client(_seeded(sqlite_db, program), program, tmp_path, WIDGET_SIGNING_SECRET=SECRET)
    yield client
    await client.close()


def _widget_tag(page: str) -> Optional[Dict[str, str]]:
    match = re.search(r"<script ([^>]*)></script>", page)
    if match is None:
        return None
    return {name: html.unescape(value) for name, value in re.findall(r'([\w-]+)="([^"]*)"', match.group(1))}


async def test_the_page_is_a_store_with_the_widget_for_a_guest(store: TestClient) -> None:
    reply = await store.get("/demo")
    page = await reply.text()
    assert reply.status == 200 and reply.content_type == "text/html"
    assert reply.headers["Cache-Control"] == "no-store"
    assert "<title>Oak &amp; Ember — demo store</title>" in page
    assert "Linden lounge chair" in page and "$349.00" in page and "sold out" in page
    assert "Browsing as a guest" in page
    tag = _widget_tag(page)
    # The Rasa server on the host the browser used for this page.
    assert tag == {"src": f"http://127.0.0.1:{RASA_PORT}/webhooks/widget/widget.js", "data-title": "Oak & Ember"}
    for name in ("alice", "bob", "chloe"):
        assert f'href="/demo?as={name}"' in page


def _store_id(database: Database, email: str) -> Optional[str]:
    with database.session() as session:
        return session.execute(select(Customer.external_id).where(Customer.email == email)).scalar_one()


async def test_signed_in_the_page_carries_the_store_id_and_its_customer_token(store: TestClient, sqlite_db: Database) -> None:
    alice_id = _store_id(sqlite_db, "alice.moreau@example.com")
    assert alice_id
    reply = await store.get("/demo", params={"as": "alice"})
    page = await reply.text()
    assert reply.status == 200 and "Signed in as Alice" in page
    tag = _widget_tag(page)
    assert tag is not None and tag["data-customer-id"] == alice_id
    assert tag["data-customer-token"] == customer_token(SECRET, alice_id)
    # Each shopper gets their own id and token.
    tag = _widget_tag(await (await store.get("/demo?as=Bob")).text())
    bob_id = _store_id(sqlite_db, "bob.okafor@example.com")
    assert tag is not None and tag["data-customer-id"] == bob_id != alice_id
    assert tag["data-customer-token"] == customer_token(SECRET, bob_id)


async def test_a_demo_customer_without_a_store_id_is_unavailable_and_nothing_is_written(
        store: TestClient, sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        chloe = session.execute(select(Customer).where(Customer.email == "chloe.tan@example.com")).scalar_one()
        chloe.external_id = None  # a demo shop seeded before the store ids
    before = _all_customers(sqlite_db)
    reply = await store.get("/demo", params={"as": "chloe"})
    page = await reply.text()
    assert reply.status == 200
    assert "Chloe is not in the store database yet" in page and "bot seed --demo" in page
    tag = _widget_tag(page)
    assert tag is not None and "data-customer-id" not in tag and "data-customer-token" not in page  # a guest
    for who in ("guest", "alice"):  # no other page writes either
        assert (await store.get("/demo", params={"as": who})).status == 200
    assert _all_customers(sqlite_db) == before
    assert _store_id(sqlite_db, "chloe.tan@example.com") is None


def _all_customers(database: Database) -> list:
    with database.session() as session:
        return [tuple(row) for row in session.execute(
            select(Customer.id, Customer.email, Customer.external_id).order_by(Customer.id)).all()]


async def test_the_demo_shoppers_have_the_seeded_store_ids(store: TestClient, sqlite_db: Database) -> None:
    for name, store_id in (("alice", "7001001"), ("bob", "7001002"), ("chloe", "7001003"), ("dev", "7001004")):
        tag = _widget_tag(await (await store.get("/demo", params={"as": name})).text())
        assert tag is not None and tag["data-customer-id"] == store_id


async def test_in_production_there_is_no_demo_page(sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    client = await _client(_seeded(sqlite_db, program), program, tmp_path, WIDGET_SIGNING_SECRET=SECRET,
                           RAPPORT_ENV="production")
    try:
        for params in ({}, {"as": "alice"}):
            reply = await client.get("/demo", params=params)
            body = await reply.text()
            assert reply.status == 404 and customer_token(SECRET, "7001001") not in body
        assert (await client.get("/health")).status == 200
    finally:
        await client.close()


async def test_the_handler_itself_refuses_in_production(sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    """Even if the page were routed in production, it would not answer there."""
    settings = web_settings(tmp_path, WIDGET_SIGNING_SECRET=SECRET, RAPPORT_ENV="production")
    app = create_app(settings, _seeded(sqlite_db, program), program=program)
    app.router.add_get("/demo-routed-anyway", demo_store.demo_page)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        reply = await client.get("/demo-routed-anyway", params={"as": "alice"})
        assert reply.status == 404 and "data-customer-token" not in await reply.text()
    finally:
        await client.close()


async def test_an_unknown_shopper_is_a_clear_400(store: TestClient) -> None:
    reply = await store.get("/demo", params={"as": "<script>alert(1)</script>"})
    text = await reply.text()
    assert reply.status == 400 and reply.content_type == "text/plain"
    assert "choose one of guest, alice, bob, chloe, dev" in text


async def test_with_the_widget_off_the_page_says_how_to_turn_it_on(sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    client = await _client(_seeded(sqlite_db, program), program, tmp_path)
    try:
        reply = await client.get("/demo", params={"as": "alice"})
        page = await reply.text()
        assert reply.status == 200 and "The chat widget is off" in page and "WIDGET_SIGNING_SECRET" in page
        assert _widget_tag(page) is None and "data-customer-token" not in page
    finally:
        await client.close()


async def test_an_unseeded_store_still_renders_and_says_what_to_do(sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    client = await _client(sqlite_db, program, tmp_path, WIDGET_SIGNING_SECRET=SECRET)
    try:
        page = await (await client.get("/demo", params={"as": "chloe"})).text()
        assert "Chloe is not in the store database yet" in page and "bot seed --demo" in page
        tag = _widget_tag(page)
        assert tag is not None and "data-customer-id" not in tag  # a guest, not an unknown id
    finally:
        await client.close()


async def test_everything_shown_is_escaped(sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    shop_file = tmp_path / "shop.yml"
    shop_file.write_text((PROJECT_ROOT / "data" / "shop.yml").read_text().replace(
        "name: Oak & Ember", "name: \"Oak <b>& Ember\\\" onload=\\\"x\""))
    client = await _client(_seeded(sqlite_db, program), program, tmp_path, WIDGET_SIGNING_SECRET=SECRET,
                           SHOP_FILE=str(shop_file))
    try:
        page = await (await client.get("/demo")).text()
        assert "<b>" not in page and 'onload="x"' not in page
        assert "Oak &lt;b&gt;&amp; Ember&#34; onload=&#34;x" in page
        tag = _widget_tag(page)
        assert tag is not None and tag["data-title"] == 'Oak <b>& Ember" onload="x'
    finally:
        await client.close()
async def test_a_shopper_without_a_store_id_is_unavailable_in_the_switch(store: TestClient, sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        chloe = session.execute(select(Customer).where(Customer.email == "chloe.tan@example.com")).scalar_one()
        chloe.external_id = None
    page = await (await store.get("/demo")).text()
    assert 'href="/demo?as=chloe"' not in page and "Chloe (unavailable)" in page
    assert 'href="/demo?as=alice"' in page and "Alice (unavailable)" not in page
    assert "Unavailable demo shoppers: Chloe" in page and "bot seed --demo" in page
