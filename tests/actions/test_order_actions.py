"""Where is my order, on real trackers against the seeded store: the order's real state as the store reported it —
including the tracking link from a Shopify fulfilment webhook delivered through the real endpoint."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.handoff import ActionRequestHandoff
from actions.orders import ActionOrderStatus
from bot.db import get_database
from bot.identity import link_identity
from bot.loyalty.orders import Tracking
from bot.loyalty.program import get_program
from bot.models import Customer, HandoffRequest, StoreEvent
from bot.order_events import (
    Fulfilment, PaidOrder, Refund, record_cancellation, record_fulfilment, record_paid, record_refund,
)
from bot.order_status import order_number_in
from bot.settings import PROJECT_ROOT, Settings
from bot.web import create_app
from tests.actions.conftest import make_tracker

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "shopify" / "webhooks"


async def _reply(text: str, sender: str = "alice", entities=None) -> dict:
    dispatcher = CollectingDispatcher()
    events = await ActionOrderStatus().run(dispatcher, make_tracker(sender, text, "order_status", entities=entities), {})
    assert events == []
    [message] = dispatcher.messages
    return message


def _titles(message: dict) -> list:
    return [button["title"] for button in message.get("buttons") or []]


async def test_the_latest_order_on_its_way_is_told_paid_and_not_shipped_yet(demo_store) -> None:
    message = await _reply("wheres my stuff")
    assert message["text"].startswith("Order #1042 ($189.00, placed ")
    assert "paid and being prepared — it hasn't shipped yet" in message["text"]


async def test_a_named_order_is_found_with_its_carrier_tracking_number_and_link(demo_store) -> None:
    with demo_store.session(write=True) as session:
        record_fulfilment(session, Fulfilment("1017", datetime.now(timezone.utc) - timedelta(days=100),
                                              Tracking("DHL", "JD014600006203", "https://www.dhl.com/track?id=JD014600006203")))
    message = await _reply("order #1017 status")
    assert message["text"].startswith("Order #1017 ($214.50")
    assert "has shipped with DHL" in message["text"] and "Tracking number: JD014600006203." in message["text"]
    assert "https://www.dhl.com/track?id=JD014600006203" in message["text"]
    assert message["buttons"] == [{"title": "Track my parcel", "url": "https://www.dhl.com/track?id=JD014600006203",
                                   "type": "web_url"}]
    # Another shopper's order is not found on this account, and nothing about it is said.
    other = await _reply("has 1055 shipped?")
    assert other["text"].startswith("I can't find an order #1055 on your account.")
    assert "315" not in other["text"] and "#1042" in other["text"]


async def test_a_button_names_the_order_by_its_entity(demo_store) -> None:
    message = await _reply("/order_status", entities={"order_number": "1001"})
    assert message["text"].startswith("Order #1001 ($129.00")


async def test_partly_refunded_cancelled_and_fully_refunded_orders_say_so_and_when(demo_store) -> None:
    with demo_store.session(write=True) as session:
        program = get_program()
        now = datetime.now(timezone.utc)
        record_refund(session, program, Refund("1042", "r-1", Decimal("39.00"), at=now - timedelta(days=2)))
        record_cancellation(session, program, "1050", at=now - timedelta(days=1))
        record_refund(session, program, Refund("1055", "r-2", Decimal("315.00"), at=now - timedelta(days=3)))
    partly = await _reply("did my order ship yet")
    assert "hasn't shipped yet" in partly["text"] and "$39.00 of it was refunded on " in partly["text"]
    assert "Last update: " in partly["text"]
    cancelled = await _reply("where is my order", sender="bob")
    assert cancelled["text"].startswith("Order #1050 ($89.00") and "was cancelled on " in cancelled["text"]
    assert "$89.00 was refunded to you" in cancelled["text"]
    refunded = await _reply("order 1055?", sender="chloe")
    assert "was refunded in full ($315.00) on " in refunded["text"]


async def test_several_orders_on_their_way_are_offered_as_buttons(demo_store) -> None:
    with demo_store.session(write=True) as session:
        program = get_program()
        now = datetime.now(timezone.utc)
        record_paid(session, program, PaidOrder("1077", 1, Decimal("45.00"), now - timedelta(days=2)))
    message = await _reply("any update on my delivery?")
    assert "you have 2 orders on their way: #1077" in message["text"] and "#1042" in message["text"]
    assert [button["payload"] for button in message["buttons"]] == [
        '/order_status{"order_number": "1077"}', '/order_status{"order_number": "1042"}']


async def test_no_orders_yet_says_so(demo_store) -> None:
    message = await _reply("where is my order", sender="dev")
    assert message["text"] == ("Dev, I don't see any orders on your account yet. Once you've ordered, ask me here "
                               "and I'll tell you where it is.")


async def test_a_late_parcel_offers_a_person(demo_store) -> None:
    with demo_store.session(write=True) as session:
        record_fulfilment(session, Fulfilment("1042", datetime.now(timezone.utc) - timedelta(days=20),
                                              Tracking("UPS", "1Z999AA10123456784")))
    message = await _reply("my order still hasnt arrived")
    assert "Shall I get a person from our team to look into it?" in message["text"]
    button = {"title": "Yes, get a person", "payload": '/human_handoff{"order_number": "1042"}'}
    assert button in message["buttons"]
    # Tapping it, then confirming: the request names the order and why.
    history = [
        {"event": "user", "text": "my order still hasnt arrived", "input_channel": "rest",
         "parse_data": {"intent": {"name": "order_status"}, "entities": []}},
        {"event": "bot", "text": message["text"]},
        {"event": "user", "text": button["payload"], "input_channel": "rest",
         "parse_data": {"intent": {"name": "human_handoff"},
                        "entities": [{"entity": "order_number", "value": "1042"}]}},
        {"event": "bot", "text": "Shall I pass this conversation to a person?"},
    ]
    await ActionRequestHandoff().run(CollectingDispatcher(), make_tracker("alice", "yes", "affirm", history=history), {})
    with demo_store.session() as session:
        request = session.execute(select(HandoffRequest)).scalar_one()
    assert request.reason == "Order #1042: my order still hasnt arrived"
    assert any("Order #1042" in turn["text"] for turn in request.last_messages)
    plain = await _reply("where is my order")  # only asking where: no alarm
    assert "get a person" not in plain["text"]


async def test_a_guest_is_told_how_to_link_or_to_give_number_and_email(demo_store) -> None:
    message = await _reply("where is my order", sender="guest-7")
    assert "link code" in message["text"] and "order number and the email" in message["text"]
    assert "1042" not in message["text"].replace("#1042 you@example.com", "")
    asked = await _reply("has #1042 shipped", sender="guest-7")
    assert "I also need the email address you ordered with" in asked["text"]
    found = await _reply("#1042 alice.moreau@example.com", sender="guest-7")
    assert found["text"].startswith("Order #1042 ($189.00")
    # A wrong email and an order that does not exist get the same words.
    wrong_email = await _reply("#1042 bob.okafor@example.com", sender="guest-7")
    no_such = await _reply("#9931 bob.okafor@example.com", sender="guest-7")
    assert wrong_email["text"].replace("1042", "N") == no_such["text"].replace("9931", "N")
    assert "189" not in wrong_email["text"]


def test_order_numbers_are_read_the_way_shoppers_write_them() -> None:
    assert order_number_in("order #1042 status") == "1042"
    assert order_number_in("has 1042 shipped?") == "1042"
    assert order_number_in("wheres order no. 1017") == "1017"
    assert order_number_in("#1042 ann.lee@example.com") == "1042"
    assert order_number_in("wheres my stuff") is None
    assert order_number_in("i ordered 2 lamps for $120.00 10 days ago") is None


async def test_the_tracking_link_from_a_shopify_fulfilment_webhook_is_what_the_shopper_is_told(
        demo_store, tmp_path: Path) -> None:
    secret = "shpss_demo"
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path / "var"), "LOYALTY_JOBS_INTERVAL_MINUTES": "0",
                                  "SHOPIFY_WEBHOOK_SECRETS": f"rapport-demo.myshopify.com={secret}"})
    app = create_app(settings, get_database(), program=get_program())
    async with TestClient(TestServer(app)) as client:
        for topic, name in (("orders/paid", "orders-paid"), ("fulfillments/create", "fulfillments-create"),
                            ("fulfillments/update", "fulfillments-update")):
            # Alice's demo order is #1042 already: Ann's is #2042 here.
            body = (FIXTURES / f"{name}.json").read_bytes().replace(b'"#1042"', b'"#2042"')
            signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
            response = await client.post("/webhooks/shopify", data=body, headers={
                "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": "rapport-demo.myshopify.com",
                "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Event-Id": name, "Content-Type": "application/json"})
            assert response.status == 200
        for _ in range(400):
            with demo_store.session() as session:
                if not session.execute(select(StoreEvent).where(StoreEvent.state == "pending")).first():
                    break
            await asyncio.sleep(0.05)
    with demo_store.session(write=True) as session:
        ann = session.execute(select(Customer).where(Customer.email == "ann.lee@example.com")).scalar_one()
        link_identity(session, ann.id, "rest", "ann")
    message = await _reply("did my order ship yet", sender="ann")
    assert message["text"].startswith("Order #2042 ($403.00")
    assert "has shipped with UPS" in message["text"] and "Tracking number: 1Z999AA10123456785." in message["text"]
    url = "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z999AA10123456785"
    assert url in message["text"] and {"title": "Track my parcel", "url": url, "type": "web_url"} in message["buttons"]
