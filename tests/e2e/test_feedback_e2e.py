"""Feedback with the trained model and the real action server: a shopper starts it in their own words
and is asked about their latest order; a Telegram shopper is asked "How was your order #…?" by the bot
itself (the scheduled request, pushed by the Rasa server's notice delivery), taps a low score, says why,
gets an apology and a person. Feedback, transcripts and the handoff request are checked in the store."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any, Dict, List, Tuple

import pytest
from sqlalchemy import select

from bot import clock
from bot.db import Database
from bot.feedback.requests import dedupe_key, run_feedback_requests
from bot.identity import create_customer, link_identity
from bot.loyalty.program import load_program
from bot.models import Feedback, HandoffRequest, Order, OutboundMessage, Transcript
from bot.outbox.policy import ProactivePolicy
from bot.outbox.service import route_due_messages
from bot.settings import Settings
from tests.e2e.test_conversations import Conversation
from tests.e2e.test_telegram_e2e import TelegramChat, texts as telegram_texts
from tests.fakes.threaded import ThreadedServers

pytestmark = pytest.mark.e2e

PUSH_TIMEOUT_SECONDS = 120  # the notice delivery ticks every 30 s (NOTICE_DELIVERY_SECONDS default)


def _database(e2e_env: Dict[str, str]) -> Database:
    return Database(Settings.from_env(e2e_env).database_url)


def _member_with_order(e2e_env: Dict[str, str], channel: str, sender: str, fulfilled_days_ago: float = 4) -> Tuple[int, int, str]:
    """A new customer chatting on `channel` with one paid order fulfilled a few days ago."""
    external_id = f"F-{uuid.uuid4().hex[:6]}"
    database = _database(e2e_env)
    try:
        with database.session(write=True) as session:
            customer = create_customer(session, f"{uuid.uuid4().hex[:8]}@example.com", "Noor")
            link_identity(session, customer.id, channel, sender)
            order = Order(external_id=external_id, customer_id=customer.id, total=Decimal("79.00"), currency="USD",
                          status="paid", placed_at=clock.now() - timedelta(days=8),
                          fulfilled_at=clock.now() - timedelta(days=fulfilled_days_ago))
            session.add(order)
            session.flush()
            return customer.id, order.id, external_id
    finally:
        database.dispose()


def _buttons(replies: List[Dict[str, Any]]) -> Dict[str, str]:
    return {button["title"]: button["payload"] for reply in replies for button in reply.get("buttons") or []}


def _text(replies: List[Dict[str, Any]]) -> str:
    return "\n".join(reply.get("text", "") for reply in replies if reply.get("text"))


async def test_feedback_in_the_shoppers_own_words_about_their_latest_order(agent, e2e_env) -> None:
    sender = f"noor-{uuid.uuid4().hex[:8]}"
    customer_id, order_id, external_id = _member_with_order(e2e_env, "rest", sender)
    chat = Conversation(agent, sender)

    asked = await chat.say("I'd like to give you some feedback about my order")
    assert await chat.intent_and_action() == ("give_feedback", "feedback_form")
    assert f"How was your order #{external_id}?" in _text(asked), asked
    buttons = _buttons(asked)
    assert list(buttons) == ["5 😍", "4 🙂", "3 😐", "2 🙁", "1 😞"]

    why = _text(await chat.say("4"))  # typed rather than tapped
    assert "What did you like most?" in why, why
    thanks = await chat.say("Arrived a day early and the throw is so soft, not late at all")
    assert "that made our day" in _text(thanks), thanks
    assert set(_buttons(thanks)) == {"Leave a review", "Refer a friend"}

    # A satisfied shopper follows the invitation: the review form starts.
    review = _text(await chat.say(_buttons(thanks)["Leave a review"]))
    assert "Which product would you like to review?" in review, review

    database = _database(e2e_env)
    try:
        with database.session() as session:
            feedback = session.execute(select(Feedback).where(Feedback.customer_id == customer_id)).scalar_one()
            transcript = session.get(Transcript, feedback.transcript_id)
    finally:
        database.dispose()
    assert (feedback.order_id, feedback.kind, feedback.score, feedback.channel) == (order_id, "csat", 4, "rest")
    assert (feedback.sentiment, feedback.handoff_request_id) == ("positive", None)
    assert "shipping" in feedback.topics and "product" in feedback.topics
    assert transcript.turns[0] == {"role": "shopper", "text": "I'd like to give you some feedback about my order",
                                   "at": transcript.turns[0]["at"]}
    assert [turn["role"] for turn in transcript.turns] == ["shopper", "bot", "shopper", "bot", "shopper"]


@pytest.mark.parametrize("message, intent", [
    ("can I give you some feedback?", "give_feedback"),
    ("I want to complain about how my delivery went", "give_feedback"),
    ("I want to leave a review", "leave_review"),
    ("I want to talk to a human", "human_handoff"),
    ("how many points do I have", "check_points"),
])
async def test_feedback_is_told_apart_from_reviews_and_handoffs(agent, message: str, intent: str) -> None:
    chat = Conversation(agent, f"guest-{uuid.uuid4().hex[:8]}")
    await chat.say(message)
    assert (await chat.intent_and_action())[0] == intent


def test_a_telegram_shopper_is_asked_after_fulfilment_taps_a_low_score_and_gets_a_person(
    rasa_server: Any, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    chat = TelegramChat(e2e_env, platform_fakes)
    customer_id, order_id, external_id = _member_with_order(e2e_env, "telegram", str(chat.chat_id))
    database = _database(e2e_env)
    try:
        run_feedback_requests(database, load_program(Settings.from_env(e2e_env).program_file), clock.now())
        # What the web app's scheduler does next: the outbox gives the question a chat (no quiet hours here,
        # whatever the time of day the test runs at).
        route_due_messages(ProactivePolicy(quiet_start=None, quiet_end=None), clock.now(), database=database)
        with database.session() as session:
            queued = session.execute(select(OutboundMessage).where(OutboundMessage.dedupe_key == dedupe_key(order_id)))
            row = queued.scalar_one()
            assert (row.customer_id, row.channel) == (customer_id, "telegram")
    finally:
        database.dispose()

    # The Rasa server's notice delivery pushes the question with its keyboard (bots cannot start a chat,
    # but this shopper linked theirs).
    deadline = time.monotonic() + PUSH_TIMEOUT_SECONDS
    while not chat.sent() and time.monotonic() < deadline:
        time.sleep(0.5)
    [question] = chat.sent()
    assert question["text"].startswith(f"How was your order #{external_id}?")
    keyboard = {row[0]["text"]: row[0]["callback_data"] for row in question["reply_markup"]["inline_keyboard"]}
    assert keyboard["1 😞"] == f'/give_feedback{{"feedback_order":{order_id},"feedback_score":1}}'

    status, body = chat.post(chat.press_update(keyboard["1 😞"]))
    assert status == 200 and body["processed"] is True
    why = telegram_texts(chat.wait_for_sent(2)[1:])
    assert "What went wrong?" in why, why

    sorry = chat.say("The lamp arrived broken and nobody replied to my emails. My number is +44 7700 900123")
    sorry_text = telegram_texts(sorry)
    assert f"I'm really sorry that order #{external_id} wasn't what you hoped for" in sorry_text, sorry_text
    assert "pass this conversation to a person" in sorry_text
    offer = {row[0]["text"]: row[0]["callback_data"] for row in sorry[-1]["reply_markup"]["inline_keyboard"]}

    before = len(chat.sent())
    status, _ = chat.post(chat.press_update(offer["Yes, connect me"]))
    assert status == 200
    done = telegram_texts(chat.wait_for_sent(before + 1)[before:])
    assert "I've passed this conversation to the" in done, done

    database = _database(e2e_env)
    try:
        with database.session() as session:
            feedback = session.execute(select(Feedback).where(Feedback.customer_id == customer_id)).scalar_one()
            request = session.get(HandoffRequest, feedback.handoff_request_id)
            handoff = session.get(Transcript, request.transcript_id)
    finally:
        database.dispose()
    assert (feedback.channel, feedback.sender_id, feedback.order_id, feedback.score) == (
        "telegram", str(chat.chat_id), order_id, 1)
    assert feedback.sentiment == "negative" and {"shipping", "quality", "support"} <= set(feedback.topics)
    assert feedback.comment.endswith("My number is [phone]")
    assert (request.channel, request.customer_id, handoff.reason, handoff.order_id) == (
        "telegram", customer_id, "handoff", order_id)
    # The pushed question is not part of the conversation; the tap on it shows as the score it gave.
    assert (handoff.turns[0]["role"], handoff.turns[0]["text"]) == ("shopper", "1")
    assert all("7700" not in turn["text"] for turn in handoff.turns)
