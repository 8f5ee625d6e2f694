"""Points expiry: after N months without earning or redeeming, the balance expires (as a ledger
entry); shoppers are warned `warn_days` before, through a queued outbound message."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Optional

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.loyalty.ledger import LedgerError, post_entry
from bot.loyalty.program import Program
from bot.models import Customer, OutboundMessage

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
    """Expire every inactive balance and queue warnings, one short transaction per batch.

    Safe to run at any time and any number of times: an expiry is keyed by the activity it ends,
    a warning by the expiry it announces.
    """
    cutoff = now - relativedelta(months=program.expiry_inactive_months)
    warn_cutoff = cutoff + timedelta(days=program.expiry_warn_days)
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
                if customer.last_activity_at <= cutoff:
                    points = _expire(session, program, customer)
                    if points:
                        report = replace(report, expired_customers=report.expired_customers + 1,
                                         expired_points=report.expired_points + points)
                elif _queue_warning(session, program, customer, now):
                    report = replace(report, warnings_queued=report.warnings_queued + 1)
            report = replace(report, customers_checked=report.customers_checked + len(customers))
            last_id = customers[-1].id
        if progress is not None:
            progress(report)


def _expire(session: Session, program: Program, customer: Customer) -> int:
    points = customer.points_balance
    activity = customer.last_activity_at
    try:
        posted = post_entry(
            session,
            customer.id,
            -points,
            kind="expire",
            reason=f"Points expired after {program.expiry_inactive_months} months without activity",
            source="expiry",
            idempotency_key=f"expiry:{customer.id}:{activity.isoformat()}",
            at=expires_on(program, activity),
        )
    except LedgerError:
        # The balance moved since it was read (a concurrent redemption); the next run sees the new state.
        return 0
    return points if posted.created else 0


def _queue_warning(session: Session, program: Program, customer: Customer, now: datetime) -> bool:
    when = expires_on(program, customer.last_activity_at)
    message = OutboundMessage(
        customer_id=customer.id,
        kind=WARNING_KIND,
        text=warning_text(program, customer.points_balance, when),
        payload={"points": customer.points_balance, "expires_at": when.isoformat()},
        dedupe_key=f"{WARNING_KIND}:{customer.id}:{when.isoformat()}",
        status="queued",
        created_at=now,
        send_after=now,
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:
        return False  # already queued for this expiry
    return True

