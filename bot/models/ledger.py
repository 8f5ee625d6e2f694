from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint

from bot.models.base import Base, UTCDateTime


class LedgerEntry(Base):
    """One change of a customer's points. Append-only: corrections are new entries."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        # The same (source, key) never applies twice: replays of an award are no-ops.
        UniqueConstraint("source", "idempotency_key", name="uq_ledger_entries_source_key"),
        Index("ix_ledger_entries_customer_created", "customer_id", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    kind = Column(String(32), nullable=False)  # earn | redeem | expire | reverse | adjust
    points = Column(Integer, nullable=False)
    reason = Column(String(255), nullable=False)
    source = Column(String(64), nullable=False)
    source_ref = Column(String(255), nullable=True)
    idempotency_key = Column(String(255), nullable=False)
    created_at = Column(UTCDateTime(), nullable=False)
    expires_at = Column(UTCDateTime(), nullable=True)
