"""Segments (bot/segments/): the filters a merchant saved, and each customer's order totals that segment
conditions on recency, frequency and spend read instead of aggregating every order per count."""
from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text

from bot.models.base import Base, Money, UTCDateTime


class SavedSegment(Base):
    """A named filter (bot/segments/conditions.py's JSON form), saved from the console or the CLI."""

    __tablename__ = "saved_segments"

    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    description = Column(Text, nullable=False, default="")
    filter = Column(JSON, nullable=False)  # {"conditions": [{"kind": ..., ...}, ...]}
    created_by = Column(String(320), nullable=False)  # a merchant's e-mail, or "cli"
    created_at = Column(UTCDateTime(), nullable=False)
    updated_at = Column(UTCDateTime(), nullable=False)


class CustomerOrderStats(Base):
    """A customer's purchases (orders not cancelled): how many, first and last, and what they paid net of
    refunds. Kept by database triggers on `orders` (migration 0020), so every path that writes orders — the
    store API, webhooks, imports, bulk loads — keeps it exact without knowing it exists."""

    __tablename__ = "customer_order_stats"
    __table_args__ = (
        Index("ix_customer_order_stats_last_order_at", "last_order_at"),
        Index("ix_customer_order_stats_order_count", "order_count"),
        Index("ix_customer_order_stats_lifetime_spend", "lifetime_spend"),
    )

    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    order_count = Column(Integer, nullable=False)
    first_order_at = Column(UTCDateTime(), nullable=True)
    last_order_at = Column(UTCDateTime(), nullable=True)
    lifetime_spend = Column(Money(), nullable=False)
