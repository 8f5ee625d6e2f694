"""Linking a chat to a customer's account with a one-time code.

The store's account page asks the web app for a code (`POST /api/link-tokens`, bearer auth) and shows
it; the shopper types it in any chat, or opens the Telegram deep link t.me/<bot>?start=link_<code>.
A code is single use (a conditional update claims it, so two chats racing for one code cannot both
win), expires after LINK_CODE_MINUTES, and only its SHA-256 is stored. Wrong codes (unknown, used or
expired) are counted per chat: after MAX_WRONG_CODES within WRONG_CODE_WINDOW the chat must wait. A new
chat costs an attacker nothing (a fresh widget session, another Instagram account), so wrong codes are
also counted per channel: past MAX_WRONG_CODES_PER_CHANNEL in the window, linking on that channel pauses
for everyone until the window moves on — guessing stays hopeless (about 10^12 codes) at the price that
a flood can delay honest linking by up to WRONG_CODE_WINDOW.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bot.identity.customers import IdentityError, customer_for_sender, identity_channel, link_identity
from bot.models import Customer, LinkAttempt, LinkCode

LINK_CODE_MINUTES = 15
MAX_WRONG_CODES = 5
MAX_WRONG_CODES_PER_CHANNEL = 200
WRONG_CODE_WINDOW = timedelta(minutes=15)
# No 0/O, 1/I/L: codes are read off a screen and typed on a phone.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
# What a shopper may type: the code with optional dash/spaces, any case; Telegram deep links carry it
# without the dash.
_TYPED_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{6,14}[A-Za-z0-9]$")
# Every place a code may start, overlapping (a lookahead): in "code AAAA-2AAA" the code is not "code AAAA".
_CODE_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])(?=([A-Za-z0-9]{4}[- ]?[A-Za-z0-9]{4})(?![A-Za-z0-9]))")


@dataclass(frozen=True)
class IssuedCode:
    code: str  # shown to the shopper, e.g. "K7PM-Q2ZX"
    expires_at: datetime

    @property
    def deep_link_parameter(self) -> str:
        """The Telegram /start parameter that carries this code."""
        return "link_" + normalize_code(self.code)


@dataclass(frozen=True)
class LinkOutcome:
    """What redeeming a code did. `status` is one of: linked, already_linked, invalid, expired, used,
    rate_limited, linked_elsewhere."""

    status: str
    customer: Optional[Customer] = None
    retry_after: Optional[timedelta] = None


def normalize_code(typed: str) -> str:
    return re.sub(r"[\s-]", "", typed).upper()


def looks_like_code(typed: str) -> bool:
    return bool(_TYPED_CODE.match(typed.strip())) and len(normalize_code(typed)) == CODE_LENGTH


def _hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode("ascii", "ignore")).hexdigest()


def _new_code() -> str:
    # Always at least one digit: a code never reads like an ordinary word ("SHIPPING"), which keeps it
    # apart from words in chat messages.
    while True:
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if any(character.isdigit() for character in raw):
            return raw


def find_code(text: str) -> Optional[str]:
    """The link code in a chat message ("my code is k7pm-q2zx"), if there is one.

    Codes always hold a digit, and a code typed as one word (K7PM-Q2ZX, k7pmq2zx) is taken before two words
    that could be one ("with k7pm" in "can i link with k7pm-q2zx?"), then the reading with a digit in both
    halves ("K7PM Q2ZX" over "code K7PM")."""
    candidates = []
    for position, match in enumerate(_CODE_IN_TEXT.finditer(text)):
        candidate = match.group(1)
        if looks_like_code(candidate) and any(character.isdigit() for character in candidate):
            halves = (candidate[:4], candidate[-4:])
            with_digits = sum(any(character.isdigit() for character in half) for half in halves)
            candidates.append((" " in candidate, -with_digits, position, candidate))
    return normalize_code(min(candidates)[3]) if candidates else None


def _format(raw: str) -> str:
    return f"{raw[:4]}-{raw[4:]}"


def issue_link_code(session: Session, customer_id: int, now: datetime) -> IssuedCode:
    """A fresh code for this customer; their earlier unused codes stop working."""
    if session.get(Customer, customer_id) is None:
        raise IdentityError(f"no customer {customer_id}")
    session.execute(
        update(LinkCode)
        .where(LinkCode.customer_id == customer_id, LinkCode.used_at.is_(None), LinkCode.expires_at > now)
        .values(expires_at=now)
    )
    raw = _new_code()
    expires_at = now + timedelta(minutes=LINK_CODE_MINUTES)
    session.add(LinkCode(customer_id=customer_id, code_hash=_hash(raw), created_at=now, expires_at=expires_at))
    session.flush()
    return IssuedCode(code=_format(raw), expires_at=expires_at)


def redeem_link_code(session: Session, typed: str, input_channel: str, sender_id: str, now: datetime) -> LinkOutcome:
    """Link this chat to the code's customer, if the code is good and the chat may still try."""
    channel = identity_channel(input_channel)
    waited = _wait_needed(session, channel, sender_id, now)
    if waited is not None:
        return LinkOutcome("rate_limited", retry_after=waited)

    code = session.execute(select(LinkCode).where(LinkCode.code_hash == _hash(typed))).scalar_one_or_none()
    if code is None:
        _count_wrong(session, channel, sender_id, now)
        return LinkOutcome("invalid")
    current = customer_for_sender(session, channel, sender_id)
    if current is not None and current.id == code.customer_id:
        return LinkOutcome("already_linked", customer=current)
    if code.used_at is not None:
        _count_wrong(session, channel, sender_id, now)
        return LinkOutcome("used")
    if code.expires_at <= now:
        _count_wrong(session, channel, sender_id, now)
        return LinkOutcome("expired")
    if current is not None:
        return LinkOutcome("linked_elsewhere", customer=current)

    claimed = session.execute(
        update(LinkCode)
        .where(LinkCode.id == code.id, LinkCode.used_at.is_(None), LinkCode.expires_at > now)
        .values(used_at=now, used_channel=channel, used_sender=sender_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return LinkOutcome("used")
    link_identity(session, code.customer_id, channel, sender_id)
    session.execute(delete(LinkAttempt).where(LinkAttempt.channel == channel, LinkAttempt.sender == sender_id))
    return LinkOutcome("linked", customer=session.get(Customer, code.customer_id))


def _wait_needed(session: Session, channel: str, sender_id: str, now: datetime) -> Optional[timedelta]:
    since = now - WRONG_CODE_WINDOW
    in_window = (LinkAttempt.channel == channel, LinkAttempt.attempted_at > since)
    for limit, conditions in (
        (MAX_WRONG_CODES, (*in_window, LinkAttempt.sender == sender_id)),
        (MAX_WRONG_CODES_PER_CHANNEL, in_window),
    ):
        count, oldest = session.execute(
            select(func.count(LinkAttempt.id), func.min(LinkAttempt.attempted_at)).where(*conditions)
        ).one()
        if count >= limit:
            return max(oldest + WRONG_CODE_WINDOW - now, timedelta(seconds=1))
    return None


def _count_wrong(session: Session, channel: str, sender_id: str, now: datetime) -> None:
    session.add(LinkAttempt(channel=channel, sender=sender_id, attempted_at=now))
    # Attempts older than the window no longer count; forget them so the table stays small.
    session.execute(
        delete(LinkAttempt).where(LinkAttempt.channel == channel, LinkAttempt.attempted_at <= now - WRONG_CODE_WINDOW)
    )
    session.flush()
