"""Passing a conversation to a person on the merchant's team.

The request (bot/handoff.py) keeps the last messages for the queue; a snapshot of the whole conversation
(up to feedback.transcript_max_turns messages, redacted as the program says) is stored as its transcript
(bot/feedback/transcripts.py). When the shopper accepts the person offered after a low feedback score,
that feedback is linked to the request.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from actions.thread import Topic, topic_events
from bot import clock
from bot.config_files import ConfigError
from bot.feedback.service import link_handoff
from bot.feedback.transcripts import clean_turns, redact, store_transcript
from bot.handoff import MAX_CONTEXT_MESSAGES, MAX_REASON_CHARS, request_handoff
from bot.identity import customer_for_sender
from bot.languages import ANSWERED_LANGUAGES
from bot.log import get_logger
from bot.loyalty.program import FeedbackPolicy, get_program
from bot.rasa_hooks import GREET_PAYLOAD
from bot.shop import Shop, get_shop

log = get_logger(__name__)

# The stored feedback a person was offered for (set by action_submit_feedback after a low score).
FEEDBACK_IDS_SLOT = "feedback_ids"
FEEDBACK_LOW_SLOT = "feedback_low"
# The language the shopper wrote in when not English (bot.nlu.LanguageClassifier's entity fills it).
LANGUAGE_SLOT = "shopper_language"
OTHER_LANGUAGE_INTENT = "other_language"  # set by bot.nlu.LanguageClassifier


# Answers that say nothing about the language the shopper now writes in ("yes", a button's /affirm).
_ANSWERS = frozenset({"affirm", "deny"})


def shopper_language(tracker: Tracker) -> Optional[str]:
    """The language the shopper writes in when it is not English ("fr"), else None.

    The slot keeps the last language detected; it counts while the shopper's latest message that was more than
    a yes or no was in it. One who typed "hola" and went on in English is English: the team should not be told
    they write Spanish.
    """
    value = tracker.get_slot(LANGUAGE_SLOT)
    if not value:
        return None
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent in _ANSWERS:
            continue
        return str(value)[:8] if intent == OTHER_LANGUAGE_INTENT else None
    return None


def conversation_turns(tracker: Tracker, limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """The conversation's messages, shopper's and bot's, oldest first (the last `limit` of them), as the
    shopper saw them: a bot message keeps its buttons (quick replies) and product cards (Rasa `elements`),
    which bot/feedback/transcripts.py stores beside the text.

    A button press is shown as the button's title ("5 😍", "Yes, please"), not its payload; a payload
    whose button is not in the conversation (a notice Telegram pushed) stays as it was, except a feedback
    score ("/give_feedback{… "feedback_score": 5}" → "5"), and the /greet a channel sends when a chat
    opens, which is left out (the greeting it got stays).
    """
    messages: List[Dict[str, Any]] = []
    titles: Dict[str, str] = {}
    for event in tracker.events:
        kind = event.get("event", "")
        text = event.get("text")
        data = (event.get("data") or {}) if kind == "bot" else {}
        buttons = [button for button in data.get("buttons") or [] if isinstance(button, dict)]
        cards = [card for card in data.get("elements") or [] if isinstance(card, dict)]
        for button in buttons + [inner for card in cards for inner in card.get("buttons") or []
                                 if isinstance(inner, dict)]:
            if button.get("payload") and button.get("title"):
                titles[str(button["payload"])] = str(button["title"])
        role = {"user": "shopper", "bot": "bot"}.get(kind)
        if role == "shopper" and text == GREET_PAYLOAD and text not in titles:
            continue  # the channel opened the chat (the widget opening, Instagram's first message): nobody typed it
        if role and (text or buttons or cards):
            if role == "shopper" and text.startswith("/"):
                text = titles.get(text) or _score_of(text) or text
            at = datetime.fromtimestamp(event.get("timestamp") or 0, tz=timezone.utc).isoformat()
            message: Dict[str, Any] = {"role": role, "text": text or "", "at": at}
            if buttons:
                message["buttons"] = buttons
            if cards:
                message["cards"] = cards
            messages.append(message)
    return messages[-limit:] if limit else messages


def _score_of(payload: str) -> Optional[str]:
    if not payload.startswith("/give_feedback{"):
        return None
    try:
        score = json.loads(payload[len("/give_feedback"):]).get("feedback_score")
    except (ValueError, AttributeError):
        return None
    return str(score) if isinstance(score, int) else None


def handoff_reason(tracker: Tracker, feedback: Optional[List[Any]] = None) -> Optional[str]:
    """Why the shopper asked, in their words: the low score's comment when a person was offered after
    feedback, else the message that asked for a person (or, when that was a tap on a button, the shopper's
    message before it)."""
    for row in feedback or []:
        score = f"{row.kind.upper()} {row.score}"
        return f"Low feedback score ({score})" + (f": {row.comment}" if row.comment else "")
    typed: List[str] = []
    for event in tracker.events:
        if event.get("event") != "user":
            continue
        # A message holding several requests is run a request at a time (bot/rasa_hooks.py): the team
        # should read the whole message, not only the clause that asked for a person.
        whole = ((event.get("metadata") or {}).get("several_requests") or {}).get("message")
        text = str(whole or event.get("text") or "").strip()
        parsed = event.get("parse_data") or {}
        intent = (parsed.get("intent") or {}).get("name")
        if text and not text.startswith("/"):
            typed.append(text)
        if intent == "human_handoff":
            said = text if text and not text.startswith("/") else (typed[-1] if typed else None)
            # The order status answer's button names the late order: the team sees which one.
            order = next((str(entity.get("value")) for entity in parsed.get("entities") or []
                          if entity.get("entity") == "order_number" and entity.get("value")), None)
            return f"Order #{order}: {said}" if order and said else said
    return typed[-1] if typed else None


def recent_messages(tracker: Tracker, limit: int = MAX_CONTEXT_MESSAGES) -> List[Dict[str, str]]:
    """The last messages of the conversation, shopper's and bot's, oldest first."""
    return conversation_turns(tracker, limit)


def reply_time_text(shop: Shop) -> str:
    """When the team answers: "They answer within one business day (team hours: …)."."""
    return f"They answer {shop.support_first_reply} (team hours: {shop.support_hours})."


def _feedback_policy() -> FeedbackPolicy:
    """The program's transcript settings; a broken program file must not stop a shopper reaching a person,
    so its defaults (redaction on) apply then."""
    try:
        return get_program().feedback
    except ConfigError as error:
        log.error("config.invalid", error=str(error))
        return FeedbackPolicy()


class ActionRequestHandoff(StoreAction):
    hands_over_follow_ups = False  # it acts on the answer to its own question
    def name(self) -> Text:
        return "action_request_handoff"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        shop = read_config(get_shop)
        policy = _feedback_policy()
        channel, sender_id = sender_of(tracker)
        turns = conversation_turns(tracker)
        context = clean_turns(turns[-MAX_CONTEXT_MESSAGES:], redact_text=policy.redact_transcripts)
        feedback_ids = [int(value) for value in tracker.get_slot(FEEDBACK_IDS_SLOT) or [] if str(value).isdigit()]
        language = shopper_language(tracker)

        def work(session: Session) -> int:
            customer = customer_for_sender(session, channel, sender_id)
            customer_id = customer.id if customer else None
            request = request_handoff(session, channel, sender_id, customer_id, context, now=clock.now(),
                                      language=language)
            linked = link_handoff(session, feedback_ids, request)
            reason = handoff_reason(tracker, linked)
            if reason:
                request.reason = (redact(reason) if policy.redact_transcripts else reason)[:MAX_REASON_CHARS]
            transcript = store_transcript(
                session, channel=channel, sender_id=sender_id, customer_id=customer_id,
                order_id=linked[0].order_id if linked else None, reason="handoff", turns=turns,
                redact=policy.redact_transcripts, now=clock.now(), max_turns=policy.transcript_max_turns,
                language=language,
            )
            request.transcript_id = transcript.id
            session.flush()
            return int(request.id)

        request_id = await with_store(work, write=True)
        log.info("handoff.requested", request_id=request_id, channel=channel, feedback=len(feedback_ids),
                 language=language)
        if language in ANSWERED_LANGUAGES:
            # First in the shopper's language (domain.yml's variations), then the details in English.
            dispatcher.utter_message(response="utter_handoff_requested_in_language", request_id=request_id)
        dispatcher.utter_message(
            text=(
                f"Done — I've passed this conversation to the {shop.name} team (request #{request_id}), "
                f"with our chat so far so you don't have to repeat yourself. They answer {shop.support_first_reply} "
                f"(team hours: {shop.support_hours}), right here in this chat. Until then I'll stay quiet so "
                f"they can pick up where we are: say \"talk to the bot\" any time to come back to me."
            )
        )
        events: List[Dict[Text, Any]] = topic_events(Topic.HANDOFF, request_id)  # "how long will it take?"
        if feedback_ids:
            events.append(SlotSet(FEEDBACK_IDS_SLOT, None))
        if tracker.get_slot(FEEDBACK_LOW_SLOT):
            events.append(SlotSet(FEEDBACK_LOW_SLOT, False))
        return events
