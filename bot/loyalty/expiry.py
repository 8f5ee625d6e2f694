"""Points expiry: after N months without earning or redeeming, the balance expires (as a ledger
entry); shoppers are warned `warn_days` before, through the outbox (bot/outbox/)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Optional

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.loyalty.ledger import Overdraft, post_entry
from bot.loyalty.program import Program
from bot.models import Customer, LedgerEntry, OutboundMessage
from bot.outbox.service import enqueue

if TYPE_CHECKING:
    from bot.db import Database

WARNING_KIND = "points_expiry_warning"


@dataclass(frozen=True)
class ExpiryReport:
    expired_customers: int = 0
    expired_points: int = 0
    warnings_queued: int = 0
    customers_checked: int = 0


def expires_on(program: Program, last_activity_at: datetime) -> datetime:
    return last_activity_at + relativedelta(months=program.expiry_inactive_months)


def expiring_soon(program: Program, customer: Customer, now: datetime) -> Optional[datetime]:
    """When the customer's points expire, if that is within the warning window."""
    if customer.points_balance <= 0 or customer.last_activity_at is None:
        return None
    when = expires_on(program, customer.last_activity_at)
    return when if now < when <= now + timedelta(days=program.expiry_warn_days) else None


def warning_text(program: Program, points: int, when: datetime) -> str:
    """The outbound message the channels send; it is stored ready to send."""
    return (
        f"Heads up: your {points:,} points expire on {when:%B} {when.day}, {when.year}. "
        f"Earn or redeem anything before then to keep them — say \"redeem\" to see what they can get you."
    )


def expire_points(
    database: "Database",
    program: Program,
    now: datetime,
    *,
    batch_size: int = 500,
    progress: Optional[Callable[[ExpiryReport], None]] = None,
) -> ExpiryReport:
    """Queue warnings and expire inactive balances, one short transaction per batch.

    Points never expire unannounced: each expiry is announced by a warning first, and happens at the
    date that warning gave — the regular date when the warning went out in time, otherwise `warn_days`
    after it (the job was off, or the store has just been migrated). Safe to run at any time and any
    number of times: a warning is keyed by the inactivity it announces, an expiry by the ledger it ends.
    """
    warn_cutoff = now - relativedelta(months=program.expiry_inactive_months) + timedelta(days=program.expiry_warn_days)
    report = ExpiryReport()
    last_id = 0
    while True:
        with database.session(write=True) as session:
            customers = list(
                session.execute(
                    select(Customer)
                    .where(Customer.id > last_id, Customer.points_balance > 0, Customer.last_activity_at <= warn_cutoff)
                    .order_by(Customer.id)
                    .limit(batch_size)
                    # PostgreSQL: hold the batch's rows so a concurrent earn cannot slip in between
                    # reading a balance and expiring it (SQLite write transactions are exclusive).
                    .with_for_update()
                ).scalars()
            )
            if not customers:
                return report
            for customer in customers:
                warning = _warning_for(session, program, customer)
                if warning is None:
                    _queue_warning(session, program, customer, now)
                    report = replace(report, warnings_queued=report.warnings_queued + 1)
                    continue
                deadline = datetime.fromisoformat(warning.payload["expires_at"])
                if deadline <= now:
                    points = _expire(session, program, customer, deadline)
                    if points:
                        report = replace(report, expired_customers=report.expired_customers + 1,
                                         expired_points=report.expired_points + points)
            report = replace(report, customers_checked=report.customers_checked + len(customers))
            last_id = customers[-1].id
        if progress is not None:
            progress(report)


def _dedupe_key(program: Program, customer: Customer) -> str:
    return f"{WARNING_KIND}:{customer.id}:{expires_on(program, customer.last_activity_at).isoformat()}"


def _warning_for(session: Session, program: Program, customer: Customer) -> Optional[OutboundMessage]:
    return session.execute(
        select(OutboundMessage).where(OutboundMessage.dedupe_key == _dedupe_key(program, customer))
    ).scalar_one_or_none()


