"""A shopper's quiz in the store, one message at a time: start or resume, answer, skip, start over, stop,
the results, the points and the optional email capture.

The conversation keeps nothing but the run's id; everything else lives in the QuizRun row, so a quiz
survives a closed browser, an expired chat session or a switch of action server, and the merchant's
statistics read the same rows. The Rasa form (actions/quiz.py) is a thin shell around `handle_reply` (the
shopper said something) and `prompt_for` (what to ask next).

What a reply can be, checked in this order at a question:
  1. a control word ("skip", "idk", "whatever", "start over", "stop", "never mind", "done"), typed as such
     or nearly (typos, "can we stop");
  2. a clear request for a catalog search ("show me oak desks") → the conversation answers it; nothing
     else about products leaves the quiz ("under 400" is an answer, never a search);
  3. an option — by label (what the buttons send), synonym, a close spelling, another form of its words, a
     position ("the first one"), a count or an amount (bot.quiz.answers) — unless the NLU is sure it is
     another request and the options account for under half of its words ("how many points do I have?"
     at "How many do you seat?");
  4. at a multi-choice question with picks, anything else finishes the question: the reply is then tried
     as the answer to the next question, or handed to the conversation if it is another request;
  5. something else the NLU is sure of (points, shipping…) → the form lets the conversation answer it and
     asks the question again;
  6. an answer to a question still to come ("under 400 bucks" while the materials are asked): kept for it;
  7. nothing: re-asked with the options, MAX_REASKS times; after that the shopper is offered to skip.
An amount in an answer to another question ("oak, under 400") is kept for the budget question too.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.loyalty.earning import award, credit_for
from bot.loyalty.ledger import Conflict
from bot.loyalty.program import Program
from bot.models import Customer, QuizRun
from bot.quiz.definition import END, Question, Quiz
from bot.quiz.answers import (
    ambiguous_options, clear_options, leftover_text, match_coverage, match_options, names_an_amount,
)
from bot.quiz.engine import AnswerError, ProductIndex, Result, recommend, walk
from bot.shared.text import normalize

MAX_REASKS = 2  # unmatched replies re-asked with the options; the next one is offered a skip
RESUMABLE_FOR = timedelta(days=30)  # an unfinished run older than this starts afresh
MAX_EMAIL_CHARS = 254
CONTROL_CONFIDENCE = 0.6  # NLU confidence at which "skip"/"stop"/"start over" intents count
OTHER_INTENT_CONFIDENCE = 0.8  # … and at which another request interrupts the quiz
ANSWER_COVERAGE = 0.5  # below this share of its words matching options, a sure other request is not an answer
# A message about products that names an option is an answer, however sure the NLU is of a search.
ANSWER_LIKE_INTENTS = frozenset({"product_search", "start_quiz"})

IN_PROGRESS, COMPLETED, ABANDONED = "in_progress", "completed", "abandoned"
QUESTIONS, EMAIL_CONSENT, EMAIL_ADDRESS, DONE = "questions", "email_consent", "email_address", "done"

SKIP, RESTART, STOP, FINISH = "skip", "restart", "stop", "finish"
_CONTROL_WORDS: Mapping[str, str] = {
    **dict.fromkeys(["skip", "skip it", "skip this", "skip this one", "skip question", "pass", "next question",
                     "i don't know", "i dont know", "dont know", "don't know", "not sure", "no idea", "idk", "dunno",
                     "no clue", "not sure tbh", "no preference", "doesn't matter", "doesnt matter", "whatever",
                     "whatevs", "any", "anything", "either", "either is fine", "either one", "any is fine",
                     "don't care", "dont care", "i don't mind", "i dont mind", "don't mind", "dont mind",
                     "up to you", "you choose", "you pick", "surprise me", "none", "none of these", "none of them",
                     "neither", "no", "nah", "nope", "not really", "pass on this one", "skp", "skpi", "sikp"], SKIP),
    **dict.fromkeys(["start over", "restart", "start again", "begin again", "restart the quiz",
                     "start the quiz over", "from the top", "reset"], RESTART),
    **dict.fromkeys(["stop", "stop quiz", "stop the quiz", "quit", "quit the quiz", "quit quiz", "exit", "exit quiz",
                     "exit the quiz", "cancel", "cancel the quiz", "cancel quiz", "pause", "pause the quiz", "later",
                     "not now", "never mind", "nevermind", "nvm", "forget it", "forget the quiz", "end the quiz",
                     "end quiz", "leave the quiz", "no more questions", "enough", "enough questions",
                     "i give up", "stp", "stpo", "sotp", "stopp", "qiut"], STOP),
    **dict.fromkeys(["done", "that's all", "thats all", "that's it", "thats it", "finished", "next",
                     "nothing else", "no more", "continue", "that's everything", "all done", "im done", "i'm done",
                     "ok", "okay", "good", "cool", "that's enough", "move on", "next one", "go on", "dnoe", "doen",
                     "donee", "thast it", "taht's it"], FINISH),
}
CONTROL_WORDS: Mapping[str, str] = {normalize(words): control for words, control in _CONTROL_WORDS.items()}
# (A few typos of the short ones are listed: below CONTROL_FUZZY_MIN_CHARS a typo is too close to other words.)
# In a short message that names no option, these words say what the shopper wants ("ok can we stop now").
_CONTROL_IN_MESSAGE: Tuple[Tuple[str, str], ...] = (
    (r"\b(stop|quit|cancel|exit|nevermind|never mind|forget (it|the quiz)|end the quiz|leave the quiz)\b", STOP),
    (r"\b(start (over|again)|restart)\b", RESTART),
    (r"\b(skip|pass)\b|\b(idk|dunno|no idea|not sure|no preference|don'?t care|doesn'?t matter)\b", SKIP),
)
SHORT_MESSAGE_WORDS = 6
CONTROL_FUZZY_CUTOFF = 0.8  # a typed control word: "nevermnd", "cancle", "donee"
CONTROL_FUZZY_MIN_CHARS = 5
# A catalog search asked for in so many words; a product word alone ("oak", "under 400") is an answer.
_SEARCH_REQUEST = re.compile(
    r"\b(show me|search|find me|can you find|look up|do you (have|sell|carry|stock)|have you got|got any|"
    r"browse|let me see|i want to see)\b")
SEARCH_INTENT = "product_search"
# Asking for the quiz again mid-quiz ("help me choose"), told from an answer the NLU files under start_quiz
# ("bedroom"), which is an answer that missed.
_QUIZ_REQUEST = re.compile(r"\b(quiz|help|choose|pick|suits?|recommend|decide|questions?)\b")
CONTROL_INTENTS: Mapping[str, str] = {"skip_question": SKIP, "restart_quiz": RESTART, "stop_quiz": STOP}
YES_WORDS = frozenset(map(normalize, ("yes", "y", "yes please", "sure", "ok", "okay", "yes, email me", "please do",
                                      "go ahead", "yep")))
NO_WORDS = frozenset(map(normalize, ("no", "n", "no thanks", "no thank you", "nope", "not now", "skip", "don't")))
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True)
class Reply:
    """What the shopper sent: the text, and what the NLU made of it."""

    text: str
    intent: Optional[str] = None
    confidence: float = 0.0


@dataclass
class Outcome:
    """What a reply did, for the action to tell the shopper (before it asks what comes next)."""

    kind: str  # answered | noted | skipped | missed | offer_skip | restarted | stopped | completed | interrupt |
    #            repeat | consented | email_saved | email_declined | email_invalid | chose_quiz | gone |
    #            kept_for_later | which_one
    finished: Optional[str] = None  # "done" or "stopped": the form ends
    chosen: Tuple[str, ...] = ()  # option labels just recorded
    notes: List[str] = field(default_factory=list)  # lines for the shopper before anything else ("Got it: Oak.")
    result: Optional[Result] = None
    points_awarded: int = 0
    points_already: bool = False  # finished before: no points this time
    run: Optional[QuizRun] = None  # the run now in use (a new one after "start over")
    extra: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """What to ask next: text, button titles (each sends its own title back) and which question."""

    text: str
    buttons: Tuple[Tuple[str, str], ...]  # (title, payload)
    question_id: Optional[str] = None


# ---------------------------------------------------------------------------------------------
# Finding and starting runs


def open_run(session: Session, channel: str, sender_id: str, now: datetime,
             quiz_id: Optional[str] = None) -> Optional[QuizRun]:
    """The conversation's unfinished run (of `quiz_id`, or of any quiz), if it is recent enough to resume."""
    query = select(QuizRun).where(
        QuizRun.channel == channel, QuizRun.sender_id == sender_id, QuizRun.status == IN_PROGRESS,
        QuizRun.updated_at >= now - RESUMABLE_FOR,
    )
    if quiz_id is not None:
        query = query.where(QuizRun.quiz_id == quiz_id)
    return session.execute(query.order_by(QuizRun.updated_at.desc(), QuizRun.id.desc()).limit(1)).scalars().first()


