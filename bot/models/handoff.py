from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, text

from bot.models.base import Base, UTCDateTime

# While a request is live (open: a person should answer; waiting: a person answered, the shopper's turn)
# the bot stays quiet in that conversation (bot/handoff.py).
LIVE_CONDITION = "status IN ('open', 'waiting')"


class HandoffRequest(Base):
    """A shopper asked for a person; merchants answer them from the console."""

    __tablename__ = "handoff_requests"
    __table_args__ = (
        # One live request per sender, even when two arrive at once.
        Index(
            "uq_handoff_requests_open_sender", "channel", "sender_id", unique=True,
            sqlite_where=text(LIVE_CONDITION), postgresql_where=text(LIVE_CONDITION),
        ),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False)
    status = Column(String(16), nullable=False, default="open")  # open | waiting | closed
    last_messages = Column(JSON, nullable=False)  # [{"role": "shopper"|"bot", "text": ..., "at": ...}]
    requested_at = Column(UTCDateTime(), nullable=False, index=True)
    # The whole conversation when the shopper asked (bot/feedback/transcripts.py).
    transcript_id = Column(Integer, ForeignKey("transcripts.id", ondelete="SET NULL"), nullable=True)
    closed_at = Column(UTCDateTime(), nullable=True)
    closed_by = Column(String(320), nullable=True)  # the merchant's e-mail, or "shopper"
    # Why the shopper asked, in their words (or the low feedback score that led here).
    reason = Column(Text, nullable=True)
    assigned_to_id = Column(Integer, ForeignKey("merchants.id", ondelete="SET NULL"), nullable=True, index=True)
    assigned_at = Column(UTCDateTime(), nullable=True)
    # The shopper's latest message: the waiting time and Instagram's reply windows count from it.
    last_shopper_at = Column(UTCDateTime(), nullable=True)
    # How it was closed: closed (by a person; reopens when the shopper writes within a day),
    # returned_to_bot (by a person), shopper_returned (the shopper asked for the bot).
    resolution = Column(String(20), nullable=True)
    # The language the shopper wrote in when not English ("fr"; bot/languages.py), None for English.
    language = Column(String(8), nullable=True)


class HandoffMessage(Base):
    """One line of a live handoff: what the shopper wrote while a person had the conversation, what each
    agent replied (with their name) and how it was delivered, internal notes, and what happened
    (assigned, reopened, returned to the bot)."""

    __tablename__ = "handoff_messages"
    __table_args__ = (Index("ix_handoff_messages_delivery", "channel", "delivery"),)

    id = Column(Integer, primary_key=True)
    handoff_id = Column(Integer, ForeignKey("handoff_requests.id", ondelete="CASCADE"), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    role = Column(String(8), nullable=False)  # shopper | agent | bot | note | event
    author_id = Column(Integer, ForeignKey("merchants.id", ondelete="SET NULL"), nullable=True)
    author_name = Column(String(100), nullable=True)
    text = Column(Text, nullable=False)
    created_at = Column(UTCDateTime(), nullable=False)
    # Replies to the shopper (agent, bot): pending → sending → sent | failed; None for the others.
    delivery = Column(String(12), nullable=True)
    delivery_note = Column(String(200), nullable=True)  # "HUMAN_AGENT tag", "shown on the next visit", an error
    delivered_at = Column(UTCDateTime(), nullable=True)
