"""Advocacy with the trained model, the real action server, the web app and the Telegram channel: an
advocate's link and status, friends who come through a link on one device and order on another or
through a Telegram deep link, a review and a video in chat, a follow claim, and the merchant's approvals
through the CLI."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any, Dict, List, Tuple

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from sqlalchemy import select

from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.models import ContentSubmission, Customer, LedgerEntry, Referral, Review
from bot.settings import PROJECT_ROOT, Settings
from bot.web.app import create_app
from tests.e2e.test_conversations import Conversation
from tests.e2e.test_telegram_e2e import TelegramChat, texts as telegram_texts

pytestmark = pytest.mark.e2e


def _database(e2e_env: Dict[str, str]) -> Database:
    return Database(Settings.from_env(e2e_env).database_url)


def _member(e2e_env: Dict[str, str], first_name: str) -> Tuple[int, str]:
    """A new customer chatting on the REST channel: (customer id, sender id)."""
    sender = f"{first_name.lower()}-{uuid.uuid4().hex[:8]}"
    database = _database(e2e_env)
    try:
        with database.session(write=True) as session:
            customer = create_customer(session, f"{sender}@example.com", first_name)
            link_identity(session, customer.id, "rest", sender)
            return customer.id, sender
    finally:
        database.dispose()


def _text(replies: List[dict]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies if reply.get("text"))


class StoreApi:
    """The web app in-process (aiohttp test client) on the end-to-end store, as the shop's backend calls it."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: Dict[str, Any]) -> Tuple[int, Dict[str, Any]]:
        response = await self.client.post(path, json=body, headers=self.headers)
        return response.status, await response.json()


@pytest.fixture()
async def store_api(e2e_env: Dict[str, str]):
    app = create_app(Settings.from_env(e2e_env))
    async with TestClient(TestServer(app)) as client:
        yield StoreApi(client, e2e_env["STORE_API_TOKEN"])