def active_run(session: Session, run_id: object, channel: str, sender_id: str) -> Optional[QuizRun]:
    """The run a conversation slot names, if it is this conversation's and the conversation is still in it
    (questions, or the email steps after the results)."""
    try:
        key = int(str(run_id))
    except (TypeError, ValueError):
        return None
    run = session.get(QuizRun, key)
    if run is None or (run.channel, run.sender_id) != (channel, sender_id):
        return None
    if run.status == ABANDONED or run.stage == DONE:
        return None
    return run


def fits(quiz: Quiz, run: QuizRun) -> bool:
    """Whether an unfinished run still fits its quiz file (the merchant may have edited it since): its answers
    walk the quiz, and the question it is at and the options picked there still exist."""
    try:
        walk(quiz, run.answers or {})
    except AnswerError:
        return False
    if run.stage != QUESTIONS:
        return True
    question = quiz.question(run.current_question or "")
    return question is not None and all(question.option(option_id) for option_id in run.pending or ())


def start_run(session: Session, quiz: Quiz, channel: str, sender_id: str, customer_id: Optional[int],
              now: datetime) -> QuizRun:
    """A fresh run; an unfinished one of the same quiz in this conversation is marked abandoned."""
    for previous in session.execute(select(QuizRun).where(
        QuizRun.channel == channel, QuizRun.sender_id == sender_id, QuizRun.quiz_id == quiz.id,
        QuizRun.status == IN_PROGRESS,
    )).scalars():
        previous.status, previous.updated_at = ABANDONED, now
    run = QuizRun(
        quiz_id=quiz.id, channel=channel, sender_id=sender_id, customer_id=customer_id, status=IN_PROGRESS,
        stage=QUESTIONS, answers={}, current_question=quiz.start, pending=[], misses=0, results=[], relaxed=[],
        points_awarded=0, started_at=now, updated_at=now,
    )
    session.add(run)
    session.flush()
    return run


