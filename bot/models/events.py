from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text

from bot.models.base import Base, UTCDateTime


class TierChange(Base):
    """A customer moved between VIP tiers; the bot announces it once (announced_at)."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_customer_announced", "customer_id", "announced_at"),)

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    from_tier = Column(String(64), nullable=True)
    to_tier = Column(String(64), nullable=False)
    direction = Column(String(8), nullable=False)  # up | down
    reason = Column(String(255), nullable=False)
    created_at = Column(UTCDateTime(), nullable=False)
    announced_at = Column(UTCDateTime(), nullable=True)


class OutboundMessage(Base):
    """A message the bot will send on its own (points about to expire, …); channels deliver them."""

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_status_send_after", "status", "send_after"),)

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    kind = Column(String(64), nullable=False)
    text = Column(Text, nullable=False)
    payload = Column(JSON, nullable=False)
    # One message per occasion, however often the job runs.
    dedupe_key = Column(String(255), nullable=False, unique=True)
    status = Column(String(16), nullable=False, default="queued")  # queued | sent | failed
    created_at = Column(UTCDateTime(), nullable=False)
    send_after = Column(UTCDateTime(), nullable=False)
    sent_at = Column(UTCDateTime(), nullable=True)
