"""faq/<topic>: the answer the ResponseSelector picked (data/faq/), when it is sure of it.

The intent classifier puts many short odd messages ("zebra crossing", "my cat is orange") in `faq` with
high confidence, because faq gathers ~200 varied examples; the ResponseSelector's own confidence in the
topic stays low for those (about 0.1–0.2) and high for real questions (above 0.9). Below FAQ_CONFIDENCE the
shopper gets the "here is what I can do" menu instead of an unrelated answer.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import hand_over_follow_up
from bot.log import get_logger

log = get_logger(__name__)

FAQ_CONFIDENCE = 0.5
NOT_UNDERSTOOD = "utter_not_understood"


def selected_answer(message: Dict[str, Any]) -> Tuple[Optional[str], float]:
    """(utter_faq/<topic>, confidence) the ResponseSelector chose for the message, or (None, 0.0)."""
    selected = ((message.get("response_selector") or {}).get("faq") or {}).get("response") or {}
    key = selected.get("intent_response_key")
    confidence = float(selected.get("confidence") or 0.0)
    if not isinstance(key, str) or not key.startswith("faq/"):
        return None, 0.0
    return f"utter_{key}", confidence


def faq_confidence(message: Dict[str, Any]) -> float:
    """How sure the NLU is that a faq message is a question it has an answer for."""
    intent_confidence = float((message.get("intent") or {}).get("confidence") or 0.0)
    return min(intent_confidence, selected_answer(message)[1])


class ActionAnswerFaq(Action):
    def name(self) -> Text:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        # The faq intent gathers many short questions, follow-ups of the last answer among them
        # ("how long will it take" after a handoff is not a delivery question).
        handed_over = hand_over_follow_up(self, tracker)
        if handed_over:
            return handed_over
        response, confidence = selected_answer(tracker.latest_message or {})
        if response is None or confidence < FAQ_CONFIDENCE:
            log.info("faq.unsure", topic=response, confidence=round(confidence, 3))
            dispatcher.utter_message(response=NOT_UNDERSTOOD)
            return []
        dispatcher.utter_message(response=response)
        return []
