"""Joining the loyalty program, in the caller's one transaction: the customer the store names, found or created
(bot/identity), the signup bonus once, and the advocate's referral code they joined with. The store API, the
history importer and the demo seed call `join`; none composes it itself."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.referrals import ReferralOutcome, register_signup
from bot.identity import CustomerFacts, find_or_create_customer
from bot.loyalty.earning import award, credit_for
from bot.loyalty.program import Program
from bot.models import Customer


@dataclass(frozen=True)
class Joining:
    facts: CustomerFacts
    referral_code: Optional[str] = None  # an advocate's code the shopper signed up with
    ip_hash: Optional[str] = None  # the sign-up's network, keyed hash (referral fraud rules)


@dataclass(frozen=True)
class Joined:
    customer: Customer
    created: bool  # the customer joined now: new to us, or known only from a chat until the store named them
    updated: bool  # an existing member was given a store id, an email, a name or a birthday
    signup_points: int
    referral: Optional[ReferralOutcome]  # only for a customer who joined now with a referral code


def join(session: Session, program: Program, joining: Joining, *, email_may_change: bool = False,
         at: Optional[datetime] = None, store_id_label: str = "external_id") -> Joined:
    """The member the store's facts describe. A customer who joins now gets the signup bonus (unless the
    program has none) dated `at` (default now), and their referral code is registered; an existing member
    only has what was missing filled in (see find_or_create_customer for conflicts and `email_may_change`)."""
    when = at or clock.now()
    found = find_or_create_customer(session, joining.facts, email_may_change=email_may_change, at=when,
                                    store_id_label=store_id_label)
    if not found.joined:
        return Joined(found.customer, False, found.updated, 0, None)
    points = signup_bonus(session, program, found.customer.id, when)
    referral = None
    if joining.referral_code is not None:
        referral = register_signup(session, program, found.customer.id, joining.referral_code, joining.ip_hash,
                                   clock.now())
    return Joined(found.customer, True, found.updated, points, referral)


def signup_bonus(session: Session, program: Program, customer_id: int, at: datetime) -> int:
    """The welcome bonus, once per customer (its ledger key); 0 when the merchant switched it off."""
    if program.earning.signup <= 0:
        return 0
    posted = award(session, program, customer_id, credit_for(program, customer_id, "signup", None, at), at)
    return posted.entry.points if posted.created else 0
