"""Referrals: an advocate's code and link, friends joining (chat claims, sign-ups), attribution of the
friend's first order, the merchant's decisions and the numbers both of them see.

Clicks on the link and the friend's offer code (issuing, checking and using it at checkout) are
bot/advocacy/friend_offers.py, which this module imports; reading a typed referral code, drawing random
codes and ReferralError are bot/advocacy/codes.py, which both import.

How a friend is attributed to an advocate (one advocate per friend, whichever came first):
- a click on /r/{code} records a ReferralClick and issues a FriendOffer (a "FRIEND-XXXX-XXXX" discount
  code); the Referral is made when a paid order carries that code (source "link");
- a code typed in chat or a Telegram deep link (claim_in_chat) makes a Referral at once, for the linked
  customer or for the guest sender (attached to the customer when that sender links or the offer is used);
- the store sends `referral_code` with a new customer (register_signup) or with a paid order.
The friend's first paid order decides the referral (bot/advocacy/referral_fraud.py); a held one waits for
the merchant (approve_referral / reject_referral). A refund or cancellation that leaves that order short of
qualifying rejects the referral again and takes the advocate's points back (reconsider_after_refund). Both
attribution and reversal are called by the order events (bot/order_events.py), never by an entry point
itself; bot/loyalty never imports this package. Every decision is a ReferralDecision row.

Services take the caller's session and change nothing outside it; race-prone inserts run in savepoints
and rely on unique constraints (one code per customer, one referral per friend, the ledger's key).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Set, Tuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from bot.advocacy.codes import (
    CODE_LENGTH, DRAWS, ReferralError, find_referral_code, normalize_referral_code, random_symbols,
)
from bot.advocacy.friend_offers import find_friend_offer, issue_offer
from bot.advocacy.referral_fraud import (
    NOT_FIRST_ORDER, QUALIFIED, RULES_ACTOR, decide_first_order, has_other_orders, pay_advocate, record_decision,
    referral_networks, refunded_order_reason, reject_and_take_back, self_referral_reason, signup_block_reason,
)
from bot.identity import customer_for_sender, identity_channel
from bot.loyalty.ledger import Conflict, NotFound
from bot.loyalty.program import Program
from bot.loyalty.rewards import mark_used
from bot.models import (
    ChannelIdentity, Customer, FriendOffer, Order, Referral, ReferralClick, ReferralCode, ReferralDecision,
)

NOT_REWARDED_SHOWN = 5
CHAT_SOURCES = ("telegram", "chat")
ANOTHER_ADVOCATE = "one advocate per friend: another advocate referred this shopper first"
# Statuses the merchant may reject: a rewarded referral's points are taken back.
REJECTABLE = ("joined", "review", "rewarded")
_CANDIDATE_IN_TEXT = re.compile(r"[A-Za-z0-9-]+")

# What made a referral, in the words of its "joined" decision.
_JOINED_BY = {
    "link": "came through the advocate's link",
    "discount_code": "used the advocate's friend discount code",
    "referral_code": "gave the advocate's referral code",
    "telegram": "opened the advocate's Telegram link",
    "chat": "typed the advocate's code in chat",
}


class UnknownReferral(ReferralError, NotFound):
    """No referral (or customer) with that id."""


class ReferralStateError(ReferralError, Conflict):
    """The referral is not in a status that allows the action."""


# --- codes and links ---------------------------------------------------------------------------------


def referral_code_for(session: Session, customer_id: int, now: datetime) -> ReferralCode:
    """The customer's referral code, made on first use. Two chats asking at once get the same code: the
    loser of the race (unique customer_id) reads the winner's."""
    existing = _code_of(session, customer_id)
    if existing is not None:
        return existing
    if session.get(Customer, customer_id) is None:
        raise UnknownReferral(f"no customer with id {customer_id}")
    for _ in range(DRAWS):
        code = ReferralCode(customer_id=customer_id, code=random_symbols(CODE_LENGTH), created_at=now)
        try:
            with session.begin_nested():
                session.add(code)
                session.flush()
            return code
        except IntegrityError:
            winner = _code_of(session, customer_id)
            if winner is not None:
                return winner
            # Otherwise the random code was another customer's: draw again.
    raise ReferralError(f"no unused referral code found in {DRAWS} draws")


