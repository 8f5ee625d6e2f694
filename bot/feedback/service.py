"""Feedback answers: checking, tagging and storing them with their transcript, the goodwill after a low
score, and the CSAT and NPS figures.

A submission is one or two answers (CSAT 1–5 and/or NPS 0–10) and one comment (the "why"). Storing it
writes, in the caller's transaction:
- one Transcript of the conversation (bot/feedback/transcripts.py; redacted when the program says so);
- one Feedback row per answer, with the comment (redacted the same way), its sentiment and topics
  (bot/feedback/tagging.py), its FeedbackTopic rows and the text the inbox searches;
- after a low answer about one of the customer's orders, when feedback.low_score.goodwill_points is
  set: that many points through the ledger (source "feedback_goodwill", once per order whatever the
  number of answers about it).

The same submission sent twice (a double tap, a retried request, two processes at once) is stored once:
the sender's submissions are serialised (a PostgreSQL advisory lock per sender; SQLite's write
transactions are serial already, so pass a `session(write=True)` session), and an identical answer by
the same sender about the same order within DUPLICATE_WINDOW returns the stored one.

Services return models and dataclasses; what the shopper is told is the actions' business.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.feedback.search import search_text_for
from bot.feedback.tagging import tag_feedback
from bot.feedback.transcripts import redact, store_transcript
from bot.loyalty.earning import Credit, award
from bot.loyalty.ledger import find_entry
from bot.loyalty.program import FeedbackPolicy, Program
from bot.db import serialise_on
from bot.models import Feedback, FeedbackTopic, HandoffRequest, Order, Transcript

KINDS = ("csat", "nps")
SCALES = {"csat": (1, 5), "nps": (0, 10)}
PURCHASED_STATUSES = ("paid", "partially_refunded")  # an order kept (not refunded or cancelled)
MAX_COMMENT_CHARS = 2000
DUPLICATE_WINDOW = timedelta(minutes=10)
GOODWILL_SOURCE = "feedback_goodwill"
# The first key of the PostgreSQL advisory locks taken per sender ("FB"), apart from other advisory locks.
_SENDER_LOCK_CLASS = 0x4642


class FeedbackError(ValueError):
    """An answer that cannot be stored as given (unknown kind, score off the scale, someone else's order)."""


@dataclass(frozen=True)
class Answer:
    kind: str  # csat | nps
    score: int


@dataclass(frozen=True)
class Submission:
    feedback: Tuple[Feedback, ...]  # one per answer, in the order given
    transcript: Optional[Transcript]
    created: bool  # False: the same submission had been stored already (returned as it was)
    low: bool  # an answer at or under the program's low mark
    high: bool  # every answer satisfied (CSAT 4–5) or a promoter (NPS 9–10)
    goodwill_points: int  # credited by this submission (0 when off, not a customer's order, or given before)


# -- scores ------------------------------------------------------------------------------------------


def check_answer(kind: str, score: object) -> Answer:
    """The answer, or FeedbackError naming the scale."""
    if kind not in KINDS:
        raise FeedbackError(f"feedback kind must be one of {', '.join(KINDS)}, not {kind!r}")
    low, high = SCALES[kind]
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
        raise FeedbackError(f"a {kind.upper()} score must be a whole number from {low} to {high}, not {score!r}")
    return Answer(kind, score)


def is_low(policy: FeedbackPolicy, answer: Answer) -> bool:
    return answer.score <= (policy.low_csat_at_most if answer.kind == "csat" else policy.low_nps_at_most)


def is_high(answer: Answer) -> bool:
    """Satisfied (CSAT 4–5) or a promoter (NPS 9–10)."""
    return answer.score >= (4 if answer.kind == "csat" else 9)


def csat_score(scores: Iterable[int]) -> Optional[float]:
    """The CSAT score: the percentage (0–100) of answers that are 4 or 5; None without answers."""
    values = [check_answer("csat", score).score for score in scores]
    if not values:
        return None
    return 100.0 * sum(1 for score in values if score >= 4) / len(values)


def nps_score(scores: Iterable[int]) -> Optional[float]:
    """The Net Promoter Score: % promoters (9–10) − % detractors (0–6), from −100 to 100; None without answers."""
    values = [check_answer("nps", score).score for score in scores]
    if not values:
        return None
    promoters = sum(1 for score in values if score >= 9)
    detractors = sum(1 for score in values if score <= 6)
    return 100.0 * (promoters - detractors) / len(values)


_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10,
}
_NUMBER = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"
_SCORE_REPLY = re.compile(
    r"(?:(?:i(?:'d| would)?|we(?:'d| would)?)\s+(?:give|rate|say)(?:\s+(?:it|you|them|this|that|the order))?\s+|"
    r"(?:maybe|probably|about|around|solid|definitely|easily|honestly|hmm|a)\s+)*"
    r"(?:an?\s+)?" + _NUMBER +
    r"(?:\s*(?:/|out of|of)\s*(?:5|10|five|ten))?(?:\s*(?:stars?|points?|⭐+))?\s*[.!]*"
)
_STARS = re.compile(r"[★⭐]{1,5}")


