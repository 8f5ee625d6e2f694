"""The rules that decide a referral: first-time friends only, no self-referral, a minimum first order,
velocity limits per network — and what each decision writes (its ReferralDecision, the advocate's points).

Every check answers with the reason a rule refuses, or None. Reasons are short sentences stored with the
decision: the merchant reads them in `python -m bot referrals show`, the advocate in their referral status.
The checks compare keyed hashes (bot/advocacy/fingerprints.py), never raw addresses or IPs.

A referral's networks are the one it came from (the click's, the sign-up's) and the one its friend's order
came from: the per-network limits match either, so clicking from one network and ordering from another
does not dodge them.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Collection, Optional, Set

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from bot.advocacy.fingerprints import normalize_email
from bot.db import serialise_on
from bot.loyalty.earning import points_expiry
from bot.loyalty.ledger import post_entry
from bot.loyalty.program import Program, ReferralRules
from bot.models import Customer, Order, Referral, ReferralDecision
from bot.notices import queue_notice

RULES_ACTOR = "rules"
SIGNUP_WINDOW = timedelta(days=7)
# Statuses of referrals whose friend made a qualifying purchase (the merchant may still be reviewing it).
QUALIFIED = ("rewarded", "review")

SAME_CUSTOMER = "self-referral: same customer"
SAME_EMAIL = "self-referral: same email"
SAME_ADDRESS = "self-referral: same shipping address"
SAME_NETWORK = "self-referral: same network (IP)"
NOT_FIRST_ORDER = "not a first order"
REWARDED_TEXT = ("Your friend just placed their first order — you've earned {points:,} points. "
                 "Thank you for spreading the word!")
REVERSED_TEXT = "We've taken back the {points:,} points for one of your referrals: {reason}."
# The first key of the PostgreSQL advisory locks taken per network ("RF"): keeps them apart from any other
# advisory lock on the same database.
_NETWORK_LOCK_CLASS = 0x5246


def signup_block_reason(session: Session, rules: ReferralRules, networks: Collection[str],
                        now: datetime) -> Optional[str]:
    """Too many referral sign-ups from one network this week. Blocked ones count too: a network that keeps
    trying stays blocked until its attempts age out of the 7-day window."""
    if not networks:
        return None
    _serialise_networks(session, networks)
    recent = session.execute(
        select(func.count(Referral.id)).where(_seen_from(networks), Referral.created_at > now - SIGNUP_WINDOW)
    ).scalar_one()
    if recent >= rules.max_signups_per_ip_per_week:
        return f"blocked: more than {rules.max_signups_per_ip_per_week} referral sign-ups from one network this week"
    return None


def self_referral_reason(
    session: Session,
    rules: ReferralRules,
    advocate: Customer,
    friend: Customer,
    ip_hashes: Collection[str] = (),
    address_hash: Optional[str] = None,
) -> Optional[str]:
    """The friend is the advocate: the same customer, the same person's other email, or someone shipping to
    the advocate's address or buying from the advocate's network (as seen on the advocate's own orders)."""
    if advocate.id == friend.id:
        return SAME_CUSTOMER
    if rules.reject_same_email and advocate.email and friend.email \
            and normalize_email(advocate.email) == normalize_email(friend.email):
        return SAME_EMAIL
    if rules.reject_same_address and address_hash is not None \
            and _advocate_ordered(session, advocate.id, Order.shipping_address_hash == address_hash):
        return SAME_ADDRESS
    if rules.reject_same_ip and ip_hashes and _advocate_ordered(session, advocate.id, Order.ip_hash.in_(ip_hashes)):
        return SAME_NETWORK
    return None


def minimum_order_reason(program: Program, total: Decimal) -> Optional[str]:
    minimum = program.earning.referral_friend_min_order
    if total >= minimum:
        return None
    return f"friend's first order {program.money(total)} was below the {program.money(minimum)} minimum"


def refunded_order_reason(program: Program, order: Order) -> Optional[str]:
    """Why the friend's order no longer earns the referral after refunds or a cancellation: cancelled,
    refunded in full, or what the friend kept is below the minimum; None while it still qualifies."""
    if order.status in ("cancelled", "refunded"):
        return f"friend's order {order.external_id} was {order.status}"
    kept = order.total - order.refunded_total
    minimum = program.earning.referral_friend_min_order
    if kept < minimum:
        return (f"friend's order {order.external_id} was partly refunded: the {program.money(kept)} kept is "
                f"below the {program.money(minimum)} minimum")
    return None


def purchases_hold_reason(
    session: Session, rules: ReferralRules, referral_id: int, networks: Collection[str]
) -> Optional[str]:
    """Many referred purchases from one network look like one person with many accounts: past the limit
    the merchant decides."""
    if not networks:
        return None
    _serialise_networks(session, networks)
    qualified = session.execute(
        select(func.count(Referral.id)).where(
            Referral.id != referral_id, _seen_from(networks), Referral.status.in_(QUALIFIED)
        )
    ).scalar_one()
    if qualified >= rules.max_referred_purchases_per_ip:
        return f"held: more than {rules.max_referred_purchases_per_ip} referred purchases from one network"
    return None


def has_other_orders(session: Session, customer_id: int, order_id: Optional[int] = None) -> bool:
    """Whether the customer has an order besides `order_id` (refunded or cancelled ones count: they were
    placed, so the customer is not new)."""
    condition = Order.customer_id == customer_id
    if order_id is not None:
        condition = condition & (Order.id != order_id)
    return bool(session.execute(select(exists().where(condition))).scalar())


def decide_first_order(session: Session, program: Program, referral: Referral, friend: Customer, order: Order,
                       now: datetime) -> Referral:
    """Decide a joined referral on the friend's paid order: rejected, held for review or rewarded."""
    referral.order_external_id = order.external_id
    if referral.ip_hash is None:
        referral.ip_hash = order.ip_hash  # the friend's network, for the per-network limits
    if has_other_orders(session, friend.id, order.id):
        return record_decision(session, referral, "rejected", NOT_FIRST_ORDER, RULES_ACTOR, now)
    advocate = session.get(Customer, referral.advocate_id)
    assert advocate is not None  # the foreign key cascades
    networks = referral_networks(referral.ip_hash, order.ip_hash)
    refused = (
        self_referral_reason(session, program.referrals, advocate, friend, networks, order.shipping_address_hash)
        or minimum_order_reason(program, order.total)
    )
    if refused:
        return record_decision(session, referral, "rejected", refused, RULES_ACTOR, now)
    held = purchases_hold_reason(session, program.referrals, referral.id, networks)
    if held:
        return record_decision(session, referral, "held", held, RULES_ACTOR, now)
    pay_advocate(session, program, referral, now)
    return record_decision(session, referral, "rewarded", f"friend's first order {order.external_id} qualified",
                           RULES_ACTOR, now)


def pay_advocate(session: Session, program: Program, referral: Referral, now: datetime) -> None:
    """The advocate's points for this referral, once (the ledger key), and the notice telling them."""
    points = program.earning.referral_advocate
    referral.points_awarded = points
    if points <= 0:
        return  # the merchant switched the advocate reward off
    post_entry(
        session, referral.advocate_id, points, kind="earn",
        reason=f"Referred a friend (order {referral.order_external_id})", source="referral",
        source_ref=str(referral.id), idempotency_key=f"referral:{referral.id}",
        expires_at=points_expiry(program, now), at=now,
    )
    queue_notice(session, referral.advocate_id, "referral_rewarded", REWARDED_TEXT.format(points=points),
                 f"referral_rewarded:{referral.id}", now)


def reject_and_take_back(session: Session, program: Program, referral: Referral, reason: str, actor: str,
                         now: datetime) -> Referral:
    """Reject the referral (the caller holds its row lock) and take back the points it paid the advocate, once
    (ledger key referral-reversal:<id>). As with an order's refund (bot/loyalty/orders.py), points the
    advocate already spent stop the take-back at zero unless refunds.allow_negative_balance; the rest is
    written off, and the reason says so. points_awarded keeps what the advocate still has from it."""
    paid = referral.points_awarded
    if paid > 0:
        taken = _points_to_take_back(session, program, referral.advocate_id, paid)
        written_off = paid - taken
        why = reason
        reason = f"{reason}; {taken:,} points taken back" + (
            f", {written_off:,} already spent and written off" if written_off else "")
        if taken:
            post_entry(
                session, referral.advocate_id, -taken, kind="reverse", reason=f"Referral reversed: {reason}",
                source="referral_reversal", source_ref=str(referral.id),
                idempotency_key=f"referral-reversal:{referral.id}",
                allow_negative_balance=program.refunds_allow_negative_balance, at=now,
            )
            # The advocate saw the reward arrive; they hear why it went.
            queue_notice(session, referral.advocate_id, "referral_reversed",
                         REVERSED_TEXT.format(points=taken, reason=why), f"referral_reversed:{referral.id}", now)
        referral.points_awarded = written_off
    return record_decision(session, referral, "rejected", reason, actor, now)


# The status each decision leaves the referral in.
_STATUS_AFTER = {"joined": "joined", "held": "review", "rewarded": "rewarded", "approved": "rewarded",
                 "rejected": "rejected"}


def record_decision(session: Session, referral: Referral, decision: str, reason: str, actor: str,
                    now: datetime) -> Referral:
    """Apply a decision to the referral and keep it, with its reason and actor, in referral_decisions.
    "ignored" records a note (another advocate's code the friend also used) without changing the status."""
    reason = reason[:255]
    if decision != "ignored":
        referral.status = _STATUS_AFTER[decision]
        referral.reason = reason
        if decision != "joined":
            referral.decided_at = now
    session.add(ReferralDecision(referral_id=referral.id, decision=decision, reason=reason, actor=actor[:64],
                                 created_at=now))
    session.flush()
    return referral


def referral_networks(*ip_hashes: Optional[str]) -> Set[str]:
    """The known networks among a referral's (its own, its friend's order's)."""
    return {ip for ip in ip_hashes if ip is not None}


def _seen_from(networks: Collection[str]) -> ColumnElement:
    """A referral from one of `networks`: its own network, or the network its friend's order came from."""
    ordered_from = select(Order.external_id).where(Order.ip_hash.in_(networks))
    return or_(Referral.ip_hash.in_(networks), Referral.order_external_id.in_(ordered_from))


def _serialise_networks(session: Session, networks: Collection[str]) -> None:
    """Make referrals from one network count one after the other: without it two orders from one network
    at the same moment both count the referrals committed before either and both get past the limit. On
    PostgreSQL a transaction-scoped advisory lock per network (held until commit); SQLite's write
    transactions are serialised already (BEGIN IMMEDIATE)."""
    serialise_on(session, _NETWORK_LOCK_CLASS, networks)


def _points_to_take_back(session: Session, program: Program, customer_id: int, points: int) -> int:
    """All `points`, or when balances may not go negative what the customer's balance still holds (locked
    until commit, so a concurrent redemption cannot spend it meanwhile)."""
    if program.refunds_allow_negative_balance:
        return points
    balance = session.execute(
        select(Customer.points_balance).where(Customer.id == customer_id).with_for_update()
    ).scalar_one()
    return max(0, min(points, int(balance)))


def _advocate_ordered(session: Session, advocate_id: int, condition: object) -> bool:
    return bool(session.execute(select(exists().where(Order.customer_id == advocate_id, condition))).scalar())
