from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from bot.models.base import Base, UTCDateTime


class ContentSubmission(Base):
    """A photo or video a shopper sent in chat, kept for the merchant to review (user-generated content).

    `reference` is what the platform gives to fetch it again: a Telegram file_id, or Instagram's
    attachment URL(s). One row per (channel, reference), so a redelivered update adds nothing."""

    __tablename__ = "content_submissions"
    __table_args__ = (
        UniqueConstraint("channel", "reference", name="uq_content_submissions_channel_reference"),
        Index("ix_content_submissions_status_created", "status", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True)
    kind = Column(String(16), nullable=False)  # photo | video
    reference = Column(String(512), nullable=False)
    urls = Column(JSON, nullable=False)  # every URL of the message (Instagram), [] for Telegram
    caption = Column(Text, nullable=False, default="")
    status = Column(String(16), nullable=False, default="pending")  # pending | approved | rejected
    created_at = Column(UTCDateTime(), nullable=False)
    moderation_note = Column(String(255), nullable=True)
    moderated_by = Column(String(64), nullable=True)
    moderated_at = Column(UTCDateTime(), nullable=True)
    points_awarded = Column(Integer, nullable=False, default=0)


class SocialFollowClaim(Base):
    """A shopper says they follow the shop on a network; the merchant checks and approves (once per network)."""

    __tablename__ = "social_follow_claims"
    __table_args__ = (
        UniqueConstraint("customer_id", "network", name="uq_social_follow_claims_customer_network"),
        Index("ix_social_follow_claims_status_created", "status", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    network = Column(String(32), nullable=False)
    handle = Column(String(64), nullable=True)  # the shopper's name on that network, to check the follow
    channel = Column(String(32), nullable=False)
    status = Column(String(16), nullable=False, default="pending")  # pending | approved | rejected
    moderation_note = Column(String(255), nullable=True)
    moderated_by = Column(String(64), nullable=True)
    moderated_at = Column(UTCDateTime(), nullable=True)
    points_awarded = Column(Integer, nullable=False, default=0)
    created_at = Column(UTCDateTime(), nullable=False)
