"""Merchant accounts, passwords, sign-in with rate limiting, and console sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults, re-hashed on sign-in when those change).
A session is a random token in the browser's cookie; the database keeps only its SHA-256, a CSRF token
and two expiries: idle (extended while used) and absolute. Failed sign-ins are limited per e-mail and
per client address within a window; an unknown e-mail costs the same hash as a known one.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import List, Optional, Tuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db import serialise_on
from bot.models import ConsoleSession, LoginAttempt, Merchant
from bot.shared.text import normalize_email

ROLES = ("owner", "agent")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 20
SESSION_IDLE = timedelta(hours=12)
SESSION_LIFETIME = timedelta(days=7)
# The first key of the PostgreSQL advisory locks that serialise sign-in attempts ("SI").
_SIGN_IN_LOCK_CLASS = 0x5349
TOUCH_EVERY = timedelta(minutes=1)
_HASHER = PasswordHasher()


@lru_cache(maxsize=1)
def _unknown_user_hash() -> str:
    """Verified against when the e-mail is unknown, so the answer takes as long as for a known one. Made on
    the first sign-in (every one asks for it, known or not), not on import: argon2 costs every `python -m
    bot` command a third of a second otherwise."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A merchant account that cannot be created or changed as asked (the message says why)."""


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt did. `status`: ok, invalid, rate_limited."""

    status: str
    merchant: Optional[Merchant] = None
    retry_after: Optional[timedelta] = None


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


def add_merchant(session: Session, email: str, name: str, role: str, password: str, now: datetime) -> Merchant:
    email = normalize_email(email)
    if "@" not in email or len(email) > 320 or any(ch.isspace() for ch in email):
        raise AccountError(f"not an e-mail address: {email!r}")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    name = (name or "").strip() or email.split("@")[0]
    if len(name) > 100:
        raise AccountError("a name has at most 100 characters")
    check_password_rules(password)
    merchant = Merchant(email=email, name=name, role=role, password_hash=_HASHER.hash(password),
                        active=True, created_at=now)
    try:
        with session.begin_nested():
            session.add(merchant)
            session.flush()
    except IntegrityError:
        raise AccountError(f"a merchant with e-mail {email} already exists") from None
    return merchant


def merchant_by_email(session: Session, email: str) -> Optional[Merchant]:
    return session.execute(
        select(Merchant).where(Merchant.email == normalize_email(email))
    ).scalar_one_or_none()


def list_merchants(session: Session) -> List[Merchant]:
    return list(session.execute(select(Merchant).order_by(Merchant.id)).scalars())


def set_password(session: Session, merchant: Merchant, password: str) -> None:
    """A new password; every session of the merchant ends (a changed password locks out a stolen cookie)."""
    check_password_rules(password)
    merchant.password_hash = _HASHER.hash(password)
    session.execute(delete(ConsoleSession).where(ConsoleSession.merchant_id == merchant.id))


def set_active(session: Session, merchant: Merchant, active: bool) -> None:
    merchant.active = active
    if not active:
        session.execute(delete(ConsoleSession).where(ConsoleSession.merchant_id == merchant.id))


def _password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class SignInAttempt:
    """A sign-in under way (`begin_sign_in`): refused already (`status` rate_limited) or waiting for its
    password check, counted as a failure until `finish_sign_in` clears it."""

    status: str  # pending | rate_limited
    email: str
    merchant_id: Optional[int] = None
    password_hash: str = field(default="", repr=False)
    retry_after: Optional[timedelta] = None


def begin_sign_in(session: Session, email: str, client: str, now: datetime) -> SignInAttempt:
    """Count this attempt against both limits before the password is looked at, in a short transaction.

    The attempt is recorded as a failure straight away (a success clears it), and attempts for one e-mail
    or one client are serialised while counting, so parallel guesses cannot all slip under the limit.
    The slow password hash is checked afterwards, outside any transaction (`password_matches`): on SQLite
    a write transaction holds the database's only write lock."""
    email = normalize_email(email)[:320]
    serialise_on(session, _SIGN_IN_LOCK_CLASS, (f"email:{email}", f"client:{client}"))
    since = now - LOGIN_WINDOW
    for column, value, limit in ((LoginAttempt.email, email, MAX_FAILURES_PER_EMAIL),
                                 (LoginAttempt.client, client, MAX_FAILURES_PER_CLIENT)):
        count, oldest = session.execute(
            select(func.count(), func.min(LoginAttempt.attempted_at))
            .where(column == value, LoginAttempt.attempted_at > since)
        ).one()
        if count >= limit:
            return SignInAttempt("rate_limited", email,
                                 retry_after=max(timedelta(seconds=1), oldest + LOGIN_WINDOW - now))
    session.add(LoginAttempt(email=email, client=client, attempted_at=now))
    merchant = merchant_by_email(session, email) if email else None
    if merchant is None or not merchant.active:
        return SignInAttempt("pending", email)
    return SignInAttempt("pending", email, merchant.id, merchant.password_hash)


