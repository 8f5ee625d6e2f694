"""The friend's side of a referral before any order: clicks on an advocate's link and the friend's offer.

- A click on /r/{code} records a ReferralClick (not for link-preview crawlers; the same network within 24
  hours gets the offer it already has) and issues a FriendOffer: a "FRIEND-XXXX-XXXX" discount code.
- The store checks and uses that code at checkout like a reward code (bot/checkout.py), plus the friend's
  own rules (friend_offer_refusal): never the customer's own link (nor, with referrals.fraud.reject_same_email,
  the link of the same person's other account), only for a first order.

Attributing the order to the advocate and deciding the referral is bot/advocacy/referrals.py, which
imports this module (this one never imports it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.advocacy.codes import CODE_CHARACTERS, DRAWS, ReferralError, find_referral_code, random_symbols
from bot.advocacy.referral_fraud import has_other_orders, self_referral_reason
from bot.loyalty.program import Program, ReferralRules
from bot.loyalty.rewards import CodeRefused
from bot.models import Customer, FriendOffer, ReferralClick, ReferralCode

OFFER_PREFIX = "FRIEND"
OFFER_GROUP_LENGTH = 4  # FRIEND-XXXX-XXXX: a 10 % discount for a first order, worth less than guessing it costs
CLICK_DEDUPE_WINDOW = timedelta(hours=24)
# Visits one network may record through one link in CLICK_DEDUPE_WINDOW. A known network gets its earlier
# offer back within that window anyway, so this bounds the visits whose network is unknown (no usable client
# address), which cannot be told apart: without it each would mint a new offer.
MAX_CLICKS_PER_NETWORK = 20
# Link-preview crawlers fetch a shared link to draw its card: not a friend visiting.
LINK_PREVIEW_AGENTS = ("telegrambot", "facebookexternalhit", "slackbot", "twitterbot", "whatsapp", "discordbot",
                       "linkedinbot", "googlebot", "bingbot")


# --- clicks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    code: str  # the referral code clicked
    offer_code: Optional[str]  # the friend's discount code (None when the program gives friends none)
    counted: bool  # False when the same network clicked this link in the last 24 hours (its offer again)


def is_link_preview(user_agent: Optional[str]) -> bool:
    agent = (user_agent or "").lower()
    return any(name in agent for name in LINK_PREVIEW_AGENTS)


def record_click(session: Session, program: Program, typed_code: str, ip_hash: Optional[str],
                 user_agent: Optional[str], now: datetime) -> Optional[Click]:
    """A visit through the advocate's link and the friend's offer; None (nothing written) for an unknown
    code, a link-preview crawler, or a network past MAX_CLICKS_PER_NETWORK visits of this link today. The
    same network clicking the same link within 24 hours gets the offer it already has: reloading the page
    or tapping the link twice does not mint codes."""
    if is_link_preview(user_agent):
        return None
    code = find_referral_code(session, typed_code)
    if code is None:
        return None
    if ip_hash is not None:
        earlier = session.execute(
            select(ReferralClick).where(
                ReferralClick.referral_code_id == code.id, ReferralClick.ip_hash == ip_hash,
                ReferralClick.clicked_at > now - CLICK_DEDUPE_WINDOW,
            ).order_by(ReferralClick.clicked_at.desc(), ReferralClick.id.desc()).limit(1)
        ).scalar_one_or_none()
        if earlier is not None:
            offer = session.execute(select(FriendOffer).where(FriendOffer.click_id == earlier.id)).scalar_one_or_none()
            return Click(code.code, offer.code if offer else None, counted=False)
    if _recent_clicks(session, code.id, ip_hash, now) >= MAX_CLICKS_PER_NETWORK:
        return None
    click = ReferralClick(referral_code_id=code.id, clicked_at=now, ip_hash=ip_hash,
                          user_agent=user_agent[:255] if user_agent else None)
    session.add(click)
    session.flush()
    offer = issue_offer(session, program, code.id, now, click_id=click.id)
    return Click(code.code, offer.code if offer else None, counted=True)


def _recent_clicks(session: Session, referral_code_id: int, ip_hash: Optional[str], now: datetime) -> int:
    """Clicks recorded through this link in the last CLICK_DEDUPE_WINDOW from this network (for None: from
    networks we could not tell)."""
    network = ReferralClick.ip_hash.is_(None) if ip_hash is None else ReferralClick.ip_hash == ip_hash
    return int(session.execute(
        select(func.count(ReferralClick.id)).where(
            ReferralClick.referral_code_id == referral_code_id, network,
            ReferralClick.clicked_at > now - CLICK_DEDUPE_WINDOW,
        )
    ).scalar_one())


# --- friend offers -----------------------------------------------------------------------------------


def normalize_offer_code(typed: str) -> Optional[str]:
    """"friend k7qm 2xda" → "FRIEND-K7QM-2XDA"; None if it cannot be a friend offer code."""
    if not isinstance(typed, str) or len(typed) > 64:
        return None
    cleaned = "".join(ch for ch in typed.upper() if ch.isalnum())
    body = cleaned[len(OFFER_PREFIX):]
    if not cleaned.startswith(OFFER_PREFIX) or len(body) != 2 * OFFER_GROUP_LENGTH or not set(body) <= CODE_CHARACTERS:
        return None
    return f"{OFFER_PREFIX}-{body[:OFFER_GROUP_LENGTH]}-{body[OFFER_GROUP_LENGTH:]}"


def is_friend_offer_code(typed: str) -> bool:
    """Whether a code at checkout is meant as a friend offer (then only friend offers can answer for it)."""
    return "".join(ch for ch in (typed or "").upper() if ch.isalnum()).startswith(OFFER_PREFIX)


def find_friend_offer(session: Session, typed: str) -> Optional[FriendOffer]:
    code = normalize_offer_code(typed)
    if code is None:
        return None
    return session.execute(select(FriendOffer).where(FriendOffer.code == code)).scalar_one_or_none()


def issue_offer(session: Session, program: Program, referral_code_id: int, now: datetime, *,
                click_id: Optional[int] = None, referral_id: Optional[int] = None) -> Optional[FriendOffer]:
    """A new offer for a click or a chat claim; None when the program gives friends no discount."""
    percent_off = program.earning.referral_friend_percent_off
    if percent_off <= 0:
        return None  # the program gives friends no discount
    for _ in range(DRAWS):
        symbols = random_symbols(2 * OFFER_GROUP_LENGTH)
        offer = FriendOffer(
            code=f"{OFFER_PREFIX}-{symbols[:OFFER_GROUP_LENGTH]}-{symbols[OFFER_GROUP_LENGTH:]}",
            referral_code_id=referral_code_id, click_id=click_id, referral_id=referral_id, percent_off=percent_off,
            min_order=None, status="issued", issued_at=now,
            expires_at=now + timedelta(days=program.referrals.friend_offer_valid_days),
        )
        try:
            with session.begin_nested():
                session.add(offer)
                session.flush()
            return offer
        except IntegrityError:
            continue  # the random code was taken
    raise ReferralError(f"no unused friend offer code found in {DRAWS} draws")


def friend_offer_refusal(session: Session, rules: ReferralRules, offer: FriendOffer,
                         customer_id: Optional[int]) -> Optional[CodeRefused]:
    """Why this customer may not use the offer, beyond what any code checks (bot/checkout.py): it is their
    own link (or, by the self-referral email rule, the link of their other account), or they already ordered
    or used a friend offer. None for an unknown customer (a new one at their first checkout)."""
    customer = session.get(Customer, customer_id) if customer_id is not None else None
    if customer is None:
        return None
    advocate = session.execute(
        select(Customer).join(ReferralCode, ReferralCode.customer_id == Customer.id)
        .where(ReferralCode.id == offer.referral_code_id)
    ).scalar_one()
    # Only the rules that can tell at checkout (same customer, same email): no order, no address, no network yet.
    own = self_referral_reason(session, rules, advocate, customer)
    if own:
        return CodeRefused(offer.code, "own_code", f"code {offer.code} comes from this customer's own referral link "
                                                   f"({own})")
    used_another = session.execute(
        select(func.count(FriendOffer.id)).where(FriendOffer.used_by_customer_id == customer_id,
                                                 FriendOffer.id != offer.id)
    ).scalar_one()
    if used_another or has_other_orders(session, customer_id):
        return CodeRefused(offer.code, "not_first_order",
                           f"code {offer.code} is for a first order; this customer already ordered or used a "
                           "friend offer")
    return None
