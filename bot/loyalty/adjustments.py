"""A merchant's points adjustment: a credit or debit with a required reason, through the ledger (kind
"adjust", source "console"), logged in the audit log in the same transaction. The console form carries a
random key: a double-submitted form finds the first entry under that key and adjusts once. A debit below
zero is refused unless the program allows negative balances (refunds.allow_negative_balance)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.audit import record
from bot.loyalty.ledger import Conflict, Overdraft, post_entry
from bot.loyalty.program import Program
from bot.models import Customer, LedgerEntry, Merchant

SOURCE = "console"
MAX_POINTS = 1_000_000
MAX_REASON_CHARS = 200
MIN_KEY_CHARS, MAX_KEY_CHARS = 16, 64


class AdjustmentRefused(ValueError):
    """The adjustment was not made (the message says why, for the merchant)."""


@dataclass(frozen=True)
class Adjustment:
    entry: LedgerEntry
    created: bool  # False: this form was submitted before, nothing changed now
    balance: int


def adjust_points(session: Session, program: Program, customer_id: int, points: int, reason: str,
                  merchant: Merchant, form_key: str, now: datetime) -> Adjustment:
    reason = " ".join((reason or "").split())
    if not reason:
        raise AdjustmentRefused("Give a reason: it is shown in the customer's points history and the audit log.")
    if len(reason) > MAX_REASON_CHARS:
        raise AdjustmentRefused(f"A reason has at most {MAX_REASON_CHARS} characters.")
    if isinstance(points, bool) or not isinstance(points, int) or points == 0 or abs(points) > MAX_POINTS:
        raise AdjustmentRefused(f"Points must be a whole number other than 0, at most {MAX_POINTS:,} either way.")
    if not (MIN_KEY_CHARS <= len(form_key or "") <= MAX_KEY_CHARS and form_key.isascii() and form_key.isprintable()):
        raise AdjustmentRefused("The form is out of date: reload the page and try again.")
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise AdjustmentRefused("There is no such customer.")
    try:
        posted = post_entry(session, customer_id, points, kind="adjust", reason=f"{reason} (by {merchant.name})",
                            source=SOURCE, idempotency_key=form_key, source_ref=f"merchant:{merchant.id}",
                            allow_negative_balance=program.refunds_allow_negative_balance, at=now)
    except Overdraft:
        raise AdjustmentRefused(
            f"Refused: the balance is {customer.points_balance:,} points, so taking {-points:,} would leave it "
            f"below zero, and the program does not allow negative balances.") from None
    except Conflict:
        raise AdjustmentRefused("This form was already used for another adjustment: reload the page.") from None
    session.refresh(customer)
    if posted.created:
        record(session, merchant, "points_adjusted", f"customer {customer_id}",
               f"{points:+,} points: {reason} (balance after: {customer.points_balance:,})", now)
    return Adjustment(posted.entry, posted.created, customer.points_balance)
