"""Joining the loyalty program, in the caller's one transaction: the customer the store names, found or created
(bot/identity), the signup bonus once, and the advocate's referral code they joined with. The store API and the
demo seed call `join`; the history importer calls `join_many`, which ends as `join` row by row would with a
few statements per batch; none composes a join itself."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Set, Tuple

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.referrals import ReferralOutcome, register_signup
from bot.identity import (
    CustomerFacts, IdentityError, customers_by_email, customers_by_store_id, find_or_create_customer, found_unchanged,
    insert_customers,
)
from bot.loyalty.earning import award, credit_for, points_expiry
from bot.loyalty.ledger import Earning, LedgerError, insert_earnings
from bot.loyalty.program import Program
from bot.models import Customer, LedgerEntry
from bot.shared.text import normalize_email


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


@dataclass(frozen=True)
class JoinOutcome:
    """What join_many did with one joining — what its Joined says, without the customer row (loading a batch's
    new customers back would cost as much as writing them) — or the error that refused it alone."""

    error: Optional[Exception] = None  # an IdentityError, LedgerError, IntegrityError or DataError
    customer_id: Optional[int] = None
    created: bool = False
    updated: bool = False
    signup_points: int = 0

    @classmethod
    def of(cls, joined: Joined) -> "JoinOutcome":
        return cls(None, joined.customer.id, joined.created, joined.updated, joined.signup_points)


def join_many(session: Session, program: Program, joinings: Sequence[Joining], *, email_may_change: bool = False,
              at: Optional[datetime] = None, store_id_label: str = "external_id") -> List[JoinOutcome]:
    """`join` for each joining in turn (a history import), ending exactly as joining them one by one in
    savepoints would, each refused alone.

    Most rows of an export are a new customer, or one already there with nothing to fill in (a rerun); those
    are settled with a few statements for the whole batch: the batch's emails and store ids looked up at once,
    the new customers and their signup bonuses inserted together (insert_customers, insert_earnings). Every
    other row — a conflict, something to fill in, a referral code, an email or store id met earlier in the
    batch — goes through `join` in its own savepoint, after the new customers before it are written."""
    when = at or clock.now()
    outcomes: List[Optional[JoinOutcome]] = [None] * len(joinings)
    emails = [normalize_email(joining.facts.email) for joining in joinings]
    by_email: Dict[str, Customer] = customers_by_email(session, emails)
    by_store_id: Dict[str, Customer] = customers_by_store_id(session, (j.facts.store_id for j in joinings))
    claimed: Set[str] = set()  # emails and store ids ("id:" …) of the batch's rows so far
    held: List[int] = []  # indexes of new customers waiting to be inserted

    def write() -> None:
        if not held:
            return
        try:
            with session.begin_nested():
                written = _insert_joined(session, program, [joinings[index].facts for index in held], when)
        except (IdentityError, LedgerError, IntegrityError, DataError):
            for index in held:  # the bulk insert failed as a whole: find the culprit one by one
                outcomes[index] = one_by_one(index)
        else:
            for index in held:
                customer_id, points = written[emails[index]]
                outcomes[index] = JoinOutcome(customer_id=customer_id, created=True, signup_points=points)
        held.clear()

    def one_by_one(index: int) -> JoinOutcome:
        try:
            with session.begin_nested():
                joined = join(session, program, joinings[index], email_may_change=email_may_change, at=when,
                              store_id_label=store_id_label)
        except (IdentityError, LedgerError, IntegrityError, DataError) as error:
            return JoinOutcome(error=error)
        # What join changed is what later rows must see (an email it gave, a customer it made).
        customer = joined.customer
        if customer.email:
            by_email[customer.email] = customer
        if customer.external_id:
            by_store_id[customer.external_id] = customer
        return JoinOutcome.of(joined)

    for index, joining in enumerate(joinings):
        facts, email = joining.facts, emails[index]
        store_key = f"id:{facts.store_id}" if facts.store_id else None
        seen = email in claimed or (store_key is not None and store_key in claimed)
        claimed.add(email)
        if store_key is not None:
            claimed.add(store_key)
        existing = by_email.get(email)
        if not seen and joining.referral_code is None and "@" in email:
            if existing is None and (not facts.store_id or facts.store_id not in by_store_id):
                held.append(index)
                continue
            if existing is not None and found_unchanged(existing, facts):
                outcomes[index] = JoinOutcome(customer_id=existing.id)  # join would change nothing either
                continue
        write()
        outcomes[index] = one_by_one(index)
    write()
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def _insert_joined(session: Session, program: Program, facts: Sequence[CustomerFacts],
                   at: datetime) -> Dict[str, Tuple[int, int]]:
    """New customers and their signup bonuses (as signup_bonus posts each): email → (id, signup points)."""
    ids = insert_customers(session, facts, at)
    points = program.earning.signup
    if points <= 0:
        return {email: (customer_id, 0) for email, customer_id in ids.items()}
    credits = {email: credit_for(program, customer_id, "signup", None, at) for email, customer_id in ids.items()}
    keys = [credit.key for credit in credits.values()]
    taken: Set[str] = set()
    for start in range(0, len(keys), 500):  # a key left by a deleted customer's id: post_entry's replay rules
        taken.update(session.execute(select(LedgerEntry.idempotency_key).where(
            LedgerEntry.source == "signup", LedgerEntry.idempotency_key.in_(keys[start:start + 500]))).scalars())
    if taken:
        raise LedgerError("a signup bonus key of a new customer is taken")  # rare: join decides, one by one
    expires = points_expiry(program, at)
    insert_earnings(session, [Earning(ids[email], credit.points, credit.reason, credit.action, credit.key, at, expires)
                              for email, credit in credits.items()])
    return {email: (customer_id, credits[email].points) for email, customer_id in ids.items()}
