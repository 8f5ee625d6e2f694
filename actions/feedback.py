"""give_feedback: a CSAT and/or NPS score, then one open "why", as the Rasa form feedback_form around
bot.feedback.service — the start (which order), the questions, the validation, storing the answer and what
follows it (an apology and a person, or an invitation to review and refer). The README's "Feedback in chat"
has the flow."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from actions.forms import latest_reply, other_intents, started_by
from actions.handoff import FEEDBACK_IDS_SLOT, FEEDBACK_LOW_SLOT, conversation_turns, shopper_language
from bot import clock
from bot.config_files import ConfigError
from bot.feedback.requests import ORDER_ENTITY, SCORE_ENTITY, order_name, request_text, score_buttons
from bot.feedback.service import (
    SCALES, Answer, FeedbackError, customer_order, is_high, is_low, latest_paid_order, order_feedback, parse_score,
    submit_feedback,
)
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import FeedbackPolicy, Program, get_program
from bot.quiz.runs import Reply, is_interruption
from bot.shop import get_shop

log = get_logger(__name__)

KIND, ORDER, ORDER_NAME = "feedback_kind", "feedback_order", "feedback_order_name"
SCORE, NPS, COMMENT, CLOSED = "feedback_score", "feedback_nps", "feedback_comment", "feedback_closed"
LOW, IDS = FEEDBACK_LOW_SLOT, FEEDBACK_IDS_SLOT
REQUESTED = "requested_slot"
SLOTS = (KIND, ORDER, ORDER_NAME, SCORE, NPS, COMMENT, CLOSED)
# Replies the form reads itself (as scores, comments or "skip"), never as a request of their own.
# (An FAQ the NLU is sure of interrupts only as a question: "it took ages to arrive" reads like shipping.)
FEEDBACK_INTENTS = frozenset({
    "give_feedback", "skip_question", "affirm", "deny", "out_of_scope", "nlu_fallback", "thank_you",
    "product_search", "greet", "bot_challenge",
})
SKIP_WORDS = frozenset({
    "skip", "no", "nope", "nah", "no thanks", "no thank you", "nothing", "nothing else", "nothing really",
    "no comment", "none", "n/a", "na", "-", "that's all", "thats all", "not really", "all good",
})
FEEDBACK_APOLOGY = ("Sorry — I can't take feedback right now. Please try again in a few minutes; "
                    "nothing you wrote has been lost from this chat.")
SKIP_BUTTON = {"title": "Skip", "payload": "/skip_question"}
REVIEW_BUTTON = {"title": "Leave a review", "payload": "/leave_review"}
REFER_BUTTON = {"title": "Refer a friend", "payload": "/get_referral_link"}


def first_kind(kind: Optional[str]) -> str:
    """The kind of the first question: NPS only when the program asks NPS alone."""
    return "nps" if kind == "nps" else "csat"


def next_slot(kind: Optional[str], score: Any, nps: Any, comment: Any) -> Optional[str]:
    """What the form asks next: the score, the NPS (kind "both"), the "why", or nothing (done)."""
    if score is None:
        return SCORE
    if kind == "both" and nps is None:
        return NPS
    if comment is None:
        return COMMENT
    return None


def _answers(kind: Optional[str], score: Any, nps: Any) -> List[Answer]:
    answers: List[Answer] = []
    if score is not None:
        answers.append(Answer(first_kind(kind), int(score)))
    if kind == "both" and nps is not None:
        answers.append(Answer("nps", int(nps)))
    return answers


def _entity(tracker: Tracker, name: str) -> Any:
    return next(iter(tracker.get_latest_entity_values(name)), None)


def _whole_number(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _button_press(reply: Reply) -> bool:
    return reply.text.startswith("/")


def _scale_hint(kind: str) -> str:
    low, high = SCALES[kind]
    return f"Please tap a number from {low} to {high}" + (
        " (5 = loved it, 1 = not happy at all)." if kind == "csat" else " (0 = not at all, 10 = extremely likely).")


@dataclass(frozen=True)
class _Start:
    order_id: Optional[int]
    order_name: Optional[str]
    rated_before: Optional[int]  # the score already given about the order a tapped button named


class ActionStartFeedback(StoreAction):
    """A fresh feedback: which order it is about, and the score a tapped button already gave."""

    apology = FEEDBACK_APOLOGY

    def name(self) -> Text:
        return "action_start_feedback"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[EventType]:
        channel, sender_id = sender_of(tracker)
        program = read_config(get_program)
        kind = program.feedback.kind
        named_order = _whole_number(_entity(tracker, ORDER_ENTITY))
        tapped = _whole_number(_entity(tracker, SCORE_ENTITY))
        events: List[EventType] = []
        if tracker.active_loop.get("name"):  # a feedback button tapped in the middle of something else
            events.append(ActiveLoop(None))
        events += [SlotSet(slot, None) for slot in SLOTS] + [SlotSet(KIND, kind), SlotSet(REQUESTED, None)]

        def work(session: Session) -> _Start:
            customer = customer_for_sender(session, channel, sender_id)
            if customer is None:
                return _Start(None, None, None)
            order = customer_order(session, customer.id, named_order)
            if order is not None:
                earlier = order_feedback(session, customer.id, order.id)
                rated = earlier[0].score if earlier else None
                return _Start(order.id, order_name(order.external_id), rated)
            latest = latest_paid_order(session, customer.id, clock.now(), program.feedback.link_latest_order_days)
            if latest is None:
                return _Start(None, None, None)
            return _Start(latest.id, order_name(latest.external_id), None)

        start = await with_store(work)
        if start.order_id is not None:
            events += [SlotSet(ORDER, str(start.order_id)), SlotSet(ORDER_NAME, start.order_name)]
        if start.rated_before is not None:
            dispatcher.utter_message(text=f"You've already told us how order {start.order_name} went — thank you! "
                                          "If there's more you'd like to tell us, just say \"feedback\".")
            # The score makes the form validate at once, and the validation ends it (nothing to ask).
            return events + [SlotSet(CLOSED, True), SlotSet(SCORE, float(start.rated_before))]
        low, high = SCALES[first_kind(kind)]
        if tapped is not None and low <= tapped <= high:
            events.append(SlotSet(SCORE, float(tapped)))
        log.info("feedback.started", channel=channel, order=start.order_id is not None, tapped=tapped is not None)
        return events


class ActionAskFeedbackScore(Action):
    def name(self) -> Text:
        return "action_ask_feedback_score"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        kind = first_kind(tracker.get_slot(KIND))
        order_id = _whole_number(tracker.get_slot(ORDER))
        name = tracker.get_slot(ORDER_NAME)
        if kind == "csat" and name:
            text = request_text("csat", name)
        elif kind == "csat":
            text = (f"How happy are you with {_shop_name()}? "
                    "Tap a number: 5 = loved it, 1 = not happy at all.")
        else:
            text = (f"How likely are you to recommend {_shop_name()} to a friend? "
                    "Tap a number: 0 = not at all, 10 = extremely likely.")
        dispatcher.utter_message(text=text, buttons=score_buttons(kind, order_id))
        return []


class ActionAskFeedbackNps(Action):
    def name(self) -> Text:
        return "action_ask_feedback_nps"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        dispatcher.utter_message(
            text=f"Thanks! And how likely are you to recommend {_shop_name()} to a friend? "
                 "Tap a number: 0 = not at all, 10 = extremely likely.",
            buttons=score_buttons("nps", _whole_number(tracker.get_slot(ORDER))))
        return []


class ActionAskFeedbackComment(Action):
    """The one open question, worded after the answers: what went wrong, what could be better, what was liked."""

    def name(self) -> Text:
        return "action_ask_feedback_comment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        answers = _answers(tracker.get_slot(KIND), tracker.get_slot(SCORE), tracker.get_slot(NPS))
        policy = _policy()
        if any(is_low(policy, answer) for answer in answers):
            text = "I'm sorry to hear that. What went wrong? Tell me in your own words — it goes straight to our team."
        elif answers and all(is_high(answer) for answer in answers):
            text = "That's great to hear! What did you like most?"
        else:
            text = "Thanks! What could we have done better?"
        dispatcher.utter_message(text=text, buttons=[SKIP_BUTTON])
        return []


def _shop_name() -> str:
    try:
        return get_shop().name
    except ConfigError as error:  # a broken shop file must not silence the question
        log.error("config.invalid", error=str(error))
        return "us"


def _policy() -> FeedbackPolicy:
    try:
        return get_program().feedback
    except ConfigError as error:  # the defaults word the question; submitting reports the problem
        log.error("config.invalid", error=str(error))
        return FeedbackPolicy()


class ValidateFeedbackForm(Action):
    """Every reply while feedback_form is active comes here (the form's validation action). It always
    says which slot comes next (requested_slot), since the NPS question of kind "both" is not in the
    domain's list."""

    def name(self) -> Text:
        return "validate_feedback_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        kind = tracker.get_slot(KIND)
        slots = {slot: tracker.get_slot(slot) for slot in (SCORE, NPS, COMMENT)}
        if started_by(tracker, "action_start_feedback"):
            # The request that started the form is not an answer; a score its button carried is.
            if tracker.get_slot(CLOSED):
                return [SlotSet(REQUESTED, None)]
            return [SlotSet(REQUESTED, next_slot(kind, slots[SCORE], slots[NPS], slots[COMMENT]))]
        reply = latest_reply(tracker)
        requested = tracker.get_slot(REQUESTED)
        others = other_intents(domain, FEEDBACK_INTENTS)
        if requested in (SCORE, NPS):
            changes = self._score(dispatcher, tracker, reply, requested, kind, others)
        elif requested == COMMENT:
            changes = self._comment(tracker, reply, kind, others)
        else:
            changes = {}
        if changes is None:  # not an answer: the request's own rule answers it, then the form asks again
            return [SlotSet(REQUESTED, requested)]
        slots.update(changes)
        return [SlotSet(slot, value) for slot, value in changes.items()] + [
            SlotSet(REQUESTED, next_slot(kind, slots[SCORE], slots[NPS], slots[COMMENT]))]

    @staticmethod
    def _tapped(tracker: Tracker) -> Tuple[bool, Optional[int], bool]:
        """(a score button was tapped, its score, it names another order than this feedback's)."""
        score = _entity(tracker, SCORE_ENTITY)
        if score is None:
            return False, None, False
        named = _whole_number(_entity(tracker, ORDER_ENTITY))
        current = _whole_number(tracker.get_slot(ORDER))
        return True, _whole_number(score), named is not None and named != current

    def _score(self, dispatcher: CollectingDispatcher, tracker: Tracker, reply: Reply, requested: str,
               kind: Optional[str], others: FrozenSet[str]) -> Optional[Dict[str, Any]]:
        scale = "nps" if requested == NPS else first_kind(kind)
        tapped, value, other_order = self._tapped(tracker)
        if other_order:
            return None  # a button about another order: that feedback starts over (its own rule)
        if not tapped:
            value = parse_score(reply.text)
        if value is None:
            if _stop_request(reply) or _button_press(reply) or is_interruption(reply, others):
                return None
            dispatcher.utter_message(text=_scale_hint(scale))
            return {requested: None}
        low, high = SCALES[scale]
        if not low <= value <= high:
            dispatcher.utter_message(text=_scale_hint(scale))
            return {requested: None}
        return {requested: float(value)}

    def _comment(self, tracker: Tracker, reply: Reply, kind: Optional[str],
                 others: FrozenSet[str]) -> Optional[Dict[str, Any]]:
        tapped, value, other_order = self._tapped(tracker)
        if other_order:
            return None
        if tapped:
            # The same question's buttons again (a double tap, a change of mind): the score changes, the
            # "why" is asked again. With two scores it is unclear which one a tap meant: just ask again.
            low, high = SCALES[first_kind(kind)]
            if kind != "both" and value is not None and low <= value <= high:
                return {SCORE: float(value), COMMENT: None}
            return {COMMENT: None}
        if reply.text.startswith("/skip_question"):
            return {COMMENT: ""}
        if _button_press(reply):
            return None  # another button ("My points"): its rule answers
        words = reply.text.strip().lower().rstrip(".!")
        if words in SKIP_WORDS or (reply.intent in ("deny", "skip_question") and len(words.split()) <= 3):
            return {COMMENT: ""}
        if _stop_request(reply):
            return None
        # Any words can be feedback ("delivery was late and nobody answered" reads like a shipping question),
        # so only a question the NLU is sure of, or a short request that is not about the shop, interrupts.
        if is_interruption(reply, others) and (
                "?" in reply.text or (len(reply.text.split()) <= 6 and reply.intent != "faq")):
            return None
        return {COMMENT: " ".join(reply.text.split())}


def _stop_request(reply: Reply) -> bool:
    """"stop", "cancel", "never mind", or no to the score: short messages the rules read as leaving."""
    return reply.intent in ("stop_quiz", "deny") and len(reply.text.split()) <= 4


@dataclass(frozen=True)
class _Stored:
    feedback_ids: Tuple[int, ...]
    created: bool
    low: bool
    high: bool
    goodwill_points: int
    member: bool
    name: Optional[str]
    order_name: Optional[str]


class ActionSubmitFeedback(StoreAction):
    """After the form: the feedback is stored with the conversation and the shopper answered after the score."""
    hands_over_follow_ups = False  # it acts on the answer to its own question

    apology = FEEDBACK_APOLOGY

    def name(self) -> Text:
        return "action_submit_feedback"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[EventType]:
        cleared: List[EventType] = [SlotSet(slot, None) for slot in SLOTS]
        kind = tracker.get_slot(KIND)
        answers = _answers(kind, tracker.get_slot(SCORE), tracker.get_slot(NPS))
        if tracker.get_slot(CLOSED) or not answers:
            return cleared + [SlotSet(LOW, False)]  # nothing to store (already rated, or the form was left)
        comment = tracker.get_slot(COMMENT) or None
        program = read_config(get_program)
        channel, sender_id = sender_of(tracker)
        order_slot = tracker.get_slot(ORDER)
        turns = conversation_turns(tracker)
        language = shopper_language(tracker)

        def work(session: Session) -> _Stored:
            customer = customer_for_sender(session, channel, sender_id)
            customer_id = customer.id if customer else None
            order = customer_order(session, customer_id, order_slot)
            submission = submit_feedback(
                session, program, channel=channel, sender_id=sender_id, customer_id=customer_id,
                order_id=order.id if order else None, answers=[(a.kind, a.score) for a in answers],
                comment=comment, turns=turns, now=clock.now(), language=language,
            )
            return _Stored(
                tuple(row.id for row in submission.feedback), submission.created, submission.low, submission.high,
                submission.goodwill_points, customer is not None, customer.display_name if customer else None,
                order_name(order.external_id) if order else None,
            )

        try:
            stored = await with_store(work, write=True)
        except FeedbackError as error:  # a score the form let through that the service refuses: a bug
            log.error("feedback.refused", error=str(error))
            dispatcher.utter_message(text=FEEDBACK_APOLOGY)
            return cleared + [SlotSet(LOW, False)]
        log.info("feedback.stored", created=stored.created, low=stored.low, high=stored.high, channel=channel,
                 goodwill=stored.goodwill_points, kinds=[a.kind for a in answers])
        self._answer(dispatcher, program, stored)
        return cleared + [SlotSet(LOW, stored.low), SlotSet(IDS, list(stored.feedback_ids) if stored.low else None)]

    @staticmethod
    def _answer(dispatcher: CollectingDispatcher, program: Program, stored: _Stored) -> None:
        name = f", {stored.name}" if stored.name else ""
        if stored.low:
            about = f" that order {stored.order_name} wasn't what you hoped for" if stored.order_name else \
                " we let you down"
            text = (f"I'm really sorry{about} — thank you for telling us. What you wrote is now with our team.")
            if stored.goodwill_points:
                text += f" As an apology, I've added {stored.goodwill_points:,} points to your account."
            dispatcher.utter_message(text=text)
            return
        if stored.high:
            earning = program.earning
            parts = [f"Thank you{name} — that made our day! 🙌",
                     "Would you leave a review? It helps other shoppers"
                     + (f", and earns you {earning.review_text:,} points once it's approved." if stored.member
                        and earning.review_text else ".")]
            buttons = [REVIEW_BUTTON]
            if stored.member and earning.referral_advocate:
                parts.append(f"Or tell a friend about us: they get {earning.referral_friend_percent_off}% off their "
                             f"first order and you get {earning.referral_advocate:,} points.")
                buttons.append(REFER_BUTTON)
            dispatcher.utter_message(text=" ".join(parts), buttons=buttons)
            return
        dispatcher.utter_message(text=f"Thanks for telling us{name} — we read every comment and use it to do better.")


class ActionCancelFeedback(Action):
    def name(self) -> Text:
        return "action_cancel_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        if tracker.active_loop.get("name") == "feedback_form":
            dispatcher.utter_message(text="No problem — I've left the feedback there. Say \"feedback\" any time.")
        return [ActiveLoop(None), SlotSet(REQUESTED, None), SlotSet(LOW, False)] + [
            SlotSet(slot, None) for slot in SLOTS]