def progress(quiz: Quiz, run: QuizRun) -> Tuple[int, int]:
    """(number of the current question, questions on the path) — the rest of the path follows the
    default branches, so the total can change when an answer branches; questions answered ahead of time
    ("under 400" given early) are not counted again."""
    answers = run.answers or {}
    path = walk(quiz, answers)
    number = len(path.asked) + 1
    total = len(path.asked)
    current = path.next_question
    seen = set(path.asked)
    while current is not None and current != END and current not in seen:
        seen.add(current)
        if current == path.next_question or current not in answers:
            total += 1
        current = quiz.question_by_id[current].next
    return number, total


# ---------------------------------------------------------------------------------------------
# What to ask


def _labels(question: Question, option_ids: Sequence[str]) -> Tuple[str, ...]:
    return tuple(question.option_by_id[option_id].label for option_id in option_ids if option_id in question.option_by_id)


def prompt_for(quiz: Quiz, run: QuizRun, known_email: Optional[str] = None) -> Prompt:
    """The question (or email step) the run is at, with its buttons."""
    if run.stage == EMAIL_CONSENT and quiz.email_capture is not None:
        where = f" I'd send them to {mask_email(known_email)}." if known_email else ""
        text = f"{quiz.email_capture.prompt.rstrip()}{where}\n\n{quiz.email_capture.consent.strip()}"
        return Prompt(text, (("Yes, email me", "/affirm"), ("No thanks", "/deny")))
    if run.stage == EMAIL_ADDRESS:
        return Prompt("What email address should I send them to?", (("No thanks", "/deny"),))
    question = quiz.question_by_id[run.current_question]
    number, total = progress(quiz, run)
    buttons: List[Tuple[str, str]] = []
    pending = set(run.pending or ())
    for option in question.options:
        if option.id not in pending:
            buttons.append((option.label, option.label))
    text = f"({number}/{total}) {question.text}\n{how_to_answer(question, bool(pending))}"
    if question.multi:
        if pending:
            so_far = _and_list(_labels(question, [o.id for o in question.options if o.id in pending]))
            text += f"\nSo far: {so_far}."
            buttons.append(("Done", "Done"))
        else:
            buttons.append(("None of these", "/skip_question"))
    if run.misses > MAX_REASKS:
        buttons.extend((("Skip question", "/skip_question"), ("Stop quiz", "/stop_quiz")))
    return Prompt(text, tuple(buttons), question.id)


