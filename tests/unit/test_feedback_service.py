"""Storing feedback (bot/feedback/service.py) on SQLite and PostgreSQL: the rows a submission writes
(feedback, topics, transcript, search text), what is refused, goodwill points through the ledger once per
order, duplicates and concurrent double submits, and the CSAT/NPS figures."""
from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.feedback.search import matching, search_text_for
from bot.feedback.service import (
    DUPLICATE_WINDOW, FeedbackError, csat_score, latest_paid_order, nps_score, parse_score, record_feedback,
    submit_feedback,
)
from bot.identity import create_customer
from bot.loyalty.ledger import verify_balances
from bot.loyalty.program import Program
from bot.models import Customer, Feedback, FeedbackTopic, LedgerEntry, Order, Transcript

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
TURNS = [
    {"role": "bot", "text": "How was your order #A-1?", "at": "2026-06-15T11:59:00+00:00"},
    {"role": "shopper", "text": "1", "at": "2026-06-15T11:59:10+00:00"},
    {"role": "bot", "text": "I'm sorry to hear that. What went wrong?", "at": "2026-06-15T11:59:11+00:00"},
    {"role": "shopper", "text": "It never arrived, email me at ann@example.com", "at": "2026-06-15T11:59:40+00:00"},
]


def customer_with_order(db: Database, email: str, external_id: str, days_ago: int = 10,
                        status: str = "paid") -> Tuple[int, int]:
    with db.session(write=True) as session:
        customer = create_customer(session, email, first_name="Ann")
        order = Order(external_id=external_id, customer_id=customer.id, total=Decimal("80.00"), currency="USD",
                      status=status, placed_at=NOW - timedelta(days=days_ago))
        session.add(order)
        session.flush()
        return customer.id, order.id


def submit(db: Database, program: Program, **overrides: Any) -> Feedback:
    arguments: Dict[str, Any] = dict(channel="telegram", sender_id="555", customer_id=None, order_id=None,
                                     kind="csat", score=1, comment=TURNS[-1]["text"], turns=TURNS, now=NOW)
    arguments.update(overrides)
    with db.session(write=True) as session:
        return record_feedback(session, program, **arguments)


def count(db: Database, model: Any) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def with_feedback(program: Program, **changes: Any) -> Program:
    return dataclasses.replace(program, feedback=dataclasses.replace(program.feedback, **changes))


def test_a_submission_writes_feedback_topics_and_a_redacted_transcript_that_search_finds(
    any_db: Database, program: Program
) -> None:
    customer_id, order_id = customer_with_order(any_db, "ann@example.com", "A-1")
    feedback = submit(any_db, program, customer_id=customer_id, order_id=order_id)

    with any_db.session() as session:
        row = session.get(Feedback, feedback.id)
        assert (row.customer_id, row.order_id, row.channel, row.sender_id, row.kind, row.score) == (
            customer_id, order_id, "telegram", "555", "csat", 1)
        assert row.comment == "It never arrived, email me at [email]"
        assert (row.sentiment, row.topics, row.status, row.goodwill_points) == (
            "negative", ["shipping", "support"], "new", 0)
        assert row.created_at == row.updated_at == NOW
        topics = session.execute(select(FeedbackTopic.topic).where(FeedbackTopic.feedback_id == row.id)).scalars()
        assert sorted(topics) == ["shipping", "support"]
        transcript = session.get(Transcript, row.transcript_id)
        assert (transcript.reason, transcript.customer_id, transcript.order_id, transcript.redacted) == (
            "feedback", customer_id, order_id, True)
        assert [turn["text"] for turn in transcript.turns][-1] == "It never arrived, email me at [email]"
        assert "ann@example.com" not in row.search_text
        assert row.search_text == search_text_for(row.comment, transcript.turns)
        # The inbox's full-text search (FTS5 on SQLite, tsvector on PostgreSQL) finds it by its words.
        dialect = session.get_bind().dialect.name
        found = session.execute(select(Feedback.id).where(matching(dialect, "never arriv"))).scalars().all()
        assert found == [row.id]
        assert session.execute(select(Feedback.id).where(matching(dialect, "ann example"))).scalars().all() == []


def test_redaction_can_be_switched_off_in_the_program(sqlite_db: Database, program: Program) -> None:
    feedback = submit(sqlite_db, with_feedback(program, redact_transcripts=False))
    with sqlite_db.session() as session:
        row = session.get(Feedback, feedback.id)
        assert row.comment.endswith("ann@example.com") and row.transcript.redacted is False
        assert "ann@example.com" in row.transcript.turns[-1]["text"]


