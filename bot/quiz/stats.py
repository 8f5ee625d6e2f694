"""Quiz analytics for the merchant: starts, completions, drop-off per question, answers, top picks.

`quiz_stats(session, quiz, since, until)` reads the quiz_runs table (bot.models.QuizRun) for the runs
*started* in the window [since, until) — a cohort: a run started on the last day that finishes the next
counts as completed. Counts by status, emails and points are SQL aggregates; the rest walks the JSON
columns in Python, streaming the rows (a few columns, no ORM objects), which is fine up to ~100k runs.

Per question:
- reached: runs that got to it (answered, skipped, or being asked: `current_question`);
- answered / skipped: runs with at least one option chosen / with [] (skipped);
- dropped: unfinished runs (in progress or abandoned) whose current question it is;
- drop-off rate: dropped / reached.
The answer distribution counts each option once per run; a share is of the runs that answered the
question (at a multi-choice question shares add up to more than 100%).

Questions come in the quiz file's order; questions and options a run names that the file no longer has
(the merchant edited the quiz) are counted under their raw id, after the known ones. Without a Quiz
(the file is gone or does not load) every question is shown by its raw id.
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from bot.models import Product, QuizRun
from bot.quiz.definition import Quiz
from bot.quiz.runs import ABANDONED, COMPLETED, IN_PROGRESS

STREAM_BATCH = 1000
DEFAULT_TOP_PRODUCTS = 10


@dataclass(frozen=True)
class AnswerCount:
    option_id: str
    label: str  # the option's label, or the raw id when the quiz no longer has the option
    count: int
    share: float  # of the runs that answered the question (0.0 when none did)
    known: bool = True


@dataclass(frozen=True)
class QuestionStats:
    question_id: str
    text: str  # the question's text, or the raw id when the quiz no longer has it
    reached: int
    answered: int
    skipped: int
    dropped: int
    drop_off_rate: float  # dropped / reached (0.0 when nobody reached it)
    answers: Tuple[AnswerCount, ...]  # most chosen first, then the file's order; options never chosen too
    known: bool = True


@dataclass(frozen=True)
class ProductStats:
    sku: str
    title: Optional[str]  # from the products table; None when the store no longer has the SKU
    times: int  # runs that recommended it
    top: int  # runs that recommended it first


@dataclass(frozen=True)
class QuizStats:
    quiz_id: str
    title: str
    since: Optional[datetime]
    until: Optional[datetime]
    starts: int
    completions: int
    completion_rate: float
    in_progress: int
    abandoned: int  # "start over": the shopper began again (counted again in starts)
    median_time_to_complete: Optional[timedelta]
    emails_captured: int  # runs with an email address and the shopper's consent recorded
    points_awarded: int
    questions: Tuple[QuestionStats, ...] = field(default=())
    products: Tuple[ProductStats, ...] = field(default=())  # most recommended first
    defined: bool = True  # False: computed without the quiz file (questions and options by raw id)

    def question(self, question_id: str) -> Optional[QuestionStats]:
        return next((question for question in self.questions if question.question_id == question_id), None)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: datetimes in ISO 8601, the median time in seconds, rates as fractions."""
        median = self.median_time_to_complete
        return {
            "quiz_id": self.quiz_id,
            "title": self.title,
            "defined": self.defined,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "starts": self.starts,
            "completions": self.completions,
            "completion_rate": _rate(self.completion_rate),
            "in_progress": self.in_progress,
            "abandoned": self.abandoned,
            "median_seconds_to_complete": median.total_seconds() if median is not None else None,
            "emails_captured": self.emails_captured,
            "points_awarded": self.points_awarded,
            "questions": [
                {
                    "id": question.question_id, "text": question.text, "known": question.known,
                    "reached": question.reached, "answered": question.answered, "skipped": question.skipped,
                    "dropped": question.dropped, "drop_off_rate": _rate(question.drop_off_rate),
                    "answers": [
                        {"id": answer.option_id, "label": answer.label, "known": answer.known,
                         "count": answer.count, "share": _rate(answer.share)}
                        for answer in question.answers
                    ],
                }
                for question in self.questions
            ],
            "products": [
                {"sku": product.sku, "title": product.title, "times": product.times, "top": product.top}
                for product in self.products
            ],
        }


