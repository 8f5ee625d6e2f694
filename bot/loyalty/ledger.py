"""The points ledger: every change is an appended entry; the balance moves with it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from bot import clock
from bot.models import Customer, LedgerEntry
from bot.models.base import UTCDateTime

ENTRY_KINDS = ("earn", "redeem", "expire", "reverse", "adjust")
# Earning or spending keeps points alive (expiry counts from the last of these).
ACTIVITY_KINDS = ("earn", "redeem")


class LedgerError(ValueError):
    """A ledger write that must not happen (unknown customer, bad amount, overdraft)."""


class NotFound(LedgerError):
    """The customer, order or reward a change refers to does not exist."""


class Conflict(LedgerError):
    """An id or idempotency key already used for a different change."""


class Overdraft(LedgerError):
    """The balance does not cover the points taken."""


@dataclass(frozen=True)
class PostedEntry:
    entry: LedgerEntry
    created: bool  # False when (source, key) had already been applied


def post_entry(
    session: Session,
    customer_id: int,
    points: int,
    *,
    kind: str,
    reason: str,
    source: str,
    idempotency_key: str,
    source_ref: Optional[str] = None,
    expires_at: Optional[datetime] = None,
    allow_negative_balance: bool = False,
    at: Optional[datetime] = None,
) -> PostedEntry:
    """Append one entry and move the customer's balance by the same amount, once per (source, key).

    `at` dates the entry (imports of past activity); it defaults to now.
    """
    if kind not in ENTRY_KINDS:
        raise LedgerError(f"unknown ledger entry kind {kind!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise LedgerError(f"points must be a non-zero whole number, not {points!r}")
    existing = find_entry(session, source, idempotency_key)
    if existing is not None:
        return _replayed(existing, customer_id, points, kind)
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer with id {customer_id}")

    created_at = at or clock.now()
    entry = LedgerEntry(
        customer_id=customer_id,
        kind=kind,
        points=points,
        reason=reason[:255],
        source=source,
        source_ref=source_ref,
        idempotency_key=idempotency_key,
        created_at=created_at,
        expires_at=expires_at,
    )
    balance_update = update(Customer).where(Customer.id == customer_id)
    if points < 0 and not allow_negative_balance:
        balance_update = balance_update.where(Customer.points_balance + points >= 0)
    changes = {Customer.points_balance: Customer.points_balance + points}
    if kind in ACTIVITY_KINDS:
        when = bindparam("activity_at", created_at, type_=UTCDateTime())
        changes[Customer.last_activity_at] = case(
            (or_(Customer.last_activity_at.is_(None), Customer.last_activity_at < when), when),
            else_=Customer.last_activity_at,
        )
    balance_update = balance_update.values(changes)
    try:
        # Entry and balance move together or not at all (a failed overdraft leaves no entry).
        with session.begin_nested():
            session.add(entry)
            session.flush()
            result = session.execute(balance_update.execution_options(synchronize_session=False))
            if result.rowcount != 1:
                raise Overdraft(f"customer {customer_id} does not have {-points} points")
    except IntegrityError:
        # Another transaction applied the same (source, key) first.
        winner = find_entry(session, source, idempotency_key)
        if winner is None:
            raise
        return _replayed(winner, customer_id, points, kind)
    session.expire(customer, ["points_balance", "last_activity_at"])  # moved in SQL; reload on next access
    return PostedEntry(entry, created=True)


@dataclass(frozen=True)
class Earning:
    """One earn entry a bulk writer worked out itself, its key known to be free (see insert_earnings)."""

    customer_id: int
    points: int
    reason: str
    source: str
    idempotency_key: str
    created_at: datetime
    expires_at: Optional[datetime] = None
    source_ref: Optional[str] = None


def insert_earnings(session: Session, earnings: Sequence[Earning]) -> None:
    """What post_entry does for each earning, with one INSERT for all entries and one UPDATE for all balances
    (move_balances): for bulk writers (an import's orders and joins) that checked the keys are unused. A key
    taken meanwhile fails the whole statement (IntegrityError): the caller falls back to post_entry one by one."""
    if not earnings:
        return
    for earning in earnings:
        if isinstance(earning.points, bool) or not isinstance(earning.points, int) or earning.points <= 0:
            raise LedgerError(f"earned points must be a positive whole number, not {earning.points!r}")
    session.connection().execute(insert(LedgerEntry.__table__), [{
        "customer_id": earning.customer_id, "kind": "earn", "points": earning.points, "reason": earning.reason[:255],
        "source": earning.source, "source_ref": earning.source_ref, "idempotency_key": earning.idempotency_key,
        "created_at": earning.created_at, "expires_at": earning.expires_at,
    } for earning in earnings])
    move_balances(session, [(earning.customer_id, earning.points, earning.created_at) for earning in earnings])


def move_balances(session: Session, earned: Sequence[Tuple[int, int, datetime]]) -> None:
    """Move balances for earn entries the caller inserted itself, many at a time: (customer, points, the
    entry's date) each. Each customer's balance moves by the sum of their points and their last activity
    becomes the latest of those dates if later — what post_entry does entry by entry — in one statement for
    all customers (bot/loyalty/orders.py PaidOrderBatch)."""
    moves: Dict[int, List[Any]] = {}
    for customer_id, points, at in earned:
        if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
            raise LedgerError(f"earned points must be a positive whole number, not {points!r}")
        move = moves.setdefault(customer_id, [0, at])
        move[0] += points
        move[1] = max(move[1], at)
    if not moves:
        return
    table = Customer.__table__
    when = bindparam("b_at", type_=UTCDateTime())
    statement = update(table).where(table.c.id == bindparam("b_id")).values(
        points_balance=table.c.points_balance + bindparam("b_points"),
        last_activity_at=case((or_(table.c.last_activity_at.is_(None), table.c.last_activity_at < when), when),
                              else_=table.c.last_activity_at),
    )
    session.connection().execute(statement, [{"b_id": customer_id, "b_points": points, "b_at": at}
                                              for customer_id, (points, at) in moves.items()])
    for customer_id in moves:  # moved in SQL; loaded customers reload on next access
        customer = session.identity_map.get(identity_key(Customer, customer_id))
        if customer is not None:
            session.expire(customer, ["points_balance", "last_activity_at"])


def _replayed(existing: LedgerEntry, customer_id: int, points: int, kind: str) -> PostedEntry:
    """A replay must be the same change; the same key for a different one is a caller's bug."""
    if (existing.customer_id, existing.points, existing.kind) != (customer_id, points, kind):
        raise Conflict(
            f"{existing.source} key {existing.idempotency_key!r} was already used for {existing.points} points "
            f"({existing.kind}) for customer {existing.customer_id}"
        )
    return PostedEntry(existing, created=False)


def find_entry(session: Session, source: str, key: str) -> Optional[LedgerEntry]:
    """The entry an award with this (source, idempotency key) made, if it was made."""
    return session.execute(
        select(LedgerEntry).where(LedgerEntry.source == source, LedgerEntry.idempotency_key == key)
    ).scalar_one_or_none()


def balance(session: Session, customer_id: int) -> int:
    value = session.execute(select(Customer.points_balance).where(Customer.id == customer_id)).scalar_one_or_none()
    if value is None:
        raise NotFound(f"no customer with id {customer_id}")
    return int(value)


@dataclass(frozen=True)
class BalanceMismatch:
    customer_id: int
    balance: int
    ledger_sum: int


def verify_balances(session: Session) -> List[BalanceMismatch]:
    """Every customer whose stored balance differs from the sum of their ledger entries."""
    sums = (
        select(LedgerEntry.customer_id, func.sum(LedgerEntry.points).label("total"))
        .group_by(LedgerEntry.customer_id)
        .subquery()
    )
    rows = session.execute(
        select(Customer.id, Customer.points_balance, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.customer_id == Customer.id)
        .where(Customer.points_balance != func.coalesce(sums.c.total, 0))
        .order_by(Customer.id)
    ).all()
    return [BalanceMismatch(int(cid), int(bal), int(total)) for cid, bal, total in rows]


def recent_entries(session: Session, customer_id: int, limit: int = 10) -> List[LedgerEntry]:
    """The customer's latest ledger entries, newest first."""
    return list(
        session.execute(
            select(LedgerEntry)
            .where(LedgerEntry.customer_id == customer_id)
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
            .limit(limit)
        ).scalars()
    )
