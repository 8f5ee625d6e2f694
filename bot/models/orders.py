from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String

from bot.models.base import Base, Money, UTCDateTime


class Order(Base):
    """A store order; paid orders count as qualifying spend for tiers."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_customer_placed", "customer_id", "placed_at"),)

    id = Column(Integer, primary_key=True)
    external_id = Column(String(64), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    total = Column(Money(), nullable=False)
    currency = Column(String(3), nullable=False)
    status = Column(String(16), nullable=False)  # paid | refunded | cancelled
    placed_at = Column(UTCDateTime(), nullable=False)
