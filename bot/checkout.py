"""Codes the store honours at checkout — reward codes bought with points (RW-…, bot/loyalty/rewards.py) and a
referred friend's offer (FRIEND-…, bot/advocacy/friend_offers.py): check one for a basket, use one on an
order. The store API and the CLI call these; a paid order's friend offer is used by its attribution."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional, Union

from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.friend_offers import find_friend_offer, friend_offer_refusal, is_friend_offer_code
from bot.loyalty.program import Program
from bot.loyalty.rewards import CodeRefused, find_code as find_reward_code, mark_used, refusal_for
from bot.models import FriendOffer, RewardCode

CheckoutCode = Union[RewardCode, FriendOffer]
MAX_ORDER_REF = 64


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
