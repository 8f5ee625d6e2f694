from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Text

from bot.models.base import Base, UTCDateTime


class AuditEvent(Base):
    """One thing a merchant did in the console (bot/audit.py): who, when, what, to what."""

    __tablename__ = "audit_events"

    id = Column(Integer, primary_key=True)
    merchant_id = Column(Integer, ForeignKey("merchants.id", ondelete="SET NULL"), nullable=True, index=True)
    actor = Column(String(320), nullable=False)  # the merchant's name and e-mail, kept when the account goes
    action = Column(String(32), nullable=False, index=True)
    subject = Column(String(64), nullable=False, default="")  # "customer 5", "review 12", "handoff 3"
    detail = Column(Text, nullable=False, default="")
    created_at = Column(UTCDateTime(), nullable=False, index=True)