@pytest.mark.parametrize("kind, score, message", [
    ("csat", 0, "from 1 to 5"), ("csat", 6, "from 1 to 5"), ("nps", 11, "from 0 to 10"), ("nps", -1, "from 0 to 10"),
    ("csat", 4.5, "whole number"), ("csat", "5", "whole number"), ("csat", True, "whole number"),
    ("ces", 3, "kind must be one of csat, nps"),
])
def test_an_impossible_answer_is_refused_and_nothing_is_written(
    sqlite_db: Database, program: Program, kind: str, score: Any, message: str
) -> None:
    with pytest.raises(FeedbackError, match=message):
        submit(sqlite_db, program, kind=kind, score=score)
    assert count(sqlite_db, Feedback) == count(sqlite_db, Transcript) == count(sqlite_db, FeedbackTopic) == 0


def test_feedback_about_someone_elses_order_is_refused(sqlite_db: Database, program: Program) -> None:
    _, order_id = customer_with_order(sqlite_db, "ann@example.com", "A-1")
    other_id, _ = customer_with_order(sqlite_db, "ben@example.com", "B-1")
    with pytest.raises(FeedbackError, match="not an order of customer"):
        submit(sqlite_db, program, customer_id=other_id, order_id=order_id)
    with pytest.raises(FeedbackError, match="not an order of customer"):
        submit(sqlite_db, program, customer_id=None, order_id=order_id)
    assert count(sqlite_db, Feedback) == 0


def test_goodwill_points_follow_a_low_score_once_per_order_through_the_ledger(any_db: Database, program: Program) -> None:
    generous = with_feedback(program, goodwill_points=150)
    customer_id, order_id = customer_with_order(any_db, "ann@example.com", "A-1")

    first = submit(any_db, generous, customer_id=customer_id, order_id=order_id, score=2)
    # A second low answer about the same order (another comment, later) is stored but earns nothing more.
    second = submit(any_db, generous, customer_id=customer_id, order_id=order_id, score=1, comment="still nothing",
                    now=NOW + timedelta(days=1))
    satisfied = submit(any_db, generous, customer_id=customer_id, order_id=order_id, score=4, comment="arrived!",
                       now=NOW + timedelta(days=2))

    assert (first.goodwill_points, second.goodwill_points, satisfied.goodwill_points) == (150, 0, 0)
    with any_db.session() as session:
        entries = session.execute(select(LedgerEntry).where(LedgerEntry.customer_id == customer_id)).scalars().all()
        assert [(e.source, e.points, e.kind, e.idempotency_key) for e in entries] == [
            ("feedback_goodwill", 150, "earn", f"goodwill:{order_id}")]
        assert entries[0].reason == "Sorry about order #A-1"
        assert session.get(Customer, customer_id).points_balance == 150
        assert verify_balances(session) == []


def test_no_goodwill_when_off_or_without_an_order(sqlite_db: Database, program: Program) -> None:
    customer_id, order_id = customer_with_order(sqlite_db, "ann@example.com", "A-1")
    assert program.feedback.goodwill_points == 0  # the demo program: off
    submit(sqlite_db, program, customer_id=customer_id, order_id=order_id, score=1)
    submit(sqlite_db, with_feedback(program, goodwill_points=150), customer_id=customer_id, score=1,
           comment="about the shop in general")  # no order: nothing to make good
    assert count(sqlite_db, LedgerEntry) == 0


def test_nps_detractors_are_low_and_promoters_high(sqlite_db: Database, program: Program) -> None:
    customer_id, order_id = customer_with_order(sqlite_db, "ann@example.com", "A-1")
    generous = with_feedback(program, goodwill_points=100)
    with sqlite_db.session(write=True) as session:
        both = submit_feedback(session, generous, channel="rest", sender_id="ann", customer_id=customer_id,
                               order_id=order_id, answers=[("csat", 3), ("nps", 6)], comment="meh",
                               turns=TURNS, now=NOW)
        assert both.created and both.low and not both.high and both.goodwill_points == 100
        assert [(row.kind, row.score, row.goodwill_points) for row in both.feedback] == [("csat", 3, 0), ("nps", 6, 100)]
        assert len({row.transcript_id for row in both.feedback}) == 1  # one conversation, one transcript
        promoter = submit_feedback(session, generous, channel="rest", sender_id="ann", customer_id=customer_id,
                                   order_id=None, answers=[("csat", 5), ("nps", 9)], comment=None, turns=[], now=NOW)
        assert promoter.high and not promoter.low and promoter.feedback[0].sentiment is None
        with pytest.raises(FeedbackError, match="at most one answer of each kind"):
            submit_feedback(session, generous, channel="rest", sender_id="ann", customer_id=None, order_id=None,
                            answers=[("nps", 9), ("nps", 10)], comment=None, turns=[], now=NOW)
    assert count(sqlite_db, Transcript) == 2