def _and_list(labels: Sequence[str]) -> str:
    """ "Oak", "Oak and Walnut", "Oak, Walnut and Ash"."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1] if labels else ""


def _or_list(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1] if labels else ""


def _questions_ahead(quiz: Quiz, start: str, answers: Mapping[str, object], exclude: str) -> List[Question]:
    """The questions from `start` along the default branches that have no answer yet."""
    ahead: List[Question] = []
    seen = {exclude}
    current: Optional[str] = start
    while current is not None and current != END and current not in seen:
        seen.add(current)
        question = quiz.question_by_id[current]
        if current not in answers:
            ahead.append(question)
        current = question.next
    return ahead


def clear_options_later(quiz: Quiz, run: QuizRun, question: Question, text: str) -> bool:
    """Whether a reply clearly answers a question after `question` (which is then kept for later)."""
    answers = run.answers or {}
    return any(clear_options(later, text) for later in _questions_ahead(quiz, question.next, answers, question.id)
               if not later.multi)


def how_to_answer(question: Question, picked: bool = False) -> str:
    """The line under every question saying how to answer it, by buttons or by typing."""
    if question.multi:
        if picked:
            return "Tap or type more, or say \"done\" to move on."
        return "Tap or type one or more, then \"done\" (or \"skip\")."
    if question.is_budget:
        return "Tap one or type an amount, like \"under 400\"."
    return "Tap one or type it in your own words."


def mask_email(email: Optional[str]) -> str:
    """"alice.moreau@example.com" → "a***@example.com" (chat transcripts are read by agents)."""
    if not email or "@" not in email:
        return ""
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"


# ---------------------------------------------------------------------------------------------
# Handling a reply


def email_in(text: str) -> Optional[str]:
    """The email address in a reply, if there is one of a usable length."""
    found = EMAIL.search(text[:2 * MAX_EMAIL_CHARS])
    return found.group(0) if found and len(found.group(0)) <= MAX_EMAIL_CHARS else None


def control_of(reply: Reply, exact_only: bool = False) -> Optional[str]:
    """What a control word asks for: typed as such (exact_only), or — once the reply names no option — nearly
    ("nevermnd"), inside a short message ("ok lets stop"), or as the NLU's sure guess ("can we skip this")."""
    words = normalize(reply.text)
    if words in CONTROL_WORDS:
        return CONTROL_WORDS[words]
    if exact_only:
        return None
    if len(words) >= CONTROL_FUZZY_MIN_CHARS:
        close = difflib.get_close_matches(words, [phrase for phrase in CONTROL_WORDS
                                                  if len(phrase) >= CONTROL_FUZZY_MIN_CHARS and phrase[0] == words[0]],
                                          n=1, cutoff=CONTROL_FUZZY_CUTOFF)
        if close:
            return CONTROL_WORDS[close[0]]
    if len(words.split()) <= SHORT_MESSAGE_WORDS:
        for pattern, control in _CONTROL_IN_MESSAGE:
            if re.search(pattern, words):
                return control
    if reply.intent in CONTROL_INTENTS and reply.confidence >= CONTROL_CONFIDENCE:
        return CONTROL_INTENTS[reply.intent]
    return None


def asks_for_search(reply: Reply) -> bool:
    """A catalog search asked for in so many words ("show me oak desks", "do you have lamps?"), which the
    conversation answers even mid-quiz; "under 400" or "oak" is an answer to the quiz, whatever the NLU says."""
    return reply.intent == SEARCH_INTENT and _SEARCH_REQUEST.search(normalize(reply.text)) is not None


def is_interruption(reply: Reply, other_intents: FrozenSet[str]) -> bool:
    return reply.intent in other_intents and reply.confidence >= OTHER_INTENT_CONFIDENCE


