from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from bot.models.base import Base, UTCDateTime


class ContentSubmission(Base):
    """A photo a shopper sent in chat, kept for the merchant to review (user-generated content).

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
    kind = Column(String(16), nullable=False)  # photo
    reference = Column(String(512), nullable=False)
    urls = Column(JSON, nullable=False)  # every URL of the message (Instagram), [] for Telegram
    caption = Column(Text, nullable=False, default="")
    status = Column(String(16), nullable=False, default="pending")  # pending | approved | rejected
    created_at = Column(UTCDateTime(), nullable=False)
