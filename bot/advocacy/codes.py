"""What referrals.py and friend_offers.py share, kept here so that referrals imports friend_offers and never
the other way round: the advocate's referral code (its symbols, reading a typed one, looking it up),
drawing random codes, and the error a referral action raises.
"""
from __future__ import annotations

import re
import secrets
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.identity.linking import CODE_ALPHABET
from bot.loyalty.ledger import LedgerError
from bot.models import ReferralCode

CODE_LENGTH = 10  # 31^10 ≈ 8·10^14 codes: not guessable from a handful of known ones
CODE_CHARACTERS = frozenset(CODE_ALPHABET)
DRAWS = 5  # a random code that collides with an existing one is drawn again; five collisions = a bug


class ReferralError(LedgerError):
    """A referral action that cannot happen (the CLI and the API show the message)."""


def random_symbols(length: int) -> str:
    # At least one digit: a code never reads like a word, which keeps it apart from words in chat messages.
    while True:
        raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
        if any(ch.isdigit() for ch in raw):
            return raw


def normalize_referral_code(typed: str) -> Optional[str]:
    """What a person typed → the stored code (any case, dashes and spaces ignored); None if it cannot be one."""
    if not isinstance(typed, str) or len(typed) > 4 * CODE_LENGTH:
        return None
    cleaned = re.sub(r"[\s-]", "", typed).upper()
    if len(cleaned) != CODE_LENGTH or not set(cleaned) <= CODE_CHARACTERS:
        return None
    return cleaned if any(ch.isdigit() for ch in cleaned) else None


def find_referral_code(session: Session, typed: Optional[str]) -> Optional[ReferralCode]:
    code = normalize_referral_code(typed or "")
    if code is None:
        return None
    return session.execute(select(ReferralCode).where(ReferralCode.code == code)).scalar_one_or_none()
