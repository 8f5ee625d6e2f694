"""The feedback form's actions with real trackers against the seeded demo store: a shopper is asked about
their latest order (or taps a score on the question the bot asked after an order), says why, and is
answered after the score — an apology and a person offered when it is low (with goodwill points when the
program gives them), an invitation to review and refer when it is high. The transcript and the handoff
request are checked in the store."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select, update

from actions.feedback import (
    COMMENT, IDS, LOW, NPS, SCORE, SLOTS, ActionAskFeedbackComment, ActionAskFeedbackNps, ActionAskFeedbackScore,
    ActionCancelFeedback, ActionStartFeedback, ActionSubmitFeedback, ValidateFeedbackForm,
)
from actions.handoff import ActionRequestHandoff
from actions.loyalty import ActionCheckPoints
from bot import clock
from bot.db import get_database
from bot.feedback.requests import run_feedback_requests
from bot.loyalty.program import get_program
from bot.models import Customer, Feedback, FeedbackTopic, HandoffRequest, LedgerEntry, Order, Transcript
from bot.settings import PROJECT_ROOT, reset_settings

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
REQUIRED = DOMAIN["forms"]["feedback_form"]["required_slots"]
ASK = {SCORE: ActionAskFeedbackScore, NPS: ActionAskFeedbackNps, COMMENT: ActionAskFeedbackComment}


class FeedbackChat:
    """A shopper talking to the feedback form the way Rasa runs it: give_feedback starts it
    (action_start_feedback, then the form validates a score the request carried), every later reply is
    validated, and the form asks the slot the validation names next, or ends and submits."""

    def __init__(self, sender: str, channel: str = "rest") -> None:
        self.sender, self.channel = sender, channel
        self.slots: Dict[str, Any] = {slot: None for slot in SLOTS + (LOW, IDS)}
        self.requested: Optional[str] = None
        self.active = False
        self.history: List[Dict[str, Any]] = []
        self.buttons: Dict[str, str] = {}
        self.rejected = False
        self._time = 1_790_000_000.0

    def _tick(self) -> float:
        self._time += 5
        return self._time

    def _tracker(self) -> Tracker:
        latest = next(e["parse_data"] for e in reversed(self.history) if e["event"] == "user")
        slots = dict(self.slots, requested_slot=self.requested)
        loop = {"name": "feedback_form"} if self.active else {}
        return Tracker(self.sender, slots, latest, list(self.history), False, None, loop, "action_listen")

    async def run(self, action: Any) -> List[Dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        events = await action.run(dispatcher, self._tracker(), DOMAIN)
        self.history.append({"event": "action", "name": action.name(), "timestamp": self._tick()})
        for event in events:
            if event.get("event") == "slot":
                if event["name"] == "requested_slot":
                    self.requested = event["value"]
                else:
                    self.slots[event["name"]] = event["value"]
            elif event.get("event") == "active_loop":
                self.active = bool(event.get("name"))
        for message in dispatcher.messages:
            self.history.append({"event": "bot", "text": message.get("text"), "timestamp": self._tick(),
                                 "data": {"buttons": message.get("buttons") or []}})
        if dispatcher.messages:
            self.buttons = {b["title"]: b["payload"] for m in dispatcher.messages for b in m.get("buttons") or []}
        self.last_events = events
        return dispatcher.messages

    def _user(self, text: str, intent: Optional[str], confidence: float, entities: Dict[str, Any]) -> None:
        parse = {"text": text, "intent": {"name": intent, "confidence": confidence},
                 "entities": [{"entity": name, "value": value} for name, value in entities.items()]}
        self.history.append({"event": "user", "text": text, "parse_data": parse, "input_channel": self.channel,
                             "timestamp": self._tick()})

    async def say(self, text: str, intent: Optional[str] = "nlu_fallback", confidence: float = 0.4,
                  **entities: Any) -> List[Dict[str, Any]]:
        self.rejected = False
        self._user(text, intent, confidence, entities)
        if intent == "give_feedback" and not (self.active and self.requested):
            said = await self.run(ActionStartFeedback())
            self.active = True
            if self.slots[SCORE] is not None:  # prefilled: the form validates at activation
                said += await self.run(ValidateFeedbackForm())
                if self.requested is None:  # the validation ended the form at once
                    self.active = False
                    return said
            else:
                self.requested = REQUIRED[0]
            return said + await self.ask()
        said = await self.run(ValidateFeedbackForm())
        if not any(e.get("event") == "slot" and e["name"] != "requested_slot" for e in self.last_events):
            self.rejected = True  # Rasa rejects the form: the message's own rule answers it
            return said
        return said + await self.ask()

    async def tap(self, title: str) -> List[Dict[str, Any]]:
        payload = self.buttons[title]
        intent, _, entities = payload[1:].partition("{")
        return await self.say(payload, intent, 1.0, **(json.loads("{" + entities) if entities else {}))

    async def ask(self) -> List[Dict[str, Any]]:
        if self.requested is None:
            self.active = False
            return await self.run(ActionSubmitFeedback())
        return await self.run(ASK[self.requested]())


def texts(messages: List[Dict[str, Any]]) -> str:
    return "\n".join(message.get("text") or "" for message in messages)


def use_program(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *replacements: tuple) -> None:
    """The demo program with some settings changed, as the actions will read it."""
    content = (PROJECT_ROOT / "data" / "program.yml").read_text()
    for old, new in replacements:
        assert old in content
        content = content.replace(old, new)
    path = tmp_path / "program.yml"
    path.write_text(content)
    monkeypatch.setenv("PROGRAM_FILE", str(path))
    reset_settings()


def order_id(database: Any, external_id: str) -> int:
    with database.session() as session:
        return session.execute(select(Order.id).where(Order.external_id == external_id)).scalar_one()


async def test_a_member_rates_her_latest_order_says_why_and_is_invited_to_review_and_refer(demo_store) -> None:
    alice = FeedbackChat("alice")
    asked = await alice.say("I'd like to give you some feedback", "give_feedback", 0.97)
    assert texts(asked) == "How was your order #1042? Tap a number: 5 = loved it, 1 = not happy at all."
    order_1042 = order_id(demo_store, "1042")
    assert alice.buttons["5 😍"] == f'/give_feedback{{"feedback_order":{order_1042},"feedback_score":5}}'

    why = await alice.tap("5 😍")
    assert texts(why) == "That's great to hear! What did you like most?" and "Skip" in alice.buttons
    thanks = await alice.say("The dinner set is gorgeous and it came really well packed")
    assert texts(thanks).startswith("Thank you, Alice — that made our day!")
    assert "earns you 100 points once it's approved" in texts(thanks)
    assert "they get 10% off their first order and you get 500 points" in texts(thanks)
    assert alice.buttons == {"Leave a review": "/leave_review", "Refer a friend": "/get_referral_link"}
    assert alice.slots[LOW] is False and alice.slots[IDS] is None and alice.slots[SCORE] is None

    with demo_store.session() as session:
        [feedback] = session.execute(select(Feedback)).scalars().all()
        assert (feedback.customer_id, feedback.order_id, feedback.channel, feedback.sender_id) == (
            1, order_1042, "rest", "alice")
        assert (feedback.kind, feedback.score, feedback.sentiment) == ("csat", 5, "positive")
        assert feedback.comment == "The dinner set is gorgeous and it came really well packed"
        assert feedback.topics == ["packaging", "product"]
        assert sorted(session.execute(select(FeedbackTopic.topic)).scalars()) == ["packaging", "product"]
        transcript = session.get(Transcript, feedback.transcript_id)
        assert [(turn["role"], turn["text"]) for turn in transcript.turns] == [
            ("shopper", "I'd like to give you some feedback"),
            ("bot", "How was your order #1042? Tap a number: 5 = loved it, 1 = not happy at all."),
            ("shopper", "5 😍"),  # the button's title, not its payload
            ("bot", "That's great to hear! What did you like most?"),
            ("shopper", "The dinner set is gorgeous and it came really well packed"),
        ]
        assert transcript.turns[0]["at"].endswith("+00:00")
        assert "gorgeous" in feedback.search_text


async def test_a_low_score_tapped_on_the_question_after_an_order_gets_an_apology_goodwill_and_a_person(
    demo_store, monkeypatch, tmp_path
) -> None:
    use_program(monkeypatch, tmp_path, ("    goodwill_points: 0 ", "    goodwill_points: 200 "))
    order_1050 = order_id(demo_store, "1050")
    with demo_store.session(write=True) as session:
        session.execute(update(Order).where(Order.id == order_1050)
                        .values(fulfilled_at=clock.now() - timedelta(days=4)))
        balance_before = session.get(Customer, 2).points_balance
    assert run_feedback_requests(get_database(), get_program(), clock.now()) == {"feedback_requests_queued": 1}

    # Bob chats on the web: the question comes with his next points check, buttons and all.
    bob = FeedbackChat("bob")
    bob._user("how many points do I have?", "check_points", 0.99, {})
    said = await bob.run(ActionCheckPoints())
    assert said[0]["text"] == "How was your order #1050? Tap a number: 5 = loved it, 1 = not happy at all."
    assert "Bob, you have" in texts(said)

    why = await bob.tap("1 😞")
    assert texts(why).startswith("I'm sorry to hear that. What went wrong?")
    sorry = await bob.say("It never arrived and nobody answered my emails. Call me on +44 7700 900123")
    assert texts(sorry) == ("I'm really sorry that order #1050 wasn't what you hoped for — thank you for telling "
                            "us. What you wrote is now with our team. As an apology, I've added 200 points to "
                            "your account.")
    assert bob.slots[LOW] is True and len(bob.slots[IDS]) == 1
    [feedback_id] = bob.slots[IDS]

    # The rules then offer a person; yes records the handoff with the whole conversation, redacted.
    bob._user("yes please", "affirm", 0.99, {})
    await bob.run(ActionRequestHandoff())
    request_id = next(e["value"] for e in bob.last_events if e["name"] == "topic_ref")
    assert {(e["name"], e["value"]) for e in bob.last_events} == {(IDS, None), (LOW, False), ("topic", "handoff"),
                                                                  ("topic_ref", request_id)}
    with demo_store.session() as session:
        feedback = session.get(Feedback, feedback_id)
        assert (feedback.order_id, feedback.score, feedback.sentiment, feedback.goodwill_points) == (
            order_1050, 1, "negative", 200)
        assert feedback.topics == ["shipping", "support"]
        assert feedback.comment == "It never arrived and nobody answered my emails. Call me on [phone]"
        request = session.execute(select(HandoffRequest)).scalar_one()
        assert feedback.handoff_request_id == request.id and request.customer_id == 2
        handoff = session.get(Transcript, request.transcript_id)
        assert (handoff.reason, handoff.order_id, handoff.redacted) == ("handoff", order_1050, True)
        everything = json.dumps(handoff.turns) + json.dumps(request.last_messages)
        assert "7700" not in everything and "[phone]" in everything
        assert handoff.turns[-1]["text"] == "yes please"
        goodwill = session.execute(select(LedgerEntry).where(LedgerEntry.source == "feedback_goodwill")).scalar_one()
        assert (goodwill.customer_id, goodwill.points) == (2, 200)
        assert session.get(Customer, 2).points_balance == balance_before + 200

    # The old question's button tapped again: thanked, nothing asked, nothing stored twice.
    bob.buttons = {"2 🙁": f'/give_feedback{{"feedback_order":{order_1050},"feedback_score":2}}'}
    again = await bob.tap("2 🙁")
    assert texts(again).startswith("You've already told us how order #1050 went — thank you!")
    assert bob.active is False and bob.requested is None
    with demo_store.session() as session:
        assert len(session.execute(select(Feedback)).scalars().all()) == 1
        assert len(session.execute(select(LedgerEntry).where(LedgerEntry.source == "feedback_goodwill")).all()) == 1


async def test_a_guest_types_scores_until_one_fits_and_skips_the_why(demo_store) -> None:
    guest = FeedbackChat("guest-31")
    asked = await guest.say("can I leave some feedback", "give_feedback", 0.95)
    assert texts(asked) == "How happy are you with Oak & Ember? Tap a number: 5 = loved it, 1 = not happy at all."
    assert guest.buttons["3 😐"] == '/give_feedback{"feedback_score":3}'

    for off_scale in ("7", "2 days late", "it was ok"):
        hint = await guest.say(off_scale)
        assert texts(hint).startswith("Please tap a number from 1 to 5")
        assert guest.requested == SCORE and not guest.rejected
    why = await guest.say("3/5")
    assert texts(why).startswith("Thanks! What could we have done better?")
    thanks = await guest.say("no", "deny", 0.93)
    assert texts(thanks) == "Thanks for telling us — we read every comment and use it to do better."
    with demo_store.session() as session:
        feedback = session.execute(select(Feedback)).scalar_one()
        assert (feedback.customer_id, feedback.order_id, feedback.score, feedback.comment) == (None, None, 3, None)
        assert (feedback.sentiment, feedback.topics, feedback.sender_id) == (None, [], "guest-31")
        assert session.get(Transcript, feedback.transcript_id).customer_id is None


async def test_requests_in_the_middle_are_left_to_their_rules_but_a_long_complaint_is_the_answer(demo_store) -> None:
    chloe = FeedbackChat("chloe")
    await chloe.say("I want to give feedback", "give_feedback", 0.96)
    await chloe.say("how many points do I have?", "check_points", 0.97)
    assert chloe.rejected and chloe.requested == SCORE  # its own rule answers; the form asks again
    await chloe.say("cancel", "stop_quiz", 0.95)
    assert chloe.rejected  # the stop rule cancels

    await chloe.say("2")
    assert chloe.requested == COMMENT
    await chloe.say("what's my tier?", "check_tier", 0.92)
    assert chloe.rejected
    # Feedback often reads like another request; unless it's a short one or a question it is the answer.
    said = await chloe.say("the chair wobbles and I want to talk to someone about a replacement", "human_handoff", 0.9)
    assert texts(said).startswith("I'm really sorry that order #1055 wasn't what you hoped for")
    with demo_store.session() as session:
        feedback = session.execute(select(Feedback)).scalar_one()
        assert feedback.comment.startswith("the chair wobbles") and "returns" in feedback.topics


async def test_a_button_naming_someone_elses_order_is_not_linked_to_it(demo_store) -> None:
    chloe = FeedbackChat("chloe")
    alices = order_id(demo_store, "1042")
    chloe.buttons = {"4 🙂": f'/give_feedback{{"feedback_order":{alices},"feedback_score":4}}'}
    why = await chloe.tap("4 🙂")
    assert texts(why).startswith("That's great to hear!")
    await chloe.say("skip", "skip_question", 0.9)
    with demo_store.session() as session:
        feedback = session.execute(select(Feedback)).scalar_one()
        assert feedback.customer_id == 3 and feedback.order_id == order_id(demo_store, "1055") != alices


async def test_with_both_kinds_the_nps_comes_between_the_csat_and_the_why(demo_store, monkeypatch, tmp_path) -> None:
    use_program(monkeypatch, tmp_path, ("  kind: csat ", "  kind: both "))
    alice = FeedbackChat("alice")
    await alice.say("feedback", "give_feedback", 0.99)
    nps = await alice.tap("4 🙂")
    assert texts(nps).startswith("Thanks! And how likely are you to recommend Oak & Ember to a friend?")
    assert list(alice.buttons) == [str(n) for n in range(11)]
    why = await alice.say("I'd give you a 9")
    assert texts(why) == "That's great to hear! What did you like most?"
    assert texts(await alice.tap("Skip")).startswith("Thank you, Alice")
    with demo_store.session() as session:
        rows = session.execute(select(Feedback).order_by(Feedback.id)).scalars().all()
        assert [(row.kind, row.score) for row in rows] == [("csat", 4), ("nps", 9)]
        assert rows[0].transcript_id == rows[1].transcript_id and rows[0].comment is None


async def test_a_second_tap_while_asked_why_changes_the_score_and_asks_again(demo_store) -> None:
    bob = FeedbackChat("bob")
    await bob.say("I have some feedback for you", "give_feedback", 0.9)
    buttons = dict(bob.buttons)
    await bob.tap("4 🙂")
    bob.buttons = buttons
    asked = await bob.tap("2 🙁")  # a change of mind on the same question
    assert texts(asked).startswith("I'm sorry to hear that. What went wrong?")
    assert bob.slots[SCORE] == 2.0 and bob.requested == COMMENT


async def test_stopping_drops_the_feedback(demo_store) -> None:
    alice = FeedbackChat("alice")
    await alice.say("feedback", "give_feedback", 0.99)
    said = await alice.run(ActionCancelFeedback())
    assert texts(said).startswith("No problem — I've left the feedback there.")
    assert alice.active is False and all(alice.slots[slot] is None for slot in SLOTS)
    with demo_store.session() as session:
        assert session.execute(select(Feedback)).first() is None
