from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String

from bot.models.base import Base, Money, UTCDateTime

CODE_STATUSES = ("issued", "used", "cancelled")


class RewardCode(Base):
    """A reward a customer bought with points: a unique code the store honours at checkout."""

    __tablename__ = "reward_codes"
    __table_args__ = (Index("ix_reward_codes_customer_issued", "customer_id", "issued_at"),)

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    reward_id = Column(String(64), nullable=False)
    title = Column(String(255), nullable=False)
    kind = Column(String(20), nullable=False)  # amount_off | percent_off | free_shipping | free_product
    value = Column(Money(), nullable=True)  # currency amount or percentage, by kind
    product_sku = Column(String(64), nullable=True)
    currency = Column(String(3), nullable=False)
    points_spent = Column(Integer, nullable=False)
    min_order = Column(Money(), nullable=True)
    ledger_entry_id = Column(Integer, ForeignKey("ledger_entries.id"), nullable=False, unique=True)
    status = Column(String(16), nullable=False, default="issued")  # one of CODE_STATUSES
    issued_at = Column(UTCDateTime(), nullable=False)
    expires_at = Column(UTCDateTime(), nullable=False)
    used_at = Column(UTCDateTime(), nullable=True)
    used_order_ref = Column(String(64), nullable=True)