def test_the_same_submission_twice_is_stored_once_but_a_different_one_is_kept(sqlite_db: Database, program: Program) -> None:
    first = submit(sqlite_db, program)
    again = submit(sqlite_db, program, now=NOW + timedelta(seconds=20))  # a double tap, a retried request
    assert again.id == first.id
    other = submit(sqlite_db, program, comment="and nobody answered", now=NOW + timedelta(seconds=30))
    later = submit(sqlite_db, program, now=NOW + DUPLICATE_WINDOW + timedelta(minutes=1))  # said again later
    assert len({first.id, other.id, later.id}) == 3
    assert count(sqlite_db, Feedback) == 3 and count(sqlite_db, Transcript) == 3


def test_a_concurrent_double_submit_creates_one_feedback(any_db: Database, program: Program) -> None:
    customer_id, order_id = customer_with_order(any_db, "ann@example.com", "A-1")
    generous = with_feedback(program, goodwill_points=150)
    barrier = threading.Barrier(4)
    results: List[Optional[int]] = []
    errors: List[BaseException] = []

    def send() -> None:
        try:
            barrier.wait()
            with any_db.session(write=True) as session:
                row = record_feedback(session, generous, channel="telegram", sender_id="555", customer_id=customer_id,
                                      order_id=order_id, kind="csat", score=1, comment="never arrived",
                                      turns=TURNS, now=NOW)
                results.append(row.id)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(results) == 4 and len(set(results)) == 1
    assert count(any_db, Feedback) == count(any_db, Transcript) == 1
    with any_db.session() as session:
        assert session.execute(select(func.sum(LedgerEntry.points))).scalar_one() == 150


def test_latest_paid_order_is_the_recent_kept_one(sqlite_db: Database) -> None:
    customer_id, _ = customer_with_order(sqlite_db, "ann@example.com", "A-1", days_ago=120)
    with sqlite_db.session(write=True) as session:
        for external_id, days_ago, status in (("A-2", 30, "paid"), ("A-3", 5, "refunded"), ("A-4", -1, "paid")):
            session.add(Order(external_id=external_id, customer_id=customer_id, total=Decimal("10"), currency="USD",
                              status=status, placed_at=NOW - timedelta(days=days_ago)))
    with sqlite_db.session() as session:
        assert latest_paid_order(session, customer_id, NOW, 90).external_id == "A-2"
        assert latest_paid_order(session, customer_id, NOW, 20) is None


def test_csat_and_nps_scores_follow_their_definitions() -> None:
    assert csat_score([5, 4, 3, 2, 1]) == 40.0
    assert csat_score([5, 5, 4, 4]) == 100.0
    assert csat_score([]) is None
    assert nps_score([10, 9, 8, 7, 6, 0]) == 0.0  # 2 promoters, 2 passives, 2 detractors
    assert nps_score([10, 10, 9, 3]) == 75.0 - 25.0
    assert nps_score([0, 6, 8]) == pytest.approx(-66.6667, abs=1e-3)
    assert nps_score([]) is None
    with pytest.raises(FeedbackError):
        csat_score([6])
    with pytest.raises(FeedbackError):
        nps_score([11])


@pytest.mark.parametrize("reply, score", [
    ("4", 4), ("4/5", 4), (" 9 out of 10 ", 9), ("I'd give it a 7", 7), ("five stars", 5), ("★★★★", 4),
    ("10!", 10), ("a solid 8", 8), ("zero", 0), ("2 days late", None), ("it was great", None), ("", None),
    ("order 1042", None),
])
def test_a_typed_score_is_read_only_when_the_reply_is_a_score(reply: str, score: Optional[int]) -> None:
    assert parse_score(reply) == score