def password_matches(attempt: SignInAttempt, password: str) -> bool:
    """The password check of an attempt. Unknown or disabled accounts are checked against a dummy hash, so
    they take as long as a real one and never match."""
    if attempt.status != "pending" or not password or len(password) > MAX_PASSWORD_LENGTH:
        return False
    dummy = _unknown_user_hash()
    matches = _password_matches(attempt.password_hash or dummy, password)
    return matches and attempt.merchant_id is not None


def finish_sign_in(session: Session, attempt: SignInAttempt, password: str, now: datetime) -> Optional[Merchant]:
    """After a matching password: the merchant, their failures forgotten (this attempt's too). None when the
    account was disabled or its password changed meanwhile."""
    merchant = session.get(Merchant, attempt.merchant_id)
    if merchant is None or not merchant.active or merchant.password_hash != attempt.password_hash:
        return None
    if _HASHER.check_needs_rehash(merchant.password_hash):
        merchant.password_hash = _HASHER.hash(password)
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == attempt.email))
    merchant.last_login_at = now
    return merchant


def sign_in(session: Session, email: str, password: str, client: str, now: datetime) -> SignIn:
    """A whole sign-in in one transaction (the CLI and tests; the web app runs the three steps apart so the
    password check holds no lock)."""
    attempt = begin_sign_in(session, email, client, now)
    if attempt.status == "rate_limited":
        return SignIn("rate_limited", retry_after=attempt.retry_after)
    merchant = finish_sign_in(session, attempt, password, now) if password_matches(attempt, password) else None
    return SignIn("ok", merchant=merchant) if merchant is not None else SignIn("invalid")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(session: Session, merchant: Merchant, now: datetime) -> Tuple[str, ConsoleSession]:
    """A new session for a merchant who just signed in: the cookie's token and the stored row."""
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(token_hash=_token_hash(token), merchant_id=merchant.id,
                         csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                         expires_at=min(now + SESSION_IDLE, now + SESSION_LIFETIME))
    session.add(row)
    session.flush()
    return token, row


def session_for_token(session: Session, token: str, now: datetime) -> Optional[Tuple[ConsoleSession, Merchant]]:
    """The live session a cookie's token stands for, or None. Only reads (page views are not writes);
    `needs_touch` says when to extend it with `touch_session`."""
    if not token or len(token) > 128:
        return None
    found = session.execute(
        select(ConsoleSession, Merchant)
        .join(Merchant, Merchant.id == ConsoleSession.merchant_id)
        .where(ConsoleSession.token_hash == _token_hash(token))
    ).one_or_none()
    if found is None:
        return None
    row, merchant = found
    if row.expires_at <= now or not merchant.active:
        return None
    return row, merchant


def needs_touch(row: ConsoleSession, now: datetime) -> bool:
    return now - row.last_seen_at > TOUCH_EVERY


def touch_session(session: Session, session_id: int, now: datetime) -> None:
    """Extend a session's idle expiry, never past its absolute one."""
    row = session.get(ConsoleSession, session_id)
    if row is not None:
        row.last_seen_at = now
        row.expires_at = min(now + SESSION_IDLE, row.created_at + SESSION_LIFETIME)


def close_session(session: Session, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))


def forget_expired(session: Session, now: datetime) -> int:
    """Old sessions and sign-in failures outside the window (the scheduler's housekeeping)."""
    sessions = session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now)).rowcount
    attempts = session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= now - LOGIN_WINDOW)).rowcount
    return int(sessions or 0) + int(attempts or 0)


def csrf_matches(expected: str, given: Optional[str]) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


DEMO_OWNER_EMAIL = "owner@demo.rapport.dev"


def ensure_demo_owner(session: Session, password: str, now: datetime) -> Optional[str]:
    """On a development install with no console account yet, create the demo owner. Returns the login line
    `make run` prints: with the password while it is still the generated one, without it once changed."""
    merchants = list_merchants(session)
    if not merchants:
        add_merchant(session, DEMO_OWNER_EMAIL, "Demo owner", "owner", password, now)
        return f"{DEMO_OWNER_EMAIL} / {password}"
    demo = next((merchant for merchant in merchants if merchant.email == DEMO_OWNER_EMAIL), None)
    if demo is None or not demo.active:
        return None
    if _password_matches(demo.password_hash, password):
        return f"{DEMO_OWNER_EMAIL} / {password}"
    return f"{DEMO_OWNER_EMAIL} (password changed since)"
