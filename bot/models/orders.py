from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import relationship

from bot.models.base import Base, Money, UTCDateTime

ORDER_STATUSES = ("paid", "partially_refunded", "refunded", "cancelled")


class Order(Base):
    """A store order. What was paid and not refunded counts as qualifying spend for tiers."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_placed", "customer_id", "placed_at"),
        Index("ix_orders_status_fulfilled", "status", "fulfilled_at"),  # review requests due
    )

    id = Column(Integer, primary_key=True)
    external_id = Column(String(64), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    total = Column(Money(), nullable=False)
    refunded_total = Column(Money(), nullable=False, default=0)
    currency = Column(String(3), nullable=False)
    status = Column(String(20), nullable=False)  # one of ORDER_STATUSES
    points_earned = Column(Integer, nullable=False, default=0)
    placed_at = Column(UTCDateTime(), nullable=False)
    updated_at = Column(UTCDateTime(), nullable=True)
    fulfilled_at = Column(UTCDateTime(), nullable=True)  # review requests count from here
    # How the parcel can be followed, when the store says (its latest fulfilment's).
    tracking_company = Column(String(100), nullable=True)
    tracking_number = Column(String(100), nullable=True)
    tracking_url = Column(String(500), nullable=True)
    # When the store says that tracking was last changed: an older report never overwrites a newer one.
    tracking_reported_at = Column(UTCDateTime(), nullable=True)
    # For the referral fraud rules, kept only as keyed hashes (bot/advocacy/fingerprints.py).
    shipping_address_hash = Column(String(64), nullable=True, index=True)
    ip_hash = Column(String(64), nullable=True, index=True)

    lines = relationship("OrderLine", back_populates="order", order_by="OrderLine.id")
    refunds = relationship("OrderRefund", back_populates="order", order_by="OrderRefund.id")


class OrderLine(Base):
    """One product line of an order, as the store reported it."""

    __tablename__ = "order_lines"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True)
    sku = Column(String(64), nullable=True)
    title = Column(String(255), nullable=False)
    quantity = Column(Integer, nullable=False)
    unit_price = Column(Money(), nullable=False)

    order = relationship("Order", back_populates="lines")


class OrderRefund(Base):
    """A refund (or the cancellation) of an order and the points it took back."""

    __tablename__ = "order_refunds"
    __table_args__ = (UniqueConstraint("order_id", "external_id", name="uq_order_refunds_order_external"),)

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    external_id = Column(String(64), nullable=False)
    amount = Column(Money(), nullable=False)
    points_due = Column(Integer, nullable=False)  # pro rata share of what the order earned
    points_reversed = Column(Integer, nullable=False)  # what the ledger took back (less if written off)
    created_at = Column(UTCDateTime(), nullable=False)

    order = relationship("Order", back_populates="refunds")
