from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import relationship

from bot.models.base import Base, UTCDateTime


class Customer(Base):
    """A shopper known to the store. `points_balance` always equals the sum of their ledger."""

    __tablename__ = "customers"

    id = Column(Integer, primary_key=True)
    email = Column(String(320), unique=True, nullable=True)
    first_name = Column(String(100), nullable=True)
    last_name = Column(String(100), nullable=True)
    birthday = Column(Date, nullable=True)
    points_balance = Column(Integer, nullable=False, default=0, index=True)
    created_at = Column(UTCDateTime(), nullable=False)
    # The store's own id for this customer (Shopify "Customer ID"), when it is known.
    external_id = Column(String(64), unique=True, nullable=True)
    # Points expire after a stretch without earning or redeeming; this is when that stretch began.
    last_activity_at = Column(UTCDateTime(), nullable=True, index=True)
    # The VIP tier held, and until when: demotion happens only at the end of a term (bot/loyalty/tiers.py).
    tier_name = Column(String(64), nullable=True, index=True)
    tier_held_until = Column(UTCDateTime(), nullable=True, index=True)
    # The shopper's IANA time zone ("Europe/Berlin") when known: proactive messages keep its quiet hours.
    time_zone = Column(String(64), nullable=True)

    identities = relationship("ChannelIdentity", back_populates="customer")

    @property
    def display_name(self) -> str:
        return self.first_name or (self.email.split("@")[0] if self.email else f"customer {self.id}")


class ChannelIdentity(Base):
    """Who a sender on a channel is: (channel, external id) → customer."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_channel_identities_channel_external_id"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False)
    external_id = Column(String(255), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = Column(UTCDateTime(), nullable=False)
    # Since when the chat refuses the bot's messages (blocked it); None while it takes them. Notices are not
    # pushed to such a chat: they wait for the shopper's next conversation.
    unreachable_since = Column(UTCDateTime(), nullable=True)

    customer = relationship("Customer", back_populates="identities")