def _cli(e2e_env: Dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=PROJECT_ROOT, env=e2e_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_friend_clicks_on_one_device_orders_on_another_and_the_advocate_is_rewarded_once(
    agent, e2e_env, store_api: StoreApi
) -> None:
    advocate_id, sender = _member(e2e_env, "Maya")
    maya = Conversation(agent, sender)
    link_reply = await maya.text("I want to refer a friend")
    match = re.search(r"/r/([A-Z0-9]{10})\b", link_reply)
    assert match, link_reply
    code = match.group(1)

    # The friend opens the link on their phone: the click is recorded and they land on the store with
    # their own discount code.
    response = await store_api.client.get(f"/r/{code}", allow_redirects=False,
                                          headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert response.status == 302
    offer = re.search(r"discount=(FRIEND-[A-Z0-9-]+)", response.headers["Location"]).group(1)

    # ...and orders on a laptop days later, typing the code at checkout (another IP, no cookie).
    status, joined = await store_api.post("/api/customers", {"email": f"friend-{uuid.uuid4().hex[:6]}@example.com",
                                                             "first_name": "Jonas"})
    assert status == 201
    order = {"event": "paid", "order_id": f"R-{uuid.uuid4().hex[:8]}", "customer": {"id": joined["id"]},
             "total": "84.00", "currency": "USD", "discount_codes": [offer], "client_ip": "198.51.100.23",
             "shipping_address": {"address1": "9 Elm Road", "city": "Leeds", "zip": "LS1 4AP", "country": "GB"}}
    status, paid = await store_api.post("/api/orders", order)
    assert status == 201 and paid["referral"]["status"] == "rewarded", paid
    status, again = await store_api.post("/api/orders", order)  # the store reports it twice
    assert status == 200 and again["created"] is False

    database = _database(e2e_env)
    try:
        with database.session() as session:
            credits = session.execute(select(LedgerEntry).where(LedgerEntry.customer_id == advocate_id,
                                                                LedgerEntry.source == "referral")).scalars().all()
    finally:
        database.dispose()
    assert [entry.points for entry in credits] == [500]

    status_reply = await maya.text("how are my referrals doing?")
    assert "• 1 visit through your link" in status_reply and "1 successful referral — 500 points earned" in status_reply
    points_reply = await maya.text("how many points do I have?")
    assert "first order" in points_reply and "you have 500 points" in points_reply, points_reply


async def test_a_friend_from_a_telegram_deep_link_is_credited_when_their_linked_account_orders(
    agent, rasa_server, e2e_env, platform_fakes, store_api: StoreApi
) -> None:
    advocate_id, sender = _member(e2e_env, "Priya")
    link_reply = await Conversation(agent, sender).text("give me my referral link")
    code = re.search(r"/r/([A-Z0-9]{10})\b", link_reply).group(1)

    friend = TelegramChat(e2e_env, platform_fakes)
    welcome = telegram_texts(friend.say(f"/start ref_{code}"))
    assert "Priya invited you" in welcome and "FRIEND-" in welcome, welcome

    # The friend joins on the store's site and links this chat with a one-time code from their account page.
    status, joined = await store_api.post("/api/customers", {"email": f"tg-friend-{uuid.uuid4().hex[:6]}@example.com"})
    assert status == 201
    status, token = await store_api.post("/api/link-tokens", {"customer": {"id": joined["id"]}})
    linked = telegram_texts(friend.say(f"/start {token['telegram_start_parameter']}"))
    assert "linked to your" in linked, linked

    # Their first order carries no code at all: the chat's referral is found through the linked chat.
    status, paid = await store_api.post("/api/orders", {
        "event": "paid", "order_id": f"T-{uuid.uuid4().hex[:8]}", "customer": {"id": joined["id"]},
        "total": "45.00", "currency": "USD"})
    assert status == 201 and paid["referral"]["status"] == "rewarded", paid

    database = _database(e2e_env)
    try:
        with database.session() as session:
            referral = session.execute(select(Referral).where(Referral.advocate_id == advocate_id)).scalar_one()
            assert (referral.source, referral.friend_customer_id, referral.points_awarded) == ("telegram", joined["id"], 500)
    finally:
        database.dispose()


async def test_a_review_in_chat_is_approved_by_the_merchant_and_the_points_follow(agent, e2e_env) -> None:
    customer_id, sender = _member(e2e_env, "Ines")
    database = _database(e2e_env)
    try:
        with database.session(write=True) as session:
            from bot.loyalty.orders import LineInput, record_paid_order
            from bot.loyalty.program import load_program
            from bot import clock

            program = load_program(Settings.from_env(e2e_env).program_file)
            record_paid_order(session, program, customer_id, f"V-{uuid.uuid4().hex[:8]}", Decimal("119.00"),
                              clock.now(), lines=[LineInput("Fold oak side table", 1, Decimal("119.00"), "OE-TB-001")])
    finally:
        database.dispose()
    chat = Conversation(agent, sender)
    replies = await chat.say("I'd like to write a review")
    buttons = {b["title"]: b["payload"] for reply in replies for b in reply.get("buttons") or []}
    assert "Fold oak side table" in buttons, replies
    assert "How many stars would you give the Fold oak side table?" in _text(await chat.say(buttons["Fold oak side table"]))
    assert "what did you think of it?" in _text(await chat.say("4"))
    assert "photo or a short video" in _text(await chat.say("Sturdy and the oak top is lovely. Assembly took ten minutes."))
    thanks = _text(await chat.say("/skip_question"))
    assert "Your review of the Fold oak side table is with our team" in thanks and "100 points" in thanks, thanks

    database = _database(e2e_env)
    try:
        with database.session() as session:
            review = session.execute(select(Review).where(Review.customer_id == customer_id)).scalar_one()
    finally:
        database.dispose()
    assert (review.rating, review.status) == (4, "pending")
    listed = _cli(e2e_env, "reviews", "list", "--status", "pending")
    assert "Fold oak side table" in listed
    _cli(e2e_env, "reviews", "approve", str(review.id), "--by", "maya")
    points = await chat.text("how many points do I have?")
    assert "Fold oak side table" in points and "100 points" in points, points


async def test_a_video_and_a_follow_claim_wait_for_approval(agent, e2e_env) -> None:
    customer_id, sender = _member(e2e_env, "Tomas")
    output = CollectingOutputChannel()
    video = {"content": {"kind": "video", "channel": "instagram", "urls": ["https://cdn.example.com/unboxing.mp4"],
                         "caption": "unboxing my rug"}}
    await agent.handle_message(UserMessage("/submit_content", output, sender, input_channel="rest", metadata=video))
    assert "I've saved your video for our team to review" in _text(output.messages), output.messages

    chat = Conversation(agent, sender)
    claim = await chat.text("I followed you on Instagram as @tomas.home")
    assert "Thanks for following us on Instagram!" in claim, claim
    database = _database(e2e_env)
    try:
        with database.session() as session:
            submission = session.execute(select(ContentSubmission).where(ContentSubmission.customer_id == customer_id)).scalar_one()
            assert session.get(Customer, customer_id).points_balance == 0
    finally:
        database.dispose()
    _cli(e2e_env, "content", "approve", str(submission.id), "--by", "maya")
    news = await chat.text("what's my points balance?")
    assert "100 points" in news and "you have 100 points" in news, news
