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


OUTBOX_STATES = ("queued", "sent", "delivered", "waiting_for_window", "skipped", "failed")


class OutboundMessage(Base):
    """One row of the outbox (bot/outbox/): a message the shop sends on its own (a review request, a feedback
    question, points about to expire, a tier change, an approved review, a referral reward, …).

    queued (channel None: not yet given a channel; set: waiting for that channel's sender) → sent (claimed by
    the sender) → delivered (the platform took it, or the conversation told it); or waiting_for_window
    (Instagram's 24 hours closed: sent at the shopper's next message if still relevant), skipped (`reason`:
    consent, the frequency cap, no longer relevant, no reachable chat) or failed (`error`)."""

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_status_send_after", "status", "send_after"),
                      Index("ix_outbound_messages_customer_routed", "customer_id", "routed_at"))

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    kind = Column(String(64), nullable=False)
    text = Column(Text, nullable=False)
    payload = Column(JSON, nullable=False)
    # One message per occasion, however often the job runs.
    dedupe_key = Column(String(255), nullable=False, unique=True)
    status = Column(String(24), nullable=False, default="queued")  # OUTBOX_STATES
    created_at = Column(UTCDateTime(), nullable=False)
    send_after = Column(UTCDateTime(), nullable=False)  # due time (moved past quiet hours or a 429's wait)
    sent_at = Column(UTCDateTime(), nullable=True)
    # Past this the message is no longer worth sending (skipped "no longer relevant"); None: never stale.
    expires_at = Column(UTCDateTime(), nullable=True)
    # The chat it was given to (channel + the shopper's id there), and when: routed messages count against
    # the frequency cap.
    channel = Column(String(32), nullable=True)
    recipient = Column(String(255), nullable=True)
    routed_at = Column(UTCDateTime(), nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    reason = Column(String(255), nullable=True)  # why skipped, postponed or waiting
    error = Column(String(255), nullable=True)  # why the last send failed (no secrets)
    delivered_at = Column(UTCDateTime(), nullable=True)
    updated_at = Column(UTCDateTime(), nullable=True)