def _rate(value: float) -> float:
    return round(value, 4)


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _utc(moment: Optional[datetime]) -> Optional[datetime]:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _option_ids(value: Any) -> List[str]:
    """An answer's option ids, each once ([] = skipped); tolerant of a bare id or junk."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(dict.fromkeys(str(item) for item in value if item is not None))
    return [str(value)]


def _result_skus(results: Any) -> List[str]:
    """The recommended SKUs of a run, best first, each once."""
    skus: List[str] = []
    for item in results if isinstance(results, list) else ():
        sku = item.get("sku") if isinstance(item, dict) else item if isinstance(item, str) else None
        if sku and sku not in skus:
            skus.append(str(sku))
    return skus


class _QuestionTally:
    __slots__ = ("reached", "answered", "skipped", "dropped", "options")

    def __init__(self) -> None:
        self.reached = self.answered = self.skipped = self.dropped = 0
        self.options: Counter = Counter()


def quiz_ids_with_runs(session: Session) -> List[str]:
    """Every quiz id some run names, sorted."""
    return sorted(session.execute(select(QuizRun.quiz_id).distinct()).scalars())


def quiz_stats(session: Session, quiz: Union[Quiz, str], since: Optional[datetime] = None,
               until: Optional[datetime] = None, top: int = DEFAULT_TOP_PRODUCTS) -> QuizStats:
    """The statistics of one quiz (a loaded Quiz, or just its id) over the runs started in [since, until)
    (either end open when None); `top` most recommended products."""
    definition = quiz if isinstance(quiz, Quiz) else None
    quiz_id = definition.id if definition is not None else str(quiz)
    since, until = _utc(since), _utc(until)
    window = [QuizRun.quiz_id == quiz_id]
    if since is not None:
        window.append(QuizRun.started_at >= since)
    if until is not None:
        window.append(QuizRun.started_at < until)
    where = and_(*window)

    by_status: Dict[str, int] = {}
    points = 0
    for status, count, status_points in session.execute(
        select(QuizRun.status, func.count(), func.coalesce(func.sum(QuizRun.points_awarded), 0))
        .where(where).group_by(QuizRun.status)
    ):
        by_status[status] = count
        points += int(status_points or 0)
    starts = sum(by_status.values())
    completions = by_status.get(COMPLETED, 0)
    emails = session.execute(
        select(func.count()).select_from(QuizRun)
        .where(where, QuizRun.email.isnot(None), QuizRun.consent_at.isnot(None))
    ).scalar_one()

    tallies: Dict[str, _QuestionTally] = {}
    durations: List[float] = []
    recommended: Counter = Counter()
    first: Counter = Counter()
    if starts:
        rows = session.execute(
            select(QuizRun.status, QuizRun.answers, QuizRun.current_question, QuizRun.results,
                   QuizRun.started_at, QuizRun.completed_at)
            .where(where).execution_options(yield_per=STREAM_BATCH)
        )
        for status, answers, current, results, started_at, completed_at in rows:
            _tally_run(tallies, status, answers, current)
            if status == COMPLETED and completed_at is not None and started_at is not None:
                durations.append(max((completed_at - started_at).total_seconds(), 0.0))
            skus = _result_skus(results)
            recommended.update(skus)
            if skus:
                first[skus[0]] += 1

    ranked = sorted(recommended, key=lambda sku: (-recommended[sku], -first[sku], sku))[:max(top, 0)]
    titles = _titles(session, ranked)
    return QuizStats(
        quiz_id=quiz_id,
        title=definition.title if definition is not None else quiz_id,
        since=since,
        until=until,
        starts=starts,
        completions=completions,
        completion_rate=_ratio(completions, starts),
        in_progress=by_status.get(IN_PROGRESS, 0),
        abandoned=by_status.get(ABANDONED, 0),
        median_time_to_complete=timedelta(seconds=statistics.median(durations)) if durations else None,
        emails_captured=int(emails),
        points_awarded=points,
        questions=_questions(definition, tallies),
        products=tuple(ProductStats(sku, titles.get(sku), recommended[sku], first[sku]) for sku in ranked),
        defined=definition is not None,
    )


def _tally_run(tallies: Dict[str, _QuestionTally], status: str, answers: Any, current: Optional[str]) -> None:
    seen = set()
    for question_id, value in (answers.items() if isinstance(answers, dict) else ()):
        question_id = str(question_id)
        tally = tallies.setdefault(question_id, _QuestionTally())
        tally.reached += 1
        seen.add(question_id)
        chosen = _option_ids(value)
        if chosen:
            tally.answered += 1
            tally.options.update(chosen)
        else:
            tally.skipped += 1
    if current:
        tally = tallies.setdefault(current, _QuestionTally())
        if current not in seen:
            tally.reached += 1
        if status != COMPLETED:
            tally.dropped += 1


def _questions(definition: Optional[Quiz], tallies: Mapping[str, _QuestionTally]) -> Tuple[QuestionStats, ...]:
    empty = _QuestionTally()
    out: List[QuestionStats] = []
    known_ids = set()
    if definition is not None:
        for question in definition.questions:
            known_ids.add(question.id)
            tally = tallies.get(question.id, empty)
            labels = [(option.id, option.label) for option in question.options]
            out.append(_question_stats(question.id, question.text, True, tally, labels))
    for question_id in sorted(set(tallies) - known_ids):
        out.append(_question_stats(question_id, question_id, False, tallies[question_id], []))
    return tuple(out)


def _question_stats(question_id: str, text: str, known: bool, tally: _QuestionTally,
                    labels: Iterable[Tuple[str, str]]) -> QuestionStats:
    order: Dict[str, Tuple[int, str, bool]] = {}
    for position, (option_id, label) in enumerate(labels):
        order[option_id] = (position, label, True)
    for option_id in sorted(set(tally.options) - set(order)):
        order[option_id] = (len(order), option_id, False)
    answers = sorted(
        (AnswerCount(option_id, label, tally.options[option_id], _ratio(tally.options[option_id], tally.answered),
                     option_known)
         for option_id, (_, label, option_known) in order.items()),
        key=lambda answer: (-answer.count, order[answer.option_id][0]),
    )
    return QuestionStats(
        question_id=question_id, text=text, reached=tally.reached, answered=tally.answered, skipped=tally.skipped,
        dropped=tally.dropped, drop_off_rate=_ratio(tally.dropped, tally.reached), answers=tuple(answers),
        known=known,
    )


def _titles(session: Session, skus: List[str]) -> Dict[str, str]:
    if not skus:
        return {}
    return dict(session.execute(select(Product.sku, Product.title).where(Product.sku.in_(skus))).all())
