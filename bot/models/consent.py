from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text

from bot.models.base import Base, UTCDateTime


class MessageConsent(Base):
    """A shopper's yes or no to messages the shop sends on its own, for one chat (channel + sender id).

    Append-only: the latest row of a chat is its current choice; the earlier ones are the record of
    when and how it changed (time, source, the shopper's own words)."""

    __tablename__ = "message_consents"
    __table_args__ = (Index("ix_message_consents_chat", "channel", "sender_id", "id"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False)  # the identity namespace (bot.identity.identity_channel)
    sender_id = Column(String(255), nullable=False)
    # The customer the chat was linked to at the time, if any (an erasure deletes their rows).
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True, index=True)
    status = Column(String(16), nullable=False)  # subscribed | unsubscribed
    source = Column(String(32), nullable=False)  # chat | console | api
    words = Column(Text, nullable=True)  # what the shopper typed, verbatim (at most 500 characters)
    recorded_at = Column(UTCDateTime(), nullable=False)
