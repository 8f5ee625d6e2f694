from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, Integer, String, Text, event
from sqlalchemy.orm import relationship

from bot.models.base import Base, UTCDateTime


# The full-text index of feedback.search_text lives outside the models (migration 0010): an FTS5 table and
# its shadow tables on SQLite, an expression index on PostgreSQL. Schema comparisons leave these out.
SEARCH_INDEX_NAMES = ("feedback_search", "ix_feedback_search")


def is_search_index(name: str) -> bool:
    return any(name == known or name.startswith(known + "_") for known in SEARCH_INDEX_NAMES)


class Transcript(Base):
    """A snapshot of a conversation taken at feedback or handoff. Never changed once written (only erased
    with its customer), so it outlives the tracker store's expiry."""

    __tablename__ = "transcripts"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False, index=True)
    reason = Column(String(16), nullable=False)  # feedback | handoff
    # [{"role": "shopper"|"bot", "text": ..., "at": ISO 8601 UTC}], oldest first
    turns = Column(JSON, nullable=False)
    redacted = Column(Boolean, nullable=False)  # emails, phone and card-like numbers were masked
    created_at = Column(UTCDateTime(), nullable=False, index=True)
    # The language the shopper wrote in when not English ("fr"; bot/languages.py), None for English.
    language = Column(String(8), nullable=True)


@event.listens_for(Transcript, "before_update")
def _transcripts_are_immutable(mapper: object, connection: object, target: Transcript) -> None:
    raise ValueError(f"transcript {target.id} is immutable; erase it with its customer instead")


class Feedback(Base):
    """A shopper's CSAT or NPS answer, their "why", its tags, and the merchant's handling of it."""

    __tablename__ = "feedback"
    __table_args__ = (
        # The inbox: newest first, optionally by status / channel / kind and score.
        Index("ix_feedback_created_at_id", "created_at", "id"),
        Index("ix_feedback_status_created_at", "status", "created_at"),
        Index("ix_feedback_channel_created_at", "channel", "created_at"),
        Index("ix_feedback_kind_score", "kind", "score"),
        # Covers the insights charts' GROUP BY over a date range without reading the rows.
        Index("ix_feedback_created_at_kind_score", "created_at", "kind", "score"),
        # A customer's latest answer of a kind (segments: last CSAT / NPS score).
        Index("ix_feedback_customer_kind_id", "customer_id", "kind", "id"),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True)
    transcript_id = Column(Integer, ForeignKey("transcripts.id", ondelete="SET NULL"), nullable=True, index=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False, index=True)
    kind = Column(String(8), nullable=False)  # csat (1–5) | nps (0–10)
    score = Column(Integer, nullable=False)
    comment = Column(Text, nullable=True)  # the answer to "why", redacted like transcripts
    sentiment = Column(String(8), nullable=True)  # positive | neutral | negative (None without a comment)
    topics = Column(JSON, nullable=False, default=list)  # the same names as FeedbackTopic rows, for display
    # Lower-cased comment and transcript text: what the inbox's full-text search looks in (an FTS5 table on
    # SQLite, a tsvector index on PostgreSQL; migration 0010).
    search_text = Column(Text, nullable=False, default="")
    status = Column(String(16), nullable=False, default="new")  # new | in_progress | done
    goodwill_points = Column(Integer, nullable=False, default=0)
    handoff_request_id = Column(Integer, ForeignKey("handoff_requests.id", ondelete="SET NULL"), nullable=True)
    created_at = Column(UTCDateTime(), nullable=False)
    updated_at = Column(UTCDateTime(), nullable=False)

    transcript = relationship("Transcript")
    notes = relationship("FeedbackNote", order_by="FeedbackNote.id", cascade="all, delete-orphan")


class FeedbackTopic(Base):
    """One topic of one feedback (shipping, quality, …): a row each, so the inbox filters on an index."""

    __tablename__ = "feedback_topics"

    feedback_id = Column(Integer, ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True)
    topic = Column(String(32), primary_key=True, index=True)


class FeedbackNote(Base):
    """An internal note a merchant left on a feedback; shoppers never see these."""

    __tablename__ = "feedback_notes"

    id = Column(Integer, primary_key=True)
    feedback_id = Column(Integer, ForeignKey("feedback.id", ondelete="CASCADE"), nullable=False, index=True)
    merchant_id = Column(Integer, ForeignKey("merchants.id", ondelete="SET NULL"), nullable=True)
    author = Column(String(320), nullable=False)  # kept when the merchant account is removed
    text = Column(Text, nullable=False)
    created_at = Column(UTCDateTime(), nullable=False)
