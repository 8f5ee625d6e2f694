from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String

from bot.models.base import Base, UTCDateTime


class LinkCode(Base):
    """A one-time code that links a chat (widget, Telegram, Instagram) to a customer's account.

    Only a hash of the code is stored: a database leak reveals no usable codes."""

    __tablename__ = "link_codes"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    code_hash = Column(String(64), nullable=False, unique=True)
    created_at = Column(UTCDateTime(), nullable=False)
    expires_at = Column(UTCDateTime(), nullable=False)
    # Set once, by the conditional update that redeems it: single use even under concurrent tries.
    used_at = Column(UTCDateTime(), nullable=True)
    used_channel = Column(String(32), nullable=True)
    used_sender = Column(String(255), nullable=True)


class LinkAttempt(Base):
    """A wrong code typed in a chat: too many in a window and the chat must wait (no guessing)."""

    __tablename__ = "link_attempts"
    __table_args__ = (Index("ix_link_attempts_sender_at", "channel", "sender", "attempted_at"),)

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False)
    sender = Column(String(255), nullable=False)
    attempted_at = Column(UTCDateTime(), nullable=False)
