from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, text

from bot.models.base import Base, UTCDateTime


class HandoffRequest(Base):
    """A shopper asked for a person; merchants work through these in the console."""

    __tablename__ = "handoff_requests"
    __table_args__ = (
        # One open request per sender, even when two arrive at once.
        Index(
            "uq_handoff_requests_open_sender", "channel", "sender_id", unique=True,
            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'"),
        ),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False)
    status = Column(String(16), nullable=False, default="open")  # open | closed
    last_messages = Column(JSON, nullable=False)  # [{"role": "shopper"|"bot", "text": ..., "at": ...}]
    requested_at = Column(UTCDateTime(), nullable=False, index=True)
    # The whole conversation when the shopper asked (bot/feedback/transcripts.py).
    transcript_id = Column(Integer, ForeignKey("transcripts.id", ondelete="SET NULL"), nullable=True)
    closed_at = Column(UTCDateTime(), nullable=True)
    closed_by = Column(String(320), nullable=True)  # the merchant's e-mail
    # The language the shopper wrote in when not English ("fr"; bot/languages.py), None for English.
    language = Column(String(8), nullable=True)
