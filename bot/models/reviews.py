from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from bot.models.base import Base, UTCDateTime

MODERATION_STATUSES = ("pending", "approved", "rejected")


class Review(Base):
    """A product review left in chat. Points follow the merchant's approval, never the rating."""

    __tablename__ = "reviews"
    __table_args__ = (
        # One review per product per shopper: per customer, or per chat for a guest.
        UniqueConstraint("customer_id", "product_sku", name="uq_reviews_customer_product"),
        UniqueConstraint("channel", "sender_id", "product_sku", name="uq_reviews_sender_product"),
        Index("ix_reviews_status_created", "status", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(255), nullable=False)
    product_sku = Column(String(64), nullable=False)
    product_title = Column(String(255), nullable=False)
    order_external_id = Column(String(64), nullable=True)
    rating = Column(Integer, nullable=False)  # 1-5
    text = Column(Text, nullable=False)
    media_kind = Column(String(8), nullable=False, default="none")  # none | photo | video
    media_reference = Column(String(512), nullable=True)  # Telegram file_id or hash of Instagram URLs
    media_urls = Column(JSON, nullable=False, default=list)
    status = Column(String(16), nullable=False, default="pending")  # one of MODERATION_STATUSES
    moderation_note = Column(String(255), nullable=True)
    moderated_by = Column(String(64), nullable=True)
    moderated_at = Column(UTCDateTime(), nullable=True)
    points_awarded = Column(Integer, nullable=False, default=0)
    created_at = Column(UTCDateTime(), nullable=False)


class ReviewRequest(Base):
    """A review request (or its reminder) the bot sent about one product of one order."""

    __tablename__ = "review_requests"
    __table_args__ = (
        UniqueConstraint("order_id", "product_sku", "kind", name="uq_review_requests_order_product_kind"),
        Index("ix_review_requests_customer_sent", "customer_id", "sent_at"),
        Index("ix_review_requests_customer_product", "customer_id", "product_sku"),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    product_sku = Column(String(64), nullable=False)
    kind = Column(String(16), nullable=False)  # request | reminder
    sent_at = Column(UTCDateTime(), nullable=False)
