"""Codes the store honours at checkout — reward codes bought with points (RW-…, bot/loyalty/rewards.py) and a
referred friend's offer (FRIEND-…, bot/advocacy/friend_offers.py): check one for a basket, use one on an
order. The store API and the CLI call these; a paid order's friend offer is used by its attribution.

A code is money: wherever a person who must not spend it reads it (every console view of a customer or a
transcript, and every export of them) it is masked but its last 4 characters, by `mask_code` (a stored
code) and `mask_codes_in` (codes inside a message): the one place that does so.
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Optional, Union

from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.friend_offers import (
    OFFER_GROUP_LENGTH, OFFER_PREFIX, find_friend_offer, friend_offer_refusal, is_friend_offer_code,
)
from bot.loyalty.program import Program
from bot.loyalty.rewards import (
    CODE_GROUP_LENGTH, CODE_GROUPS, CODE_PREFIX, CodeRefused, find_code as find_reward_code, mark_used, refusal_for,
)
from bot.models import FriendOffer, RewardCode

CheckoutCode = Union[RewardCode, FriendOffer]
MAX_ORDER_REF = 64
SHOWN_CHARACTERS = 4  # of a masked code, its last ones: enough to tell codes apart, too few to spend one
MASK = "•"


def mask_code(code: Optional[str]) -> str:
    """A code with every letter and digit but the last 4 hidden ("RW-••••-••••-Q2ZX"); the kind's prefix
    (RW-, FRIEND-) stays, it gives nothing away."""
    if not code:
        return ""
    prefix, dash, rest = code.partition("-")
    if not (dash and prefix.isalpha() and rest):
        prefix, dash, rest = "", "", code
    return prefix + dash + _masked(rest)


def _masked(text: str) -> str:
    hidden = sum(ch.isalnum() for ch in text) - SHOWN_CHARACTERS
    masked = []
    for ch in text:
        if ch.isalnum() and hidden > 0:
            masked.append(MASK)
            hidden -= 1
        else:
            masked.append(ch)
    return "".join(masked)


# A reward or friend code in a message, in any case, as the bot writes it (RW-7K2M-9QXD-4HTP) or as a shopper
# may type it (rw 7k2m 9qxd 4htp, FRIEND K7QM2XDA). Written without dashes it must hold a digit: "friend with
# dogs" is words, not a code (every friend code has a digit; a reward code without one is 1 in 90).
_CODE_IN_TEXT = re.compile(
    rf"\b(?P<prefix>{CODE_PREFIX}|{OFFER_PREFIX})(?P<body>(?:[- ]?[0-9A-Z]{{{CODE_GROUP_LENGTH}}}){{{CODE_GROUPS}}}"
    rf"|(?:[- ]?[0-9A-Z]{{{OFFER_GROUP_LENGTH}}}){{2}})\b", re.IGNORECASE)


def mask_codes_in(text: Optional[str]) -> str:
    """Reward and friend codes inside a text (a transcript line, a comment, a button) masked like mask_code."""
    def masked(found: "re.Match[str]") -> str:
        prefix, body = found.group("prefix"), found.group("body")
        dashed = body.startswith("-") and body.count("-") == len(body) // (CODE_GROUP_LENGTH + 1)
        if not dashed and not any(ch.isdigit() for ch in body):
            return found.group(0)
        return prefix + _masked(body)

    return _CODE_IN_TEXT.sub(masked, text or "")


def find_code(session: Session, typed: str) -> Optional[CheckoutCode]:
    """The code a shopper typed at checkout: a friend offer when it reads as one (only friend offers answer
    for those), else a reward code; None when there is no such code."""
    if is_friend_offer_code(typed):
        return find_friend_offer(session, typed)
    return find_reward_code(session, typed)


def check_code(session: Session, program: Program, typed: str, *, order_total: Optional[Decimal] = None,
               currency: Optional[str] = None, customer_id: Optional[int] = None,
               now: Optional[datetime] = None) -> CheckoutCode:
    """The code if the store may honour it now, for this basket (total, currency) and customer; CodeRefused
    with the reason (and the code's row as `found`, when it exists) if not."""
    found = find_code(session, typed)
    _refuse_if_invalid(session, program, typed, found, order_total, currency, customer_id, now or clock.now())
    assert found is not None
    return found


def use_code(session: Session, program: Program, typed: str, order_ref: str, *,
             order_total: Optional[Decimal] = None, currency: Optional[str] = None,
             customer_id: Optional[int] = None, now: Optional[datetime] = None) -> CheckoutCode:
    """Mark the code used for an order, once: again for the same order is a no-op; for any other order (or a
    second concurrent checkout) it is refused as used."""
    when = now or clock.now()
    order_ref = (order_ref or "").strip()
    if not order_ref or len(order_ref) > MAX_ORDER_REF:
        raise CodeRefused(typed, "invalid_order", f"an order reference of 1-{MAX_ORDER_REF} characters is required")
    found = find_code(session, typed)
    if found is not None and found.status == "used" and found.used_order_ref == order_ref:
        return found
    _refuse_if_invalid(session, program, typed, found, order_total, currency, customer_id, when)
    assert found is not None
    also = {"used_by_customer_id": customer_id} if isinstance(found, FriendOffer) else {}
    if not mark_used(session, found, order_ref, when, **also):
        raise CodeRefused(found.code, "used", f"code {found.code} was already used", found)
    return found


def _refuse_if_invalid(session: Session, program: Program, typed: str, found: Optional[CheckoutCode],
                       order_total: Optional[Decimal], currency: Optional[str], customer_id: Optional[int],
                       now: datetime) -> None:
    if found is None:
        kind = "friend offer" if is_friend_offer_code(typed) else "reward"
        raise CodeRefused(typed, "unknown", f"no {kind} code {typed!r}")
    if isinstance(found, FriendOffer):  # a percent off in any currency, for a first order
        refused = (refusal_for(found, now=now, order_total=order_total)
                   or friend_offer_refusal(session, program.referrals, found, customer_id))
    else:
        refused = refusal_for(found, now=now, order_total=order_total, order_currency=currency,
                              code_currency=found.currency)
    if refused is not None:
        refused.found = found
        raise refused