def referral_link(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/r/{code}"


def find_code_in_text(text: str) -> Optional[str]:
    """A referral code in a chat message ("my friend's code is k7qm2xda9p", a pasted /r/ link). Codes always
    hold a digit, so ordinary ten-letter words ("everything") are not mistaken for one."""
    for candidate in _CANDIDATE_IN_TEXT.findall(text or ""):
        code = normalize_referral_code(candidate)
        if code is not None:
            return code
    return None


def _code_of(session: Session, customer_id: int) -> Optional[ReferralCode]:
    return session.execute(select(ReferralCode).where(ReferralCode.customer_id == customer_id)).scalar_one_or_none()


# --- friends joining ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatClaim:
    status: str  # claimed | already_claimed | other_advocate | own_code | not_first_order | unknown_code | blocked
    advocate_name: Optional[str] = None
    offer_code: Optional[str] = None  # the friend's discount code (issued on claimed; the same one on already_claimed)
    percent_off: int = 0
    min_order: Optional[Decimal] = None
    expires_at: Optional[datetime] = None
    reason: str = ""
    offer_status: str = "issued"  # the offer's state now: issued | used | expired (already_claimed may be any)


def claim_in_chat(session: Session, program: Program, typed_code: str, channel: str, sender_id: str, source: str,
                  now: datetime) -> ChatClaim:
    """A friend in chat gives an advocate's code (typed, or a Telegram /start ref_<code>).

    A guest is remembered by their sender and attached to their customer when they link or order. Giving
    one's own code records nothing (a referral row for it would take the advocate's own "one advocate per
    friend" place); a guest using their own code is caught at their first order (same customer/email/...).
    """
    if source not in CHAT_SOURCES:
        raise ReferralError(f"source must be one of {', '.join(CHAT_SOURCES)}, not {source!r}")
    code = find_referral_code(session, typed_code)
    if code is None:
        return ChatClaim("unknown_code", reason="no such referral code")
    channel = identity_channel(channel)
    friend = customer_for_sender(session, channel, sender_id)
    if friend is not None and friend.id == code.customer_id:
        return ChatClaim("own_code", reason="this is the shopper's own referral code")
    existing = (_referral_of_customer(session, friend.id, now) if friend is not None
                else _referral_of_sender(session, channel, sender_id))
    if existing is None:
        if friend is not None and has_other_orders(session, friend.id):
            return ChatClaim("not_first_order", reason=NOT_FIRST_ORDER)
        referral = _new_referral(session, program, code, source, now, friend=friend, channel=channel,
                                 sender_id=sender_id)
        if referral is not None:
            if friend is not None:
                _reject_self_referral(session, program, referral, friend, now)
            return _claim_view(session, program, referral, now, claimed=True)
        # A concurrent claim from the same chat made it first.
        existing = (_referral_of_customer(session, friend.id, now) if friend is not None
                    else _referral_of_sender(session, channel, sender_id))
        assert existing is not None
    if existing.referral_code_id != code.id:
        return ChatClaim("other_advocate", reason=ANOTHER_ADVOCATE)
    return _claim_view(session, program, existing, now, claimed=False)


def claim_of_sender(session: Session, program: Program, channel: str, sender_id: str, now: datetime
                    ) -> Optional[ChatClaim]:
    """The invitation this chat (or its customer) accepted, with the friend's offer as it stands now; None
    when it accepted none. ("So what discount do I get?" right after giving a friend's code.)"""
    channel = identity_channel(channel)
    friend = customer_for_sender(session, channel, sender_id)
    referral = _referral_of_friend(session, friend.id) if friend is not None else None
    if referral is None:
        referral = _referral_of_sender(session, channel, sender_id)
    return _claim_view(session, program, referral, now, claimed=False) if referral is not None else None


@dataclass(frozen=True)
class ReferralOutcome:
    """A referral as the store API reports it; referral_id None when no referral could be recorded."""

    referral_id: Optional[int]
    status: str
    reason: str
    advocate_points: int = 0
    offer_code: Optional[str] = None

    @classmethod
    def of(cls, referral: Referral, offer_code: Optional[str] = None) -> "ReferralOutcome":
        return cls(referral.id, referral.status, referral.reason, referral.points_awarded, offer_code)


def register_signup(session: Session, program: Program, customer_id: int, typed_code: str, ip_hash: Optional[str],
                    now: datetime) -> ReferralOutcome:
    """A new store customer signed up with an advocate's referral code (source "referral_code"). The rules
    that can already tell (sign-ups per network, same email, the advocate's network) decide now; the rest
    wait for the first order."""
    code = find_referral_code(session, typed_code)
    if code is None:
        return ReferralOutcome(None, "rejected", "unknown referral code")
    friend = session.get(Customer, customer_id)
    if friend is None:
        raise UnknownReferral(f"no customer with id {customer_id}")
    referral = _referral_of_customer(session, friend.id, now)
    if referral is None:
        referral = _new_referral(session, program, code, "referral_code", now, friend=friend, ip_hash=ip_hash)
        if referral is not None:
            _reject_self_referral(session, program, referral, friend, now)
    if referral is None:  # a concurrent request attributed this friend first
        referral = _referral_of_customer(session, friend.id, now)
        assert referral is not None
    if referral.referral_code_id != code.id:
        return ReferralOutcome(referral.id, referral.status, ANOTHER_ADVOCATE)
    offer = _offer_of(session, program, referral, now)
    return ReferralOutcome.of(referral, offer.code if offer else None)


def _new_referral(session: Session, program: Program, code: ReferralCode, source: str, now: datetime, *,
                  friend: Optional[Customer] = None, channel: Optional[str] = None, sender_id: Optional[str] = None,
                  ip_hash: Optional[str] = None, click_id: Optional[int] = None,
                  order: Optional[Order] = None) -> Optional[Referral]:
    """A new referral (joined, or rejected at once by a rule that can already tell), made by the friend's
    `order` when there is one; None when a concurrent request made this friend's referral first (the
    unique friend)."""
    referral = Referral(
        referral_code_id=code.id, advocate_id=code.customer_id, friend_customer_id=friend.id if friend else None,
        friend_channel=channel, friend_sender_id=sender_id, source=source, click_id=click_id, ip_hash=ip_hash,
        status="joined", reason=_JOINED_BY[source], points_awarded=0, created_at=now,
        order_external_id=order.external_id if order else None,  # also when blocked at once
    )
    networks = referral_networks(ip_hash, order.ip_hash if order else None)
    blocked = signup_block_reason(session, program.referrals, networks, now)  # counted before this one exists
    try:
        with session.begin_nested():
            session.add(referral)
            session.flush()
    except IntegrityError:
        return None
    if blocked:
        return record_decision(session, referral, "rejected", blocked, RULES_ACTOR, now)
    return record_decision(session, referral, "joined", referral.reason, RULES_ACTOR, now)


def _reject_self_referral(session: Session, program: Program, referral: Referral, friend: Customer,
                          now: datetime) -> None:
    """The self-referral rules that can tell before an order (same customer or email, the advocate's
    network): a friend caught at sign-up or claim gets no offer."""
    if referral.status != "joined":
        return
    advocate = session.get(Customer, referral.advocate_id)
    assert advocate is not None
    refused = self_referral_reason(session, program.referrals, advocate, friend, referral_networks(referral.ip_hash))
    if refused:
        record_decision(session, referral, "rejected", refused, RULES_ACTOR, now)


def _referral_of_sender(session: Session, channel: str, sender_id: str) -> Optional[Referral]:
    return session.execute(
        select(Referral).where(Referral.friend_channel == channel, Referral.friend_sender_id == sender_id)
    ).scalar_one_or_none()


def _referral_of_customer(session: Session, customer_id: int, now: datetime) -> Optional[Referral]:
    """The customer's referral: by customer, else a claim one of their chats made as a guest (attached to
    them now). When several of their chats claimed as guests, the first claim stands and the others are
    rejected: one advocate per friend."""
    direct = _referral_of_friend(session, customer_id)
    if direct is not None:
        return direct
    guest_claims = session.execute(
        select(Referral)
        .join(ChannelIdentity, (ChannelIdentity.channel == Referral.friend_channel)
              & (ChannelIdentity.external_id == Referral.friend_sender_id))
        .where(ChannelIdentity.customer_id == customer_id, Referral.friend_customer_id.is_(None))
        .order_by(Referral.created_at, Referral.id)
    ).scalars().all()
    if not guest_claims:
        return None
    first = guest_claims[0]
    if not _attach(session, first, customer_id):
        return _referral_of_friend(session, customer_id)
    for later in guest_claims[1:]:
        if later.status == "joined":
            record_decision(session, later, "rejected",
                            f"one advocate per friend: this shopper's referral #{first.id} came first",
                            RULES_ACTOR, now)
    return first


def _referral_of_friend(session: Session, customer_id: int) -> Optional[Referral]:
    return session.execute(select(Referral).where(Referral.friend_customer_id == customer_id)).scalar_one_or_none()


def _attach(session: Session, referral: Referral, customer_id: int) -> bool:
    """Name the customer on a guest's referral; False when the customer got another referral concurrently."""
    try:
        with session.begin_nested():
            referral.friend_customer_id = customer_id
            session.flush()
    except IntegrityError:
        session.refresh(referral)
        return False
    return True


def _offer_of(session: Session, program: Program, referral: Referral, now: datetime) -> Optional[FriendOffer]:
    """The offer issued for a joined referral (made on first need); the latest one for a decided referral."""
    offer = session.execute(
        select(FriendOffer).where(FriendOffer.referral_id == referral.id).order_by(FriendOffer.id.desc()).limit(1)
    ).scalar_one_or_none()
    if offer is None and referral.status == "joined":
        offer = issue_offer(session, program, referral.referral_code_id, now, referral_id=referral.id)
    return offer


def _claim_view(session: Session, program: Program, referral: Referral, now: datetime, claimed: bool) -> ChatClaim:
    if referral.status == "rejected":
        return ChatClaim("not_first_order" if referral.reason == NOT_FIRST_ORDER else "blocked", reason=referral.reason)
    advocate = session.get(Customer, referral.advocate_id)
    offer = _offer_of(session, program, referral, now)
    return ChatClaim(
        "claimed" if claimed else "already_claimed",
        advocate_name=advocate.first_name if advocate else None,
        offer_code=offer.code if offer else None,
        percent_off=offer.percent_off if offer else 0,
        min_order=offer.min_order if offer else None,
        expires_at=offer.expires_at if offer else None,
        reason=referral.reason,
        offer_status=_offer_status(offer, now) if offer else "issued",
    )


def _offer_status(offer: FriendOffer, now: datetime) -> str:
    """issued | used | expired: an offer nobody used is expired once its time is up (no job marks it)."""
    if offer.status == "issued" and offer.expires_at <= now:
        return "expired"
    return offer.status


# --- the friend's first order ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """An advocate an order points at, and how."""

    code: ReferralCode
    source: str
    click_id: Optional[int] = None
    ip_hash: Optional[str] = None


def attribute_order(session: Session, program: Program, order: Order, *, discount_codes: Sequence[str] = (),
                    referral_code: Optional[str] = None, now: datetime) -> Optional[ReferralOutcome]:
    """Attribute a newly recorded paid order to an advocate and decide the referral: the referral this
    order created or decided, else None (no referral, or one decided before: an earlier order, a rule at
    sign-up). bot/order_events.py calls it once, when the order was new, in the same transaction: a replayed
    or concurrent delivery of the order never gets here twice, and the ledger key f"referral:{id}" would
    refuse a second payment anyway.

    Precedence: the friend's existing referral stands (one advocate per friend); otherwise a friend offer
    among the order's discount codes, then the order's referral code. A code pointing at another advocate
    is recorded as an "ignored" decision on the referral that stands."""
    friend = session.get(Customer, order.customer_id)
    assert friend is not None
    offer = _offer_on_order(session, discount_codes, order.external_id)
    referral = _referral_of_customer(session, friend.id, now)
    if referral is None and offer is not None and offer.referral_id is not None:
        referral = _claimed_offer_referral(session, offer, friend.id)
    candidates = _candidates(session, offer, referral_code, order)
    if offer is not None:
        _offer_used_on(session, offer, order.external_id, friend.id, now)
    created = False
    if referral is None:
        if not candidates:
            return None
        first = candidates[0]
        referral = _new_referral(session, program, first.code, first.source, now, friend=friend,
                                 ip_hash=first.ip_hash, click_id=first.click_id, order=order)
        if referral is None:  # a concurrent request attributed this friend first
            referral = _referral_of_friend(session, friend.id)
            assert referral is not None
        else:
            created = True
    for candidate in candidates:
        if candidate.code.id != referral.referral_code_id:
            record_decision(session, referral, "ignored",
                            f"the code of another advocate (customer {candidate.code.customer_id}) on order "
                            f"{order.external_id} was ignored: one advocate per friend", RULES_ACTOR, now)
    referral = _locked(session, referral.id)  # a concurrent order of the same friend waits here
    if referral.status == "joined":
        decide_first_order(session, program, referral, friend, order, now)
    elif not created:
        return None
    return ReferralOutcome.of(referral)


def customers_with_referrals(session: Session, customer_ids: Sequence[int]) -> Set[int]:
    """Those of the customers whose new order attribute_order may act on without a code on the order: a
    referral names them as the friend, or one of their chats claimed a code as a guest. For the others an
    order without discount or referral codes attributes nothing and changes nothing (bot/order_events.py
    records such orders in bulk)."""
    found: Set[int] = set()
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(session.execute(
            select(Referral.friend_customer_id).where(Referral.friend_customer_id.in_(chunk))).scalars())
        found.update(session.execute(
            select(ChannelIdentity.customer_id)
            .join(Referral, (ChannelIdentity.channel == Referral.friend_channel)
                  & (ChannelIdentity.external_id == Referral.friend_sender_id))
            .where(ChannelIdentity.customer_id.in_(chunk), Referral.friend_customer_id.is_(None))
        ).scalars())
    return found


def _offer_used_on(session: Session, offer: FriendOffer, order_ref: str, customer_id: int, now: datetime) -> None:
    """The offer the store honoured on this order is used, by this customer (the checkout may have marked it
    used already, without naming the customer)."""
    if offer.status == "issued":
        mark_used(session, offer, order_ref, now, used_by_customer_id=customer_id)
    elif offer.used_by_customer_id is None:
        offer.used_by_customer_id = customer_id
        session.flush()


def _offer_on_order(session: Session, discount_codes: Sequence[str], order_ref: str) -> Optional[FriendOffer]:
    """The first friend offer among the order's codes that is still open (or was used for this order)."""
    for typed in discount_codes:
        offer = find_friend_offer(session, typed)
        if offer is not None and (offer.status == "issued"
                                  or (offer.status == "used" and offer.used_order_ref == order_ref)):
            return offer
    return None


def _claimed_offer_referral(session: Session, offer: FriendOffer, customer_id: int) -> Optional[Referral]:
    """The chat claim an offer was issued for, when it may be this customer's: a guest claim (the shopper
    chatted on one device and ordered on another) is attached to them. An offer another customer claimed
    and passed on is not their referral (None: the offer then refers this customer in its own right)."""
    referral = session.get(Referral, offer.referral_id)
    if referral is None or referral.friend_customer_id not in (None, customer_id):
        return None
    if referral.friend_customer_id is None and not _attach(session, referral, customer_id):
        return _referral_of_friend(session, customer_id)
    return referral


def _candidates(session: Session, offer: Optional[FriendOffer], referral_code: Optional[str],
                order: Order) -> List[_Candidate]:
    found = []
    if offer is not None:
        code = session.get(ReferralCode, offer.referral_code_id)
        click = session.get(ReferralClick, offer.click_id) if offer.click_id is not None else None
        assert code is not None
        found.append(_Candidate(code, "link" if click else "discount_code", click.id if click else None,
                                (click.ip_hash if click else None) or order.ip_hash))
    typed = find_referral_code(session, referral_code)
    if typed is not None:
        found.append(_Candidate(typed, "referral_code", None, order.ip_hash))
    return found


def _locked(session: Session, referral_id: int) -> Referral:
    referral = session.execute(
        select(Referral).where(Referral.id == referral_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if referral is None:
        raise UnknownReferral(f"no referral with id {referral_id}")
    return referral


# --- the merchant's decisions ------------------------------------------------------------------------


def approve_referral(session: Session, program: Program, referral_id: int, actor: str, now: datetime) -> Referral:
    """Pay the advocate for a referral held for review, if the friend's order still qualifies."""
    referral = _locked(session, referral_id)
    if referral.status != "review":
        raise ReferralStateError(
            f"referral {referral_id} is {referral.status}; only a referral in review can be approved")
    order = session.execute(select(Order).where(Order.external_id == referral.order_external_id)).scalar_one_or_none()
    if order is None:
        raise ReferralError(f"the friend's order {referral.order_external_id} is gone: reject the referral instead")
    lost = refunded_order_reason(program, order)
    if lost:
        raise ReferralError(f"{lost}: reject the referral instead")
    pay_advocate(session, program, referral, now)
    return record_decision(session, referral, "approved", "approved after review", actor, now)


def reject_referral(session: Session, program: Program, referral_id: int, actor: str, reason: str,
                    now: datetime) -> Referral:
    """Reject a referral in review, one still waiting for the friend's first order, or a rewarded one (its
    points are taken back, as far as the advocate's balance allows). The reason is shown to the advocate in
    their referral status."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ReferralError("a rejection needs a reason (the advocate sees it)")
    referral = _locked(session, referral_id)
    if referral.status not in REJECTABLE:
        raise ReferralStateError(
            f"referral {referral_id} is {referral.status}; only a referral joined, in review or rewarded can be "
            "rejected")
    return reject_and_take_back(session, program, referral, reason, actor, now)


def reconsider_after_refund(session: Session, program: Program, order: Order, now: datetime) -> Optional[Referral]:
    """Call after recording a refund or cancellation of `order`, in the same transaction. When the order was
    a friend's qualifying first order and no longer qualifies (cancelled, refunded in full, or what is kept
    is below the minimum), its referral — rewarded or held for review — is rejected and the advocate's
    points are taken back. Returns that referral, else None. Calling it again changes nothing: a rejected
    referral is not reconsidered."""
    lost = refunded_order_reason(program, order)
    if lost is None:
        return None
    referral_id = session.execute(
        select(Referral.id).where(Referral.friend_customer_id == order.customer_id,
                                  Referral.order_external_id == order.external_id, Referral.status.in_(QUALIFIED))
    ).scalar_one_or_none()
    if referral_id is None:
        return None
    referral = _locked(session, referral_id)
    if referral.status not in QUALIFIED:  # a merchant rejected it while we waited for the lock
        return None
    return reject_and_take_back(session, program, referral, lost, RULES_ACTOR, now)


# --- what the advocate and the merchant see ----------------------------------------------------------


@dataclass(frozen=True)
class NotRewarded:
    friend: str  # masked, e.g. "J*** (joined 3 Nov)": never a full email
    reason: str
    at: datetime


@dataclass(frozen=True)
class ReferralStats:
    code: str
    clicks: int
    friends_joined: int
    successful: int
    points_earned: int
    pending: int  # friends joined, no qualifying order yet
    in_review: int  # held for the merchant
    not_rewarded: List[NotRewarded]  # most recent first, at most NOT_REWARDED_SHOWN


def referral_stats(session: Session, customer_id: int) -> Optional[ReferralStats]:
    """The advocate's numbers; None when the customer has no code yet."""
    code = _code_of(session, customer_id)
    if code is None:
        return None
    clicks = session.execute(
        select(func.count(ReferralClick.id)).where(ReferralClick.referral_code_id == code.id)
    ).scalar_one()
    counts: Dict[str, int] = {}
    points = 0
    for status, count, awarded in session.execute(
        select(Referral.status, func.count(Referral.id), func.coalesce(func.sum(Referral.points_awarded), 0))
        .where(Referral.advocate_id == customer_id).group_by(Referral.status)
    ).all():
        counts[status] = int(count)
        points += int(awarded)
    rejected = session.execute(
        select(Referral, Customer).outerjoin(Customer, Customer.id == Referral.friend_customer_id)
        .where(Referral.advocate_id == customer_id, Referral.status == "rejected")
        .order_by(Referral.decided_at.desc(), Referral.id.desc()).limit(NOT_REWARDED_SHOWN)
    ).all()
    return ReferralStats(
        code=code.code, clicks=int(clicks), friends_joined=sum(counts.values()), successful=counts.get("rewarded", 0),
        points_earned=points, pending=counts.get("joined", 0), in_review=counts.get("review", 0),
        not_rewarded=[
            NotRewarded(_masked(referral, friend), referral.reason, referral.decided_at or referral.created_at)
            for referral, friend in rejected
        ],
    )


def _masked(referral: Referral, friend: Optional[Customer]) -> str:
    name = (friend.first_name or (friend.email or "").split("@")[0]) if friend is not None else ""
    who = f"{name.strip()[0].upper()}***" if name.strip() else "A friend"
    return f"{who} (joined {referral.created_at.day} {referral.created_at:%b})"


@dataclass(frozen=True)
class ReferralRow:
    """A referral for the merchant's list: who referred whom (the merchant sees full emails)."""

    referral: Referral
    advocate_email: Optional[str]
    friend: str  # the friend's email, or their chat sender while a guest


def list_referrals(session: Session, status: Optional[str] = None, limit: int = 50) -> List[ReferralRow]:
    """Newest first."""
    query = _rows().order_by(Referral.created_at.desc(), Referral.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Referral.status == status)
    return [_row(*row) for row in session.execute(query).all()]


def referral_detail(session: Session, referral_id: int) -> Tuple[ReferralRow, List[ReferralDecision]]:
    """One referral and every decision about it, oldest first."""
    row = session.execute(_rows().where(Referral.id == referral_id)).one_or_none()
    if row is None:
        raise UnknownReferral(f"no referral with id {referral_id}")
    decisions = session.execute(
        select(ReferralDecision).where(ReferralDecision.referral_id == referral_id)
        .order_by(ReferralDecision.created_at, ReferralDecision.id)
    ).scalars().all()
    return _row(*row), list(decisions)


@dataclass(frozen=True)
class ProgramTotals:
    by_status: Dict[str, int]
    clicks: int
    offers_issued: int
    offers_used: int
    points_paid: int


def referral_totals(session: Session) -> ProgramTotals:
    by_status = {status: int(count) for status, count in session.execute(
        select(Referral.status, func.count(Referral.id)).group_by(Referral.status)
    ).all()}
    offers = {status: int(count) for status, count in session.execute(
        select(FriendOffer.status, func.count(FriendOffer.id)).group_by(FriendOffer.status)
    ).all()}
    return ProgramTotals(
        by_status=by_status,
        clicks=int(session.execute(select(func.count(ReferralClick.id))).scalar_one()),
        offers_issued=sum(offers.values()),
        offers_used=offers.get("used", 0),
        points_paid=int(session.execute(select(func.coalesce(func.sum(Referral.points_awarded), 0))).scalar_one()),
    )


_Advocate = aliased(Customer)
_Friend = aliased(Customer)


def _rows() -> Select:
    return (
        select(Referral, _Advocate.email, _Friend.email)
        .join(_Advocate, _Advocate.id == Referral.advocate_id)
        .outerjoin(_Friend, _Friend.id == Referral.friend_customer_id)
    )


def _row(referral: Referral, advocate_email: Optional[str], friend_email: Optional[str]) -> ReferralRow:
    if friend_email:
        friend = friend_email
    elif referral.friend_customer_id is not None:
        friend = f"customer {referral.friend_customer_id}"
    else:
        friend = f"guest {referral.friend_channel}:{referral.friend_sender_id}"
    return ReferralRow(referral, advocate_email, friend)
