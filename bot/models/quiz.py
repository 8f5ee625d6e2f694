from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text

from bot.models.base import Base, UTCDateTime


class QuizRun(Base):
    """One shopper's go at one quiz (data/quizzes/<quiz_id>.yml), kept for resuming, personalization and the
    merchant's quiz statistics.

    A conversation (channel, sender_id) has at most one run in progress per quiz; "start over" abandons it and
    starts another. `answers` maps question id → chosen option ids in the order they were answered ([] =
    skipped). `current_question` is the question being asked (None once the questions are done); `pending`
    holds the options tapped so far at a multi-choice question, `misses` the unmatched replies to the current
    question. `stage` is where an unfinished conversation stands: questions, then (after the results, when
    the quiz asks for it) email_consent and email_address. `results` are the recommended products as
    [{"sku", "score", "reasons"}]."""

    __tablename__ = "quiz_runs"
    __table_args__ = (
        Index("ix_quiz_runs_conversation", "channel", "sender_id", "quiz_id", "status"),
        Index("ix_quiz_runs_quiz_started", "quiz_id", "started_at"),
    )

    id = Column(Integer, primary_key=True)
    quiz_id = Column(String(64), nullable=False)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    status = Column(String(16), nullable=False, default="in_progress")  # in_progress | completed | abandoned
    stage = Column(String(16), nullable=False, default="questions")  # questions | email_consent | email_address | done
    answers = Column(JSON, nullable=False, default=dict)
    current_question = Column(String(64), nullable=True)
    pending = Column(JSON, nullable=False, default=list)
    misses = Column(Integer, nullable=False, default=0)
    results = Column(JSON, nullable=False, default=list)
    relaxed = Column(JSON, nullable=False, default=list)
    points_awarded = Column(Integer, nullable=False, default=0)
    email = Column(String(320), nullable=True)
    consent_text = Column(Text, nullable=True)  # the words the shopper agreed to, verbatim
    consent_at = Column(UTCDateTime(), nullable=True)
    started_at = Column(UTCDateTime(), nullable=False)
    updated_at = Column(UTCDateTime(), nullable=False)
    completed_at = Column(UTCDateTime(), nullable=True)


class ProductSearch(Base):
    """A catalog search a shopper made in chat: what they asked for, what was understood and found. Later
    searches and recommendations in the same conversation build on it; the merchant sees what people look
    for (and what the catalog lacks)."""

    __tablename__ = "product_searches"
    __table_args__ = (Index("ix_product_searches_conversation", "channel", "sender_id", "created_at"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    text = Column(Text, nullable=False, default="")
    criteria = Column(JSON, nullable=False, default=dict)  # product_type, colour, material, min_price, max_price
    results = Column(JSON, nullable=False, default=list)  # SKUs shown, best first
    relaxed = Column(JSON, nullable=False, default=list)  # criteria dropped to find them
    created_at = Column(UTCDateTime(), nullable=False)
