from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String

from bot.models.base import Base, UTCDateTime


class Merchant(Base):
    """A person on the store's team who signs in to the console: an owner (everything) or an agent
    (feedback inbox and handoff queue)."""

    __tablename__ = "merchants"

    id = Column(Integer, primary_key=True)
    email = Column(String(320), unique=True, nullable=False)  # stored lower-cased
    name = Column(String(100), nullable=False)
    password_hash = Column(String(255), nullable=False)  # argon2id
    role = Column(String(8), nullable=False)  # owner | agent
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime(), nullable=False)
    last_login_at = Column(UTCDateTime(), nullable=True)


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a copy of the
    database cannot be used to sign in."""

    __tablename__ = "console_sessions"

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), unique=True, nullable=False)
    merchant_id = Column(Integer, ForeignKey("merchants.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(UTCDateTime(), nullable=False)
    last_seen_at = Column(UTCDateTime(), nullable=False)
    expires_at = Column(UTCDateTime(), nullable=False, index=True)


class LoginAttempt(Base):
    """A failed sign-in, by e-mail and by client address: both are limited (bot/console/auth.py)."""

    __tablename__ = "login_attempts"

    id = Column(Integer, primary_key=True)
    email = Column(String(320), nullable=False, index=True)
    client = Column(String(64), nullable=False, index=True)  # keyed hash of the client address
    attempted_at = Column(UTCDateTime(), nullable=False, index=True)