def _expire(session: Session, program: Program, customer: Customer, deadline: datetime) -> int:
    points = customer.points_balance
    latest_entry = session.execute(
        select(func.max(LedgerEntry.id)).where(LedgerEntry.customer_id == customer.id)
    ).scalar_one()
    try:
        posted = post_entry(
            session,
            customer.id,
            -points,
            kind="expire",
            reason=f"Points expired after {program.expiry_inactive_months} months without activity",
            source="expiry",
            # The ledger state it ends: points added later (a late order) expire in a later run.
            idempotency_key=f"expiry:{customer.id}:{latest_entry}",
            at=deadline,
        )
    except Overdraft:
        # The balance moved since it was read (a concurrent redemption); the next run sees the new state.
        return 0
    return points if posted.created else 0


def _queue_warning(session: Session, program: Program, customer: Customer, now: datetime) -> None:
    # Announced in time: the regular date. Announced late: warn_days from now, never in the past.
    regular = expires_on(program, customer.last_activity_at)
    when = regular if regular > now else now + timedelta(days=program.expiry_warn_days)
    # In the outbox (bot/outbox/): worth sending until the points expire.
    enqueue(session, customer.id, WARNING_KIND, warning_text(program, customer.points_balance, when),
            _dedupe_key(program, customer), now,
            payload={"points": customer.points_balance, "expires_at": when.isoformat()}, expires_at=when)


@dataclass(frozen=True)
class ExpiryOutlook:
    """When a customer's points expire, from their ledger: the last entry that keeps points alive (an earn
    or a redemption), the program's inactivity rule, and a warning already sent (its date is the one kept)."""

    balance: int
    last_activity_at: Optional[datetime]
    last_activity_reason: Optional[str]
    expires_at: Optional[datetime]  # None when there is nothing to expire
    warn_days: int
    last_expired_points: int = 0  # the latest expiry in the ledger, if any
    last_expired_at: Optional[datetime] = None

    def expires_soon(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now + timedelta(days=self.warn_days)


def expiry_outlook(session: Session, program: Program, customer_id: int, now: datetime) -> ExpiryOutlook:
    from bot.loyalty.ledger import ACTIVITY_KINDS

    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"no customer with id {customer_id}")
    last = session.execute(
        select(LedgerEntry.created_at, LedgerEntry.reason)
        .where(LedgerEntry.customer_id == customer_id, LedgerEntry.kind.in_(ACTIVITY_KINDS))
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(1)
    ).first()
    expired = session.execute(
        select(LedgerEntry.points, LedgerEntry.created_at)
        .where(LedgerEntry.customer_id == customer_id, LedgerEntry.kind == "expire")
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(1)
    ).first()
    points = int(customer.points_balance or 0)
    last_at, reason = (last[0], last[1]) if last else (None, None)
    when: Optional[datetime] = None
    if points > 0 and last_at is not None:
        when = expires_on(program, last_at)
        warning = session.execute(
            select(OutboundMessage.payload).where(
                OutboundMessage.dedupe_key == f"{WARNING_KIND}:{customer_id}:{when.isoformat()}")
        ).scalar_one_or_none()
        if warning and warning.get("expires_at"):
            # Announced late: the expiry job keeps the date the warning gave, so that is the date.
            when = datetime.fromisoformat(warning["expires_at"])
        elif when <= now:
            # Past the regular date but not yet announced: the job announces it first, warn_days ahead.
            when = now + timedelta(days=program.expiry_warn_days)
    return ExpiryOutlook(
        balance=points, last_activity_at=last_at, last_activity_reason=reason, expires_at=when,
        warn_days=program.expiry_warn_days,
        last_expired_points=-int(expired[0]) if expired else 0,
        last_expired_at=expired[1] if expired else None,
    )
