"""What the store integrations keep: every webhook delivery in a durable inbox until it is applied, and the
store's own order ids beside ours (a refund or fulfilment names its order only by the store's id)."""
from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint

from bot.models.base import Base, UTCDateTime

STORE_EVENT_STATES = ("pending", "applied", "ignored", "failed")


class StoreEvent(Base):
    """One webhook delivery from a store, written in the transaction that acknowledges it (its delivery key is
    the dedupe: a retried delivery finds its row) and applied from here by the web app's worker."""

    __tablename__ = "store_events"
    __table_args__ = (
        UniqueConstraint("source", "shop", "delivery_key", name="uq_store_events_delivery"),
        Index("ix_store_events_state_due", "state", "next_attempt_at"),
        Index("ix_store_events_resource", "source", "shop", "resource"),
        Index("ix_store_events_received", "received_at"),
    )

    id = Column(Integer, primary_key=True)
    source = Column(String(20), nullable=False)  # shopify | woocommerce
    shop = Column(String(255), nullable=False)  # the shop's domain
    delivery_key = Column(String(255), nullable=False)  # X-Shopify-Event-Id (the same across retries)
    topic = Column(String(100), nullable=False)
    payload = Column(Text, nullable=False)  # the raw body as verified
    received_at = Column(UTCDateTime(), nullable=False)
    state = Column(String(16), nullable=False, default="pending")  # one of STORE_EVENT_STATES
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime(), nullable=True)  # when a pending event is due
    claimed_until = Column(UTCDateTime(), nullable=True)  # a worker is applying it until then
    last_error = Column(Text, nullable=True)
    outcome = Column(String(255), nullable=True)  # what applying it did, in a few words
    applied_at = Column(UTCDateTime(), nullable=True)
    # The store resource it is about ("order:<store id>", "customer:<store id>") and that resource's
    # updated_at as the store reported it: an older report than one already applied changes nothing.
    resource = Column(String(100), nullable=True)
    resource_updated_at = Column(UTCDateTime(), nullable=True)


class StoreOrderRef(Base):
    """A store's own order id and the order it is ours (Shopify: numeric id → the order's name, the id the
    history import, the store API and the shopper use)."""

    __tablename__ = "store_order_refs"
    __table_args__ = (UniqueConstraint("source", "shop", "store_order_id", name="uq_store_order_refs_store_order"),)

    id = Column(Integer, primary_key=True)
    source = Column(String(20), nullable=False)
    shop = Column(String(255), nullable=False)
    store_order_id = Column(String(64), nullable=False)
    order_external_id = Column(String(64), nullable=False, index=True)
    created_at = Column(UTCDateTime(), nullable=False)
