"""A shopper's quiz in the store, one message at a time: start or resume, answer, skip, start over, stop,
the results, the points and the optional email capture.

The conversation keeps nothing but the run's id; everything else lives in the QuizRun row, so a quiz
survives a closed browser, an expired chat session or a switch of action server, and the merchant's
statistics read the same rows. The Rasa form (actions/quiz.py) is a thin shell around `handle_reply` (the
shopper said something) and `prompt_for` (what to ask next).

What a reply can be, checked in this order at a question:
  1. a control word typed exactly ("skip", "start over", "stop", "done");
  2. an option — by label (what the buttons send), synonym, a close spelling or an amount (match_options) —
     unless the NLU is sure it is another request and the options account for under half of its words
     ("how many points do I have?" at "How many do you seat?");
  3. a control intent the NLU is sure of ("can we skip this one");
  4. something else the NLU is sure of (points, shipping…) → the form lets the conversation answer it and
     asks the question again;
  5. nothing: re-asked with the options, MAX_REASKS times; after that the shopper is offered to skip.
"""
from __future__ import annotations

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
from bot.quiz.engine import AnswerError, ProductIndex, Result, match_coverage, match_options, recommend, walk
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
                     "i don't know", "i dont know", "dont know", "don't know", "not sure", "no idea"], SKIP),
    **dict.fromkeys(["start over", "restart", "start again", "begin again", "restart the quiz",
                     "start the quiz over", "from the top", "reset"], RESTART),
    **dict.fromkeys(["stop", "stop quiz", "stop the quiz", "quit", "quit the quiz", "exit", "cancel",
                     "pause", "pause the quiz", "later", "not now"], STOP),
    **dict.fromkeys(["done", "that's all", "thats all", "that's it", "thats it", "finished", "next",
                     "nothing else", "no more", "continue"], FINISH),
}
CONTROL_WORDS: Mapping[str, str] = {normalize(words): control for words, control in _CONTROL_WORDS.items()}
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
    #            repeat | consented | email_saved | email_declined | email_invalid | chose_quiz | gone
    finished: Optional[str] = None  # "done" or "stopped": the form ends
    chosen: Tuple[str, ...] = ()  # option labels just recorded
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
    default branches, so the total can change when an answer branches."""
    path = walk(quiz, run.answers)
    number = len(path.asked) + 1
    total = len(path.asked)
    current = path.next_question
    seen = set(path.asked)
    while current is not None and current != END and current not in seen:
        seen.add(current)
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
    text = f"({number}/{total}) {question.text}"
    if question.multi:
        if pending:
            text += f"\nSo far: {', '.join(_labels(question, [o.id for o in question.options if o.id in pending]))}. Pick more, or tap Done."
            buttons.append(("Done", "Done"))
        else:
            text += "\nPick as many as you like, then tap Done — or type them, e.g. \"oak and linen\"."
            buttons.append(("None of these", "/skip_question"))
    if run.misses > MAX_REASKS:
        buttons.extend((("Skip question", "/skip_question"), ("Stop quiz", "/stop_quiz")))
    return Prompt(text, tuple(buttons), question.id)


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
    words = normalize(reply.text)
    if words in CONTROL_WORDS:
        return CONTROL_WORDS[words]
    if not exact_only and reply.intent in CONTROL_INTENTS and reply.confidence >= CONTROL_CONFIDENCE:
        return CONTROL_INTENTS[reply.intent]
    return None


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
        found = exact or (() if control else match_options(question, reply.text))
        if found and not exact and reply.intent not in ANSWER_LIKE_INTENTS and is_interruption(reply, other_intents) \
                and match_coverage(question, reply.text) < ANSWER_COVERAGE:
            return Outcome("interrupt", run=self.run)  # "how many points do I have?" is not the option "many"
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
        if found and question.multi:
            pending = set(self.run.pending or ()) | set(found)
            self.run.pending = [option.id for option in question.options if option.id in pending]
            self.run.misses = 0
            self._touch()
            return Outcome("noted", chosen=_labels(question, found), run=self.run)
        if found:
            return self._record(question, found, "answered")
        if reply.intent == "start_quiz":  # "help me choose" again, mid-quiz: just ask the question again
            return Outcome("repeat", run=self.run)
        if is_interruption(reply, other_intents):
            return Outcome("interrupt", run=self.run)
        return Outcome("offer_skip" if self._missed() else "missed", run=self.run)

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
