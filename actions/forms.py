"""What the forms' validation actions share (quiz_form, review_form): reading the shopper's reply and
telling an answer from a request of its own.

A form's validation that returns no event makes Rasa reject the form for that turn: the request's own
rule answers it and the form then asks its question again."""
from __future__ import annotations

from typing import Any, Dict, FrozenSet, Iterable, Text

from rasa_sdk import Tracker

from actions.faq import faq_confidence
from bot.quiz.runs import Reply


def other_intents(domain: Dict[Text, Any], handled: Iterable[str]) -> FrozenSet[str]:
    """The domain's intents that are requests of their own while a form runs (all but `handled`)."""
    names = set()
    for intent in domain.get("intents", []):
        names.add(next(iter(intent)) if isinstance(intent, dict) else str(intent))
    return frozenset(names - set(handled))


def latest_reply(tracker: Tracker) -> Reply:
    message = tracker.latest_message or {}
    intent = message.get("intent") or {}
    name = intent.get("name")
    # For faq the NLU is only as sure as its answer: "zebra crossing" is faq at 1.0 but no topic fits it.
    confidence = faq_confidence(message) if name == "faq" else float(intent.get("confidence") or 0.0)
    return Reply(text=str(message.get("text") or ""), intent=name, confidence=confidence)


def started_by(tracker: Tracker, action_name: str) -> bool:
    """True when the form is validating the message that started it (after `action_name`): Rasa validates
    the triggering message on activation, and that message is not an answer."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "action" and event.get("name") == action_name:
            return True
    return False