def parse_score(reply: str) -> Optional[int]:
    """The number a reply gives as a score ("4", "4/5", "I'd give it a 9", "five stars", "★★★★"), or None
    when the reply is more than a score ("2 days late" is a comment, not a 2)."""
    words = " ".join((reply or "").lower().replace("’", "'").split())
    if _STARS.fullmatch(words.replace(" ", "")):
        return len(words.replace(" ", ""))
    match = _SCORE_REPLY.fullmatch(words)
    if match is None:
        return None
    number = match.group(1)
    return int(number) if number.isdigit() else _NUMBER_WORDS[number]


# -- orders ------------------------------------------------------------------------------------------


def latest_paid_order(session: Session, customer_id: int, now: datetime, within_days: int) -> Optional[Order]:
    """The customer's latest kept order placed in the last `within_days` days (what their feedback is about)."""
    return session.execute(
        select(Order)
        .where(Order.customer_id == customer_id, Order.status.in_(PURCHASED_STATUSES),
               Order.placed_at >= now - timedelta(days=within_days), Order.placed_at <= now)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def customer_order(session: Session, customer_id: Optional[int], order_id: object) -> Optional[Order]:
    """The order with this id if it is the customer's (a button payload names orders by id: anyone can type one)."""
    if customer_id is None or order_id is None:
        return None
    try:
        number = int(str(order_id))
    except ValueError:
        return None
    order = session.get(Order, number)
    return order if order is not None and order.customer_id == customer_id else None


def order_feedback(session: Session, customer_id: int, order_id: int) -> List[Feedback]:
    """The customer's feedback about the order, oldest first."""
    return list(session.execute(
        select(Feedback).where(Feedback.customer_id == customer_id, Feedback.order_id == order_id)
        .order_by(Feedback.id)
    ).scalars())


# -- storing -----------------------------------------------------------------------------------------


def record_feedback(
    session: Session,
    program: Program,
    *,
    channel: str,
    sender_id: str,
    customer_id: Optional[int],
    order_id: Optional[int],
    kind: str,
    score: int,
    comment: Optional[str],
    turns: Sequence[Mapping[str, object]],
    now: datetime,
) -> Feedback:
    """Store one answer with its comment and transcript (see the module docstring); the Feedback row."""
    return submit_feedback(
        session, program, channel=channel, sender_id=sender_id, customer_id=customer_id, order_id=order_id,
        answers=[(kind, score)], comment=comment, turns=turns, now=now,
    ).feedback[0]


def submit_feedback(
    session: Session,
    program: Program,
    *,
    channel: str,
    sender_id: str,
    customer_id: Optional[int],
    order_id: Optional[int],
    answers: Sequence[Tuple[str, int]],
    comment: Optional[str],
    turns: Sequence[Mapping[str, object]],
    now: datetime,
    language: Optional[str] = None,
) -> Submission:
    """Store a submission: one or two answers (at most one per kind), one comment, one transcript
    (`language`: the shopper's when not English, kept on the transcript)."""
    checked = [check_answer(kind, score) for kind, score in answers]
    if not checked:
        raise FeedbackError("a submission needs at least one answer")
    if len({answer.kind for answer in checked}) != len(checked):
        raise FeedbackError("a submission has at most one answer of each kind")
    if not channel or not sender_id:
        raise FeedbackError("feedback needs the channel and sender it came from")
    order = _order_of(session, customer_id, order_id)
    policy = program.feedback
    original = " ".join((comment or "").split())[:MAX_COMMENT_CHARS] or None
    stored_comment = redact(original) if original and policy.redact_transcripts else original

    _serialise_sender(session, channel, sender_id)
    earlier = _same_submission(session, channel, sender_id, order_id, checked, stored_comment, now)
    if earlier is not None:
        return Submission(tuple(earlier), earlier[0].transcript, False, _low(policy, checked), _high(checked), 0)

    transcript = store_transcript(
        session, channel=channel, sender_id=sender_id, customer_id=customer_id, order_id=order_id,
        reason="feedback", turns=turns, redact=policy.redact_transcripts, now=now,
        max_turns=policy.transcript_max_turns, language=language,
    )
    tags = tag_feedback(original) if original else None
    search_text = search_text_for(stored_comment, transcript.turns)
    rows: List[Feedback] = []
    for answer in checked:
        row = Feedback(
            customer_id=customer_id, order_id=order_id, transcript_id=transcript.id, channel=channel,
            sender_id=sender_id, kind=answer.kind, score=answer.score, comment=stored_comment,
            sentiment=tags.sentiment if tags else None, topics=list(tags.topics) if tags else [],
            search_text=search_text, status="new", goodwill_points=0, created_at=now, updated_at=now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    for row in rows:
        for topic in row.topics:
            session.add(FeedbackTopic(feedback_id=row.id, topic=topic))
    low = _low(policy, checked)
    goodwill = 0
    if low and order is not None and customer_id is not None and policy.goodwill_points > 0:
        goodwill = _goodwill(session, program, customer_id, order, now)
        if goodwill:
            first_low = next(row for row, answer in zip(rows, checked) if is_low(policy, answer))
            first_low.goodwill_points = goodwill
    session.flush()
    return Submission(tuple(rows), transcript, True, low, _high(checked), goodwill)


def link_handoff(session: Session, feedback_ids: Iterable[int], request: HandoffRequest) -> List[Feedback]:
    """Note on the sender's feedback rows that they asked for a person about it (the request)."""
    ids = sorted({int(feedback_id) for feedback_id in feedback_ids})
    if not ids:
        return []
    rows = list(session.execute(
        select(Feedback).where(Feedback.id.in_(ids), Feedback.channel == request.channel,
                               Feedback.sender_id == request.sender_id)
    ).scalars())
    for row in rows:
        row.handoff_request_id = request.id
    session.flush()
    return rows


def _order_of(session: Session, customer_id: Optional[int], order_id: Optional[int]) -> Optional[Order]:
    if order_id is None:
        return None
    order = customer_order(session, customer_id, order_id)
    if order is None:
        raise FeedbackError(f"order {order_id} is not an order of customer {customer_id}")
    return order


def _low(policy: FeedbackPolicy, answers: Sequence[Answer]) -> bool:
    return any(is_low(policy, answer) for answer in answers)


def _high(answers: Sequence[Answer]) -> bool:
    return all(is_high(answer) for answer in answers)


def _serialise_sender(session: Session, channel: str, sender_id: str) -> None:
    """One submission of a sender at a time: on PostgreSQL a transaction-scoped advisory lock (held until
    commit, so the second of two concurrent submissions sees the first); SQLite's write transactions are
    serial already (BEGIN IMMEDIATE)."""
    serialise_on(session, _SENDER_LOCK_CLASS, [f"{channel}:{sender_id}"])


def _same_submission(session: Session, channel: str, sender_id: str, order_id: Optional[int],
                     answers: Sequence[Answer], comment: Optional[str], now: datetime) -> Optional[List[Feedback]]:
    """The rows of an identical submission by this sender within DUPLICATE_WINDOW, if there is one."""
    first = answers[0]
    query = select(Feedback).where(
        Feedback.channel == channel, Feedback.sender_id == sender_id, Feedback.kind == first.kind,
        Feedback.score == first.score, Feedback.created_at >= now - DUPLICATE_WINDOW,
        Feedback.order_id.is_(None) if order_id is None else Feedback.order_id == order_id,
        Feedback.comment.is_(None) if comment is None else Feedback.comment == comment,
    ).order_by(Feedback.id.desc())
    for candidate in session.execute(query).scalars():
        siblings = list(session.execute(
            select(Feedback).where(Feedback.transcript_id == candidate.transcript_id).order_by(Feedback.id)
        ).scalars()) if candidate.transcript_id is not None else [candidate]
        if [(row.kind, row.score) for row in siblings] == [(answer.kind, answer.score) for answer in answers]:
            return siblings
    return None


def _goodwill(session: Session, program: Program, customer_id: int, order: Order, now: datetime) -> int:
    """Credit the program's goodwill points for the order, once per order; the points credited now."""
    key = f"goodwill:{order.id}"
    if find_entry(session, GOODWILL_SOURCE, key) is not None:
        return 0
    points = program.feedback.goodwill_points
    credit = Credit(GOODWILL_SOURCE, points, f"Sorry about order #{order.external_id}", key)
    posted = award(session, program, customer_id, credit, at=now)
    return points if posted.created else 0
