"""The product quiz as a Rasa form (quiz_form) around bot.quiz.runs, which keeps the quiz in the store.

    start_quiz  → action_start_quiz (picks the quiz, starts or resumes the run) → quiz_form
    quiz_form   asks with action_ask_quiz_step (the run's current question, or the email steps) and hands
                every reply to validate_quiz_form, which records it. The form's one slot, quiz_step, stays
                empty while there is more to ask; "done" or "stopped" ends the form.
    form ended  → action_quiz_finish (the closing line; the slots are cleared for next time)

A reply the quiz cannot use but the NLU is sure is another request (points, shipping, "talk to a person")
makes the validation return nothing: Rasa then rejects the form, the request's own rule answers it, and the
form asks its question again (or, for requests that start a conversation of their own, the rules run
action_pause_quiz first).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.cards import product_card
from actions.common import StoreAction, StoreUnavailable, read_config, sender_of, with_store
from actions.forms import latest_reply, other_intents, started_by
from bot import clock
from bot.catalog.snapshot import CatalogSnapshot, catalog_snapshot, quizzes_for
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, get_program
from bot.models import QuizRun
from bot.quiz.definition import Quiz
from bot.quiz.engine import Result
from bot.quiz.runs import (
    ABANDONED, DONE as STAGE_DONE, EMAIL_ADDRESS, EMAIL_CONSENT, Outcome, Prompt, QuizSession, Reply, active_run,
    fits, is_interruption, open_run, prompt_for, start_run,
)
from bot.settings import get_settings
from bot.shared.text import normalize

log = get_logger(__name__)

STEP, RUN = "quiz_step", "quiz_run_id"
DONE, STOPPED = "done", "stopped"
# Replies the quiz handles itself or treats as an unclear answer, never as another request.
QUIZ_INTENTS = frozenset({
    "start_quiz", "restart_quiz", "skip_question", "stop_quiz", "affirm", "deny", "out_of_scope", "nlu_fallback",
})
CONTINUE_BUTTON = {"title": "Continue quiz", "payload": "/start_quiz"}
QUIZ_STOPPED = ("Okay, I've stopped the quiz — no more questions. Your answers are saved: say \"continue the quiz\" "
                "whenever you'd like to pick it up again.")
NO_QUIZ = "Sorry — I don't have a quiz ready right now. Tell me what you're looking for instead, e.g. \"oak desks under $400\"."



def _entity(tracker: Tracker, name: str) -> Optional[str]:
    value = next(tracker.get_latest_entity_values(name), None)
    return str(value) if value is not None else None


def pick_quiz(quizzes: Dict[str, Quiz], named: Optional[str]) -> Optional[Quiz]:
    """The quiz a shopper named (by id or title), or the only one there is."""
    if named:
        wanted = normalize(named)
        for quiz in quizzes.values():
            if wanted in (normalize(quiz.id), normalize(quiz.title)):
                return quiz
    return next(iter(quizzes.values())) if len(quizzes) == 1 else None


QUIZ_APOLOGY = "Sorry — the quiz isn't available right now. Tell me what you're looking for instead, e.g. \"oak desks under $400\"."


def load_quizzes_now(session: Session) -> Tuple[CatalogSnapshot, Dict[str, Quiz]]:
    snapshot = catalog_snapshot(session)
    return snapshot, read_config(lambda: quizzes_for(snapshot, get_settings().quizzes_dir))


def quiz_buttons(quizzes: Dict[str, Quiz]) -> List[Dict[str, str]]:
    return [{"title": quiz.title[:20], "payload": quiz.title} for quiz in quizzes.values()]


def _send_prompt(dispatcher: CollectingDispatcher, prompt: Prompt) -> None:
    dispatcher.utter_message(text=prompt.text, buttons=[{"title": title, "payload": payload} for title, payload in prompt.buttons])


# ---------------------------------------------------------------------------------------------
# Starting


class ActionStartQuiz(StoreAction):
    """start_quiz / restart_quiz: start the named (or only) quiz, or resume the one left unfinished."""

    apology = QUIZ_APOLOGY

    def name(self) -> Text:
        return "action_start_quiz"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        events = await super().run(dispatcher, tracker, domain)
        # After an apology the form the rule runs next must not start (and ask, and fail again): listen instead.
        return events or self.not_starting()

    @staticmethod
    def not_starting() -> List[Dict[Text, Any]]:
        return [SlotSet(RUN, None), SlotSet(STEP, None), FollowupAction("action_listen")]

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        named = _entity(tracker, "quiz")
        fresh = (tracker.latest_message.get("intent") or {}).get("name") == "restart_quiz"

        opening = str((tracker.latest_message or {}).get("text") or "")

        def work(session: Session) -> Tuple[Optional[QuizRun], Optional[Quiz], bool, Dict[str, Quiz], List[str]]:
            now = clock.now()
            snapshot, quizzes = load_quizzes_now(session)
            customer = customer_for_sender(session, channel, sender_id)
            quiz = pick_quiz(quizzes, named)
            previous = open_run(session, channel, sender_id, now, quiz.id if quiz else None)
            if previous is not None and previous.quiz_id in quizzes and not fits(quizzes[previous.quiz_id], previous):
                previous.status, previous.updated_at = ABANDONED, now  # the quiz was edited since: begin again
                quiz, previous = quiz or quizzes[previous.quiz_id], None
            if previous is not None and previous.quiz_id in quizzes and not fresh:
                if previous.customer_id is None and customer is not None:
                    previous.customer_id = customer.id
                return previous, quizzes[previous.quiz_id], True, quizzes, []
            if quiz is None:
                return None, None, False, quizzes, []
            run = start_run(session, quiz, channel, sender_id, customer.id if customer else None, now)
            # "help me choose a dining table" already answers "Which room?"
            taken = QuizSession(session, quiz, run, snapshot.index, get_program(), customer, now).take_opening(opening)
            return run, quiz, False, quizzes, taken

        run, quiz, resumed, quizzes, taken = await with_store(work, write=True)
        if not quizzes:
            dispatcher.utter_message(text=NO_QUIZ)
            return self.not_starting()
        if run is None or quiz is None:
            return [SlotSet(RUN, None), SlotSet(STEP, None)]  # the form asks which quiz
        log.info("quiz.start", quiz=quiz.id, run_id=run.id, resumed=resumed)
        if resumed:
            dispatcher.utter_message(text=f"Welcome back! Let's pick up your {quiz.title} quiz where you left off "
                                          "(say \"start over\" to begin again).")
        else:
            dispatcher.utter_message(text=quiz.intro)
        if taken:
            dispatcher.utter_message(text="\n".join(taken))
        return [SlotSet(RUN, str(run.id)), SlotSet(STEP, None)]


# ---------------------------------------------------------------------------------------------
# Asking


class ActionAskQuizStep(StoreAction):
    """The form's question: the run's current question with its options as buttons, or an email step."""
    hands_over_follow_ups = False  # a form's question, never the answer to a free message

    apology = QUIZ_APOLOGY

    def name(self) -> Text:
        return "action_ask_quiz_step"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        run_id = tracker.get_slot(RUN)

        def work(session: Session) -> Tuple[Optional[Prompt], Dict[str, Quiz]]:
            _, quizzes = load_quizzes_now(session)
            run = active_run(session, run_id, channel, sender_id)
            if run is None or run.quiz_id not in quizzes:
                return None, quizzes
            if not fits(quizzes[run.quiz_id], run):  # edited this very moment: the next reply starts it afresh
                return Prompt("The quiz has just been updated — say \"start over\" to begin it again.", ()), quizzes
            customer = customer_for_sender(session, channel, sender_id)
            return prompt_for(quizzes[run.quiz_id], run, customer.email if customer else None), quizzes

        prompt, quizzes = await with_store(work)
        if prompt is not None:
            _send_prompt(dispatcher, prompt)
        elif quizzes:
            dispatcher.utter_message(text="Which quiz would you like to take?", buttons=quiz_buttons(quizzes))
        else:
            dispatcher.utter_message(text=NO_QUIZ)
        return []


# ---------------------------------------------------------------------------------------------
# Listening


def result_elements(program: Program, result: Result) -> List[Dict[str, Any]]:
    """The picks as product cards: title, price and the reason, image, a link to the product page."""
    return [product_card(program, pick.product.title, pick.product.price, [pick.reason], pick.product.url,
                         pick.product.image_url) for pick in result.recommendations]


def results_text(result: Result) -> str:
    """The line above the cards (which carry each pick's price and reason)."""
    if not result.recommendations:
        return ("I couldn't find anything in stock that fits those answers right now, sorry. "
                "Try the quiz again with a different budget, or tell me what you're looking for.")
    if result.note:
        return result.note
    if len(result.recommendations) == 1:
        return "Here's my top pick for you:"
    return f"Here are my top {len(result.recommendations)} picks for you:"


def points_line(program: Program, outcome: Outcome, member: bool) -> Optional[str]:
    earn = program.earning.quiz_completion
    if earn <= 0:
        return None
    if outcome.points_awarded:
        return f"You've earned {outcome.points_awarded} points for finishing the quiz."
    if outcome.points_already:
        return None
    if not member:
        return f"Members earn {earn} points for finishing a quiz — say \"link my account\" if you have one with us."
    return None


class ValidateQuizForm(Action):
    """Every reply while quiz_form is active comes here (as the form's validation action)."""

    def name(self) -> Text:
        return "validate_quiz_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        if started_by(tracker, "action_start_quiz"):
            return []  # the slots stay as action_start_quiz left them
        channel, sender_id = sender_of(tracker)
        reply = latest_reply(tracker)
        run_id = tracker.get_slot(RUN)
        others = other_intents(domain, QUIZ_INTENTS)

        def work(session: Session) -> Tuple[Optional[Outcome], Optional[Quiz], Program, bool]:
            now = clock.now()
            program = get_program()
            snapshot, quizzes = load_quizzes_now(session)
            customer = customer_for_sender(session, channel, sender_id)
            member = customer is not None
            run = active_run(session, run_id, channel, sender_id)
            if run is None:
                chosen = _choose(session, quizzes, reply, channel, sender_id, customer.id if customer else None, now)
                return chosen, None, program, member
            quiz = quizzes.get(run.quiz_id)
            if quiz is None:  # the merchant removed the quiz mid-run
                return Outcome("gone", finished=DONE), None, program, member
            outcome = QuizSession(session, quiz, run, snapshot.index, program, customer, now).handle(reply, others)
            return outcome, quiz, program, member

        try:
            outcome, quiz, program, member = await with_store(work, write=True)
        except Exception:  # a failing store or bug ends the quiz with an apology, never with silence
            log.exception("quiz.validate_failed")
            dispatcher.utter_message(text=QUIZ_APOLOGY)
            return [SlotSet(STEP, STOPPED)]
        if outcome is None:  # no quiz chosen and the reply names none
            if is_interruption(reply, others):
                return []
            dispatcher.utter_message(text="Sorry, which quiz? Tap one of these:")
            return [SlotSet(STEP, None)]
        if outcome.kind == "interrupt":
            log.info("quiz.interrupted", intent=reply.intent)
            return []
        self._tell(dispatcher, outcome, program, member)
        events: List[EventType] = [SlotSet(STEP, outcome.finished)]
        if outcome.run is not None:
            events.append(SlotSet(RUN, str(outcome.run.id)))
        if outcome.kind in ("completed", "email_saved"):
            log.info("quiz.progress", kind=outcome.kind, quiz=quiz.id if quiz else None,
                     run_id=outcome.run.id if outcome.run else None, points=outcome.points_awarded)
        return events

    @staticmethod
    def _tell(dispatcher: CollectingDispatcher, outcome: Outcome, program: Program, member: bool) -> None:
        kind = outcome.kind
        if outcome.notes:
            dispatcher.utter_message(text="\n".join(outcome.notes))
        if kind == "chose_quiz":
            dispatcher.utter_message(text=outcome.extra["intro"])
        elif kind == "skipped":
            dispatcher.utter_message(text="Okay, skipping that one.")
        elif kind == "missed" and outcome.extra.get("search_hint"):
            dispatcher.utter_message(text="We're in the middle of the quiz, so I haven't searched the shop. Tap or type "
                                          "an answer, or say \"show me …\" to search, or \"stop\" to leave the quiz.")
        elif kind == "missed":
            dispatcher.utter_message(text="Sorry, I didn't catch that — tap one of the options, or say it in your own "
                                          "words (or \"skip\", or \"stop\" to leave the quiz).")
        elif kind == "offer_skip":
            dispatcher.utter_message(text="I still can't match that to one of the options. You can skip this question, "
                                          "or stop the quiz and come back to it later.")
        elif kind == "restarted":
            dispatcher.utter_message(text="Okay, starting over.")
        elif kind == "changed":
            dispatcher.utter_message(text="The quiz has changed since you started it, so let's begin again.")
        elif kind == "repeat":
            dispatcher.utter_message(text="We're in the middle of the quiz — here's where we were:")
        elif kind == "completed" and outcome.result is not None:
            dispatcher.utter_message(text=results_text(outcome.result))
            elements = result_elements(program, outcome.result)
            if elements:
                dispatcher.utter_message(elements=elements)
            line = points_line(program, outcome, member)
            if line:
                dispatcher.utter_message(text=line)
        elif kind == "email_invalid":
            dispatcher.utter_message(text="That doesn't look like an email address — could you check it? "
                                          "(Or tap \"No thanks\".)")
        elif kind == "email_saved":
            dispatcher.utter_message(text=f"Thanks! I've noted {outcome.extra.get('email')} with your consent — "
                                          "we'll email you these picks.")
        elif kind == "email_declined":
            dispatcher.utter_message(text="No problem.")
        elif kind == "gone":
            dispatcher.utter_message(text="Sorry — that quiz isn't available any more.")


def _choose(session: Session, quizzes: Dict[str, Quiz], reply: Reply, channel: str, sender_id: str,
            customer_id: Optional[int], now: datetime) -> Optional[Outcome]:
    """No run yet: the reply should name one of several quizzes."""
    quiz = pick_quiz(quizzes, reply.text)
    if quiz is None:
        return None
    run = start_run(session, quiz, channel, sender_id, customer_id, now)
    return Outcome("chose_quiz", run=run, extra={"intro": quiz.intro})


# ---------------------------------------------------------------------------------------------
# Ending and pausing


class ActionQuizFinish(Action):
    """After the form: the closing line for a finished quiz or a paused one; the slots are cleared."""

    def name(self) -> Text:
        return "action_quiz_finish"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        step = tracker.get_slot(STEP)
        if step == STOPPED:
            dispatcher.utter_message(text=QUIZ_STOPPED, buttons=[CONTINUE_BUTTON])
        elif step == DONE:
            dispatcher.utter_message(
                text="Anything else? You can also ask me for something specific, like \"oak desks under $400\".",
                buttons=[{"title": "Start over", "payload": "/restart_quiz"},
                         {"title": "My points", "payload": "/check_points"}])
        return [SlotSet(STEP, None), SlotSet(RUN, None)]


class ActionPauseQuiz(Action):
    """A request that starts a conversation of its own (a person, a reward) leaves the quiz for later; after
    the results (the email question) there is nothing left to resume, so that counts as a "no thanks"."""

    def name(self) -> Text:
        return "action_pause_quiz"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        channel, sender_id = sender_of(tracker)
        run_id = tracker.get_slot(RUN)

        def leave(session: Session) -> bool:
            run = active_run(session, run_id, channel, sender_id)
            if run is None or run.stage not in (EMAIL_CONSENT, EMAIL_ADDRESS):
                return False
            run.stage, run.consent_text, run.consent_at, run.updated_at = STAGE_DONE, None, None, clock.now()
            return True

        try:
            finished = await with_store(leave, write=True)
        except StoreUnavailable:
            finished = False
        if not finished:
            dispatcher.utter_message(text="I've paused the quiz — say \"continue the quiz\" any time to pick it up.")
        return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet(STEP, None), SlotSet(RUN, None)]
