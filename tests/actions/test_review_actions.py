"""The review form's actions with real trackers against the seeded demo store: a shopper picks a product
from their orders, gives stars, words and maybe a photo; the review waits for moderation; points follow
the merchant's approval and never depend on the stars."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.loyalty import ActionCheckPoints
from actions.reviews import (
    SLOTS, ActionAskReviewProduct, ActionCancelReview, ActionStartReview, ActionSubmitReview, ValidateReviewForm,
)
from bot import clock
from bot.advocacy.reviews import moderate_review
from bot.identity import link_identity
from bot.loyalty.program import get_program
from bot.models import ContentSubmission, Customer, LedgerEntry, OutboundMessage, Review
from tests.actions.conftest import make_tracker

DOMAIN = yaml.safe_load((Path(__file__).parents[2] / "domain.yml").read_text())
REQUIRED = DOMAIN["forms"]["review_form"]["required_slots"]


class ReviewChat:
    """A shopper going through review_form the way Rasa runs it: validate the reply, then ask the next
    empty slot (again, when the reply was refused), or submit when all are filled."""

    def __init__(self, sender: str, channel: str = "rest") -> None:
        self.sender, self.channel = sender, channel
        self.slots: Dict[str, Any] = {slot: None for slot in SLOTS}
        self.requested: Optional[str] = None
        self.rejected = False
        self.buttons: Dict[str, str] = {}

    def _tracker(self, text: str, intent: Optional[str], confidence: float,
                 metadata: Optional[Dict[str, Any]]) -> Tracker:
        latest = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": [],
                  "metadata": metadata or {}}
        if intent == "faq":  # the ResponseSelector as sure of the topic as the classifier of the intent
            latest["response_selector"] = {"faq": {"response": {"intent_response_key": "faq/shipping_times",
                                                                "confidence": confidence}}}
        events = [{"event": "user", "text": text, "parse_data": latest, "input_channel": self.channel,
                   "timestamp": 1_790_000_000.0}]
        slots = dict(self.slots, requested_slot=self.requested)
        loop = {"name": "review_form"} if self.requested else {}
        return Tracker(self.sender, slots, latest, events, False, None, loop, "action_listen")

    async def _run(self, action: Any, text: str = "", intent: Optional[str] = None, confidence: float = 0.98,
                   metadata: Optional[Dict[str, Any]] = None) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        dispatcher = CollectingDispatcher()
        events = await action.run(dispatcher, self._tracker(text, intent, confidence, metadata), DOMAIN)
        for event in events:
            if event.get("event") == "slot" and event["name"] in self.slots:
                self.slots[event["name"]] = event["value"]
        return events, dispatcher.messages

    async def _ask(self) -> List[Dict[str, Any]]:
        missing = next((slot for slot in REQUIRED if self.slots[slot] is None), None)
        self.requested = missing
        if missing is None:
            _, said = await self._run(ActionSubmitReview())
        elif missing == "review_product":
            _, said = await self._run(ActionAskReviewProduct())
        else:
            response = DOMAIN["responses"][f"utter_ask_{missing}"][0]
            said = [{"text": response["text"].format(**self.slots), "buttons": response.get("buttons", [])}]
        self.buttons = {b["title"]: b["payload"] for message in said for b in message.get("buttons") or []}
        return said

    async def start(self, text: str = "I want to leave a review", intent: str = "leave_review") -> List[Dict[str, Any]]:
        _, said = await self._run(ActionStartReview(), text, intent)
        return said + await self._ask()

    async def say(self, text: str, intent: Optional[str] = "nlu_fallback", confidence: float = 0.4,
                  metadata: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
        events, said = await self._run(ValidateReviewForm(), text, intent, confidence, metadata)
        self.rejected = events == []
        if self.rejected:
            return said
        return said + await self._ask()

    async def tap(self, title: str) -> List[Dict[str, Any]]:
        payload = self.buttons[title]
        if payload.startswith("/"):
            return await self.say(payload, payload[1:], 1.0)
        return await self.say(payload)


def texts(messages: List[Dict[str, Any]]) -> List[str]:
    return [message["text"] for message in messages if message.get("text")]


def _reviews(database) -> List[Tuple]:
    with database.session() as session:
        return [(r.customer_id, r.channel, r.sender_id, r.product_sku, r.order_external_id, r.rating, r.text,
                 r.media_kind, r.status)
                for r in session.execute(select(Review).order_by(Review.id)).scalars()]


def _customer_id(database, first_name: str) -> int:
    with database.session() as session:
        return session.execute(select(Customer.id).where(Customer.first_name == first_name)).scalar_one()


async def test_a_member_reviews_a_product_from_their_orders_and_points_wait_for_approval(demo_store) -> None:
    chat = ReviewChat("alice")
    said = await chat.start()
    assert "Which product would you like to review?" in texts(said)[0]
    assert "Pebble table lamp" in chat.buttons and "Fold oak side table" in chat.buttons
    said = await chat.tap("Pebble table lamp")
    assert texts(said) == ["How many stars would you give the Pebble table lamp? (1 = poor, 5 = excellent)"]
    said = await chat.tap("★★★★ 4")
    assert "what did you think of it?" in texts(said)[0]
    said = await chat.say("Lovely warm light and a sturdy base. The cable could be longer.")
    assert "photo or a short video" in texts(said)[0]
    said = await chat.tap("Skip")
    [thanks] = texts(said)
    assert thanks == ("Thank you, Alice! Your review of the Pebble table lamp is with our team. Once it's "
                      "approved — usually within two days — 100 points will be added to your account.")
    alice = _customer_id(demo_store, "Alice")
    assert _reviews(demo_store) == [(alice, "rest", "alice", "OE-LT-002", "1017", 4,
                                     "Lovely warm light and a sturdy base. The cable could be longer.", "none", "pending")]
    assert all(value is None for value in chat.slots.values())  # the draft is cleared for next time
    with demo_store.session() as session:
        review_id = session.execute(select(Review.id)).scalar_one()
        assert session.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == f"chat-review:{review_id}")).first() is None


async def test_a_product_named_in_the_request_skips_the_product_question(demo_store) -> None:
    chat = ReviewChat("alice")
    said = await chat.start("I want to review the Pebble table lamp")
    assert texts(said) == ["How many stars would you give the Pebble table lamp? (1 = poor, 5 = excellent)"]
    assert chat.slots["review_order"] == "1017"


async def test_a_telegram_photo_goes_with_the_review_and_approval_pays_the_photo_rate_whatever_the_stars(demo_store) -> None:
    with demo_store.session(write=True) as session:
        link_identity(session, _customer_id(demo_store, "Bob"), "telegram", "7002")
    chat = ReviewChat("7002", channel="telegram")
    await chat.start()
    await chat.tap("Heavy linen throw")
    await chat.say("1")
    await chat.say("Pilled after two washes, disappointed.")
    photo = {"content": {"kind": "photo", "channel": "telegram", "telegram_file_id": "AgACAgIAAxkBAAIR",
                         "file_size": 40_000, "mime_type": None, "caption": ""}}
    said = await chat.say("/submit_content", "submit_content", 1.0, metadata=photo)
    assert "(with your photo)" in texts(said)[0] and "200 points" in texts(said)[0]
    [(customer_id, *_rest, rating, _text, media, status)] = _reviews(demo_store)
    assert (rating, media, status) == (1, "photo", "pending")

    with demo_store.session(write=True) as session:
        review_id = session.execute(select(Review.id)).scalar_one()
        result = moderate_review(session, get_program(), review_id, approve=True, actor="merchant:test",
                                 note=None, now=clock.now())
    assert result.points_awarded == 200  # a one-star review earns exactly what a five-star one would
    with demo_store.session() as session:
        [entry] = session.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == f"chat-review:{review_id}")).scalars().all()
        assert (entry.customer_id, entry.points) == (customer_id, 200)
        notices = session.execute(select(OutboundMessage).where(OutboundMessage.customer_id == customer_id)).scalars().all()
        assert [(notice.kind, notice.status) for notice in notices] == [("review_approved", "queued")]
        notice_text = notices[0].text
    assert "200 points" in notice_text

    # The shopper hears it at their next points check, once.
    async def check_points() -> List[str]:
        dispatcher = CollectingDispatcher()
        await ActionCheckPoints().run(dispatcher, make_tracker("7002", "my points", "check_points", "telegram"), DOMAIN)
        return texts(dispatcher.messages)

    first = await check_points()
    assert first[0] == notice_text and first[1].startswith("Bob, you have")
    assert notice_text not in await check_points()


async def test_unclear_stars_and_an_oversized_text_are_asked_again_with_a_reason(demo_store) -> None:
    chat = ReviewChat("alice")
    await chat.start("review the Fold oak side table", "leave_review")
    said = await chat.say("seven out of ten")
    assert texts(said)[0] == "Please give it 1 to 5 stars — tap a button or type a number."
    assert chat.slots["review_rating"] is None and chat.requested == "review_rating"
    await chat.say("5 stars")
    assert chat.slots["review_rating"] == 5.0
    said = await chat.say("Great table! " * 800)  # about 10 kB
    assert "2,000" in texts(said)[0] and chat.slots["review_text"] is None and chat.requested == "review_text"
    await chat.say("Solid, and the oak is beautiful.")
    assert chat.requested == "review_media"
    said = await chat.say("maybe later?")
    assert texts(said)[0] == "Send a photo or a short video here, or tap Skip to finish without one."
    await chat.say("no thanks")
    assert [row[5:] for row in _reviews(demo_store)] == [(5, "Solid, and the oak is beautiful.", "none", "pending")]


async def test_another_request_mid_review_is_left_to_its_own_rule_and_stop_cancels(demo_store) -> None:
    chat = ReviewChat("alice")
    await chat.start("review the Pebble table lamp")
    await chat.say("how many points do I have?", "check_points", 0.97)
    assert chat.rejected and chat.slots["review_product"] == "OE-LT-002"  # the draft is kept for the form to go on
    await chat.say("cancel", "stop_quiz", 0.9)
    assert chat.rejected
    await chat.say("never mind", "deny", 0.9)
    assert chat.rejected
    dispatcher = CollectingDispatcher()
    events = await ActionCancelReview().run(dispatcher, chat._tracker("never mind", "stop_quiz", 0.9, None), DOMAIN)
    assert {"event": "active_loop", "name": None, "timestamp": None} in events
    assert texts(dispatcher.messages) == ["No problem — I've dropped that review. Say \"leave a review\" any time."]
    assert _reviews(demo_store) == []


async def test_a_product_reviewed_before_is_refused_and_a_double_submit_stores_one_review(demo_store) -> None:
    chat = ReviewChat("alice")
    await chat.start("review the Pebble table lamp")
    await chat.say("5")
    await chat.say("Perfect bedside lamp.")
    filled = dict(chat.slots)
    await chat.say("skip", "skip_question", 0.9)
    # The same submission delivered again (a double tap, a retry): one review, and the shopper is told.
    chat.slots = filled | {"review_media": "none"}
    _, said = await chat._run(ActionSubmitReview())
    assert texts(said) == ["You've already reviewed the Pebble table lamp — thank you! I've kept your first review."]
    assert len(_reviews(demo_store)) == 1

    again = ReviewChat("alice")
    said = await again.start("I want to review the Pebble table lamp")
    assert "You've already reviewed the Pebble table lamp" in texts(said)[0]
    assert "Pebble table lamp" not in again.buttons  # reviewed products are not offered again


async def test_a_guest_can_review_a_catalog_product_and_is_told_how_to_earn_points(demo_store) -> None:
    chat = ReviewChat("guest-17")
    said = await chat.start()
    assert chat.buttons == {} and "Type its name" in texts(said)[0]
    said = await chat.say("the unicorn saddle")
    assert texts(said)[0].startswith("I couldn't find a product called “the unicorn saddle”")
    await chat.say("Ember floor lamp")
    await chat.say("4")
    await chat.say("Warm light, easy to put together.")
    said = await chat.say("no", "deny", 0.95)
    assert "link my account" in texts(said)[0]
    assert [row[:4] for row in _reviews(demo_store)] == [(None, "rest", "guest-17", "OE-LT-001")]


@pytest.mark.parametrize("text", ["", "   ", "a"])
async def test_too_short_a_review_is_asked_again(demo_store, text: str) -> None:
    chat = ReviewChat("alice")
    await chat.start("review the Pebble table lamp")
    await chat.say("3")
    said = await chat.say(text)
    assert chat.requested == "review_text" and chat.slots["review_text"] is None and texts(said)


async def test_questions_mid_review_are_left_to_their_rules_but_review_words_are_kept(demo_store) -> None:
    chat = ReviewChat("alice")
    await chat.start("review the Pebble table lamp")
    await chat.say("do you ship to Canada?", "faq", 0.95)
    assert chat.rejected and chat.requested == "review_rating"  # the FAQ rule answers, the form asks again
    await chat.say("4")
    await chat.say("do you ship to Canada?", "faq", 0.95)
    assert chat.rejected and chat.slots["review_text"] is None
    await chat.say("Fast delivery, great quality", "faq", 0.9)  # reads like shipping, but it is the review
    assert chat.slots["review_text"] == "Fast delivery, great quality"


async def test_a_short_negative_review_is_a_review_not_a_no(demo_store) -> None:
    chat = ReviewChat("alice")
    await chat.start("review the Pebble table lamp")
    await chat.say("2")
    await chat.say("not really worth it", "deny", 0.9)
    assert not chat.rejected and chat.slots["review_text"] == "not really worth it"


async def test_a_photo_sent_early_goes_with_the_review_and_is_not_asked_for_again(demo_store) -> None:
    chat = ReviewChat("alice", channel="telegram")
    with demo_store.session(write=True) as session:
        link_identity(session, _customer_id(demo_store, "Alice"), "telegram", "alice")
    await chat.start("review the Pebble table lamp")
    photo = {"content": {"kind": "photo", "channel": "telegram", "telegram_file_id": "AgACAgIAAxkBAAIE",
                         "file_size": 1000, "mime_type": None, "caption": ""}}
    said = await chat.say("/submit_content", "submit_content", 1.0, metadata=photo)
    assert texts(said)[0] == "Got your photo — it will go with your review."
    assert chat.requested == "review_rating" and chat.slots["review_media"] == "photo"
    await chat.say("5")
    said = await chat.say("Lovely warm light.")
    assert "(with your photo)" in texts(said)[0]  # the photo question was skipped: it is already there
    with demo_store.session() as session:
        assert session.execute(select(ContentSubmission)).first() is None  # not also queued as a separate photo
    assert [row[7] for row in _reviews(demo_store)] == ["photo"]