class QuizSession:
    """One turn of a run: the quiz, its row and what it needs to finish (catalog, program, customer)."""

    def __init__(self, session: Session, quiz: Quiz, run: QuizRun, index: ProductIndex, program: Program,
                 customer: Optional[Customer], now: datetime) -> None:
        self.session, self.quiz, self.run, self.index = session, quiz, run, index
        self.program, self.customer, self.now = program, customer, now

    def handle(self, reply: Reply, other_intents: FrozenSet[str]) -> Outcome:
        if not fits(self.quiz, self.run):
            outcome = self._restart()
            outcome.kind = "changed"
            return outcome
        if self.run.stage == EMAIL_CONSENT:
            return self._consent(reply, other_intents)
        if self.run.stage == EMAIL_ADDRESS:
            return self._email(reply, other_intents)
        return self._question(reply, other_intents)

    # -- questions -----------------------------------------------------------------------------

    def _question(self, reply: Reply, other_intents: FrozenSet[str]) -> Outcome:
        question = self.quiz.question_by_id[self.run.current_question]
        # An option's own words beat a control word ("nothing else" can be an option of its own).
        words = normalize(reply.text)
        picked = tuple(option.id for option in question.options if option.id in set(self.run.pending or ()))
        exact = tuple(dict.fromkeys(option_id for phrase, option_id in question.match_keys if phrase == words))[:1]
        if exact and question.multi and picked and control_of(reply, exact_only=True) == FINISH:
            exact = ()  # "that's all" after picks finishes, even where it is also an option's synonym
        control = None if exact else control_of(reply, exact_only=True)
        if not exact and not control and asks_for_search(reply):
            return self._hand_over(question, picked)  # "show me oak desks": a search, asked for in so many words
        found = exact or (() if control else match_options(question, reply.text))
        if found and not exact and reply.intent not in ANSWER_LIKE_INTENTS and is_interruption(reply, other_intents) \
                and match_coverage(question, reply.text) < ANSWER_COVERAGE:
            return self._hand_over(question, picked)  # "how many points do I have?" is not the option "many"
        if not control and not found:
            control = control_of(reply)
        if control == SKIP:  # what was already picked at a multi-choice question is kept
            return self._record(question, picked, "answered" if picked else "skipped")
        if control == RESTART:
            return self._restart()
        if control == STOP:
            self._touch()
            return Outcome("stopped", finished="stopped", run=self.run)
        if control == FINISH and question.multi:
            return self._record(question, picked, "answered" if picked else "skipped")
        if found:
            following = question.next_after(found) if not question.multi else question.next
            later = self._keep_for_later(question, reply.text, following, answered=True)
            if question.multi:
                pending = set(self.run.pending or ()) | set(found)
                self.run.pending = [option.id for option in question.options if option.id in pending]
                self.run.misses = 0
                self._touch()
                outcome = Outcome("noted", chosen=_labels(question, found), run=self.run)
            else:
                outcome = self._record(question, found, "answered")
            outcome.notes[:0] = later
            return outcome
        if reply.intent == "start_quiz" and _QUIZ_REQUEST.search(words):
            return Outcome("repeat", run=self.run)  # "help me choose" again, mid-quiz: just ask the question again
        if question.multi and picked:  # clearly not another option: the question is done
            return self._finish_then(question, picked, reply, other_intents)
        if is_interruption(reply, other_intents) and reply.intent != SEARCH_INTENT:
            return Outcome("interrupt", run=self.run)
        later = self._keep_for_later(question, reply.text, question.next, answered=False)
        if later:
            self.run.misses = 0
            return Outcome("kept_for_later", run=self.run, notes=later)
        both = ambiguous_options(question, reply.text)
        if both:
            labels = _labels(question, both)
            return Outcome("which_one", run=self.run, chosen=labels,
                           notes=[f"Just one for this question — which is it: {_or_list(labels)}?"])
        outcome = Outcome("offer_skip" if self._missed() else "missed", run=self.run)
        if reply.intent == SEARCH_INTENT:
            outcome.extra["search_hint"] = "yes"
        return outcome

    def take_opening(self, text: str) -> List[str]:
        """The message that started the quiz may already answer its first question ("help me choose a dining
        table", "which desk suits me?"): recorded when it names one option word for word, with an amount or
        the next question's answer in it kept too. The lines saying so; none when it answers nothing."""
        question = self.quiz.question_by_id.get(self.run.current_question or "")
        if question is None or question.multi or self.run.stage != QUESTIONS or self.run.answers:
            return []
        chosen = clear_options(question, text, min_coverage=0.0)  # the rest is the request: "help me choose…"
        if len(chosen) != 1 or walk(self.quiz, {question.id: list(chosen)}).complete:
            return []
        later = self._keep_for_later(question, text, question.next_after(chosen), answered=True, opening=True)
        outcome = self._record(question, chosen, "answered")
        return [f"Got it: {_and_list(outcome.chosen)}."] + later

    def _hand_over(self, question: Question, picked: Tuple[str, ...]) -> Outcome:
        """Another request: the conversation answers it and the form asks again. Picks made at a multi-choice
        question count as its answer (so the next question is asked) unless that would end the quiz unseen."""
        if question.multi and picked:
            answers = dict(self.run.answers or {})
            answers[question.id] = list(picked)
            if not walk(self.quiz, answers).complete:
                self._record(question, picked, "answered")
        return Outcome("interrupt", run=self.run)

    def _finish_then(self, question: Question, picked: Tuple[str, ...], reply: Reply,
                     other_intents: FrozenSet[str]) -> Outcome:
        """A multi-choice question with picks, and a reply that is no option of it: the picks are the answer,
        and the reply is what it is — the answer to the next question when it fits it, another request for
        the conversation, or (an "ok", "cool") nothing more."""
        answers = dict(self.run.answers or {})
        answers[question.id] = list(picked)
        if walk(self.quiz, answers).complete:
            return self._record(question, picked, "answered")
        if is_interruption(reply, other_intents) and reply.intent != SEARCH_INTENT:
            return self._hand_over(question, picked)
        finished = self._record(question, picked, "answered")
        got_it = f"Got it: {_and_list(finished.chosen)}."
        following = self.quiz.question_by_id[self.run.current_question]
        if match_options(following, reply.text) or clear_options_later(self.quiz, self.run, following, reply.text):
            outcome = self._question(reply, other_intents)
            if outcome.kind not in ("missed", "offer_skip", "interrupt"):
                outcome.notes.insert(0, got_it)
                return outcome
        finished.notes.append(got_it)
        return finished

    def _keep_for_later(self, question: Question, text: str, following: str, answered: bool,
                        opening: bool = False) -> List[str]:
        """An answer to a question still to come, kept in the run so that question is passed over when the
        quiz gets there: an amount for the budget ("oak, under 400 bucks"), the next question's answer in the
        rest of the message ("dining room, usually six of us"), or — when the reply answers nothing here — a
        clear answer to a single-choice question ahead ("cheap stuff" at the materials). The lines saying so."""
        notes: List[str] = []
        answers = dict(self.run.answers or {})
        # The rest of an answer is read for what comes next; a request that opened the quiz is read whole, its
        # request words aside ("help me choose a table for dinner parties": dining room, 6 or more).
        rest = leftover_text(question, text) if answered and not opening else text
        coverage = 0.0 if opening else 0.5
        for later in _questions_ahead(self.quiz, following, answers, exclude=question.id):
            if later.multi:
                continue
            if later.is_budget and not question.is_budget and names_an_amount(rest):
                chosen = clear_options(later, rest)
            elif answered and later.id != following:
                continue
            else:  # the question right after the one answered ("dining room, six of us"), or any when none was
                chosen = clear_options(later, rest, min_coverage=coverage)
            if len(chosen) != 1:
                continue
            answers[later.id] = list(chosen)
            notes.append(f"Got it: {_labels(later, chosen)[0]} (for \"{later.text}\").")
            if not answered:
                break
        if notes:
            self.run.answers = answers
            self._touch()
        return notes

    def _record(self, question: Question, chosen: Tuple[str, ...], kind: str) -> Outcome:
        answers = dict(self.run.answers or {})
        answers[question.id] = list(chosen)
        self.run.answers = answers  # a new dict: the JSON column only notices assignment
        self.run.pending, self.run.misses = [], 0
        path = walk(self.quiz, answers)
        self.run.current_question = path.next_question
        self._touch()
        if not path.complete:
            return Outcome(kind, chosen=_labels(question, chosen), run=self.run)
        return self._complete(_labels(question, chosen))

    def _complete(self, chosen: Tuple[str, ...]) -> Outcome:
        result = recommend(self.quiz, self.run.answers, self.index)
        run = self.run
        run.results = [
            {"sku": pick.product.sku, "score": pick.score, "reasons": list(pick.reasons)} for pick in result.recommendations
        ]
        run.relaxed = list(result.relaxed)
        run.status, run.completed_at, run.current_question = COMPLETED, self.now, None
        run.stage = EMAIL_CONSENT if self.quiz.email_capture is not None and result.recommendations else DONE
        points, already = self._award()
        run.points_awarded = points
        return Outcome("completed", finished=None if run.stage == EMAIL_CONSENT else "done", chosen=chosen,
                       result=result, points_awarded=points, points_already=already, run=run)

    def _award(self) -> Tuple[int, bool]:
        """The quiz's points, once per quiz per customer (the ledger's idempotency key says so)."""
        if self.customer is None or self.program.earning.quiz_completion <= 0:
            return 0, False
        credit = credit_for(self.program, self.customer.id, "quiz_completion", self.quiz.id, self.now)
        try:
            posted = award(self.session, self.program, self.customer.id, credit, self.now)
        except Conflict:  # awarded before, when the program gave another amount: still once per quiz
            return 0, True
        return (credit.points, False) if posted.created else (0, True)

    def _restart(self) -> Outcome:
        run = start_run(self.session, self.quiz, self.run.channel, self.run.sender_id,
                        self.customer.id if self.customer else self.run.customer_id, self.now)
        self.run = run
        return Outcome("restarted", run=run)

    # -- email capture -------------------------------------------------------------------------

    def _consent(self, reply: Reply, other_intents: FrozenSet[str]) -> Outcome:
        words = normalize(reply.text)
        yes = reply.intent == "affirm" and reply.confidence >= CONTROL_CONFIDENCE or words in YES_WORDS
        no = reply.intent == "deny" and reply.confidence >= CONTROL_CONFIDENCE or words in NO_WORDS
        control = control_of(reply)
        if control == RESTART:
            return self._restart()
        if (no and not yes) or control in (SKIP, STOP):  # "no thanks, don't email bob@…" is a no
            return self._decline()
        address = email_in(reply.text)
        if address or yes:
            capture = self.quiz.email_capture
            assert capture is not None
            self.run.consent_text, self.run.consent_at = capture.consent.strip(), self.now
            email = address or (self.customer.email if self.customer else None)
            if email:
                return self._save_email(email)
            self.run.stage = EMAIL_ADDRESS
            self._touch()
            return Outcome("consented", run=self.run)
        if is_interruption(reply, other_intents):
            return Outcome("interrupt", run=self.run)
        if self._missed():
            return self._decline()
        return Outcome("missed", run=self.run)

    def _email(self, reply: Reply, other_intents: FrozenSet[str]) -> Outcome:
        address = email_in(reply.text)
        if address:
            return self._save_email(address)
        if control_of(reply) == RESTART:
            return self._restart()
        words = normalize(reply.text)
        if words in NO_WORDS or reply.intent == "deny" or control_of(reply) in (SKIP, STOP):
            self.run.consent_text = self.run.consent_at = None  # no address given: no consent on file
            return self._decline()
        if is_interruption(reply, other_intents):
            return Outcome("interrupt", run=self.run)
        if self._missed():
            self.run.consent_text = self.run.consent_at = None
            return self._decline()
        return Outcome("email_invalid", run=self.run)

    def _save_email(self, email: str) -> Outcome:
        self.run.email = email.strip()
        if self.run.consent_at is None:
            capture = self.quiz.email_capture
            assert capture is not None
            self.run.consent_text, self.run.consent_at = capture.consent.strip(), self.now
        self.run.stage, self.run.misses = DONE, 0
        self._touch()
        return Outcome("email_saved", finished="done", run=self.run, extra={"email": mask_email(self.run.email)})

    def _decline(self) -> Outcome:
        self.run.stage, self.run.misses = DONE, 0
        self._touch()
        return Outcome("email_declined", finished="done", run=self.run)

    def _missed(self) -> bool:
        """Count a reply that matched nothing; True once it is one more than MAX_REASKS."""
        self.run.misses = (self.run.misses or 0) + 1
        self._touch()
        return self.run.misses > MAX_REASKS

    def _touch(self) -> None:
        self.run.updated_at = self.now
