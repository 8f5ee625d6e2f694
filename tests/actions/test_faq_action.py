"""action_answer_faq: the ResponseSelector's answer when it is sure of the topic, the menu otherwise."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.faq import FAQ_CONFIDENCE, ActionAnswerFaq, faq_confidence, selected_answer
from tests.actions.conftest import make_tracker


def _message(intent_confidence: float, key: Optional[str], confidence: float) -> Dict[str, Any]:
    selector = {"faq": {"response": {"intent_response_key": key, "confidence": confidence}}} if key else {}
    return {"text": "…", "intent": {"name": "faq", "confidence": intent_confidence}, "response_selector": selector}


async def _answer(message: Dict[str, Any]) -> List[Dict[str, Any]]:
    tracker = make_tracker("faq-asker", message["text"], "faq")
    tracker.latest_message = message
    dispatcher = CollectingDispatcher()
    assert await ActionAnswerFaq().run(dispatcher, tracker, {}) == []
    return dispatcher.messages


async def test_a_sure_answer_is_given() -> None:
    [reply] = await _answer(_message(1.0, "faq/shipping_times", 0.99))
    assert reply["response"] == "utter_faq/shipping_times"


@pytest.mark.parametrize("key, confidence", [("faq/delivery_damage", 0.12), ("faq/returns", FAQ_CONFIDENCE - 0.01),
                                             (None, 0.0), ("chitchat/ask_name", 0.99)])
async def test_an_unsure_or_missing_answer_gets_the_menu(key, confidence) -> None:
    [reply] = await _answer(_message(1.0, key, confidence))
    assert reply["response"] == "utter_not_understood"


def test_faq_confidence_is_the_lesser_of_intent_and_answer() -> None:
    assert faq_confidence(_message(1.0, "faq/returns", 0.2)) == pytest.approx(0.2)
    assert faq_confidence(_message(0.6, "faq/returns", 0.99)) == pytest.approx(0.6)
    assert selected_answer({}) == (None, 0.0)
