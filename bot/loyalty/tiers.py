"""VIP tiers by qualifying spend over the program's term.

A customer moves up as soon as their spend qualifies and keeps a tier until the end of its term
(`Customer.tier_held_until`); only then can they move down. Every move is a TierChange the bot announces:
a move up is also queued in the outbox (bot/outbox/, kind "tier_change"), and whichever tells it first —
the outbox's channel or the conversation — marks it announced.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from dateutil.relativedelta import relativedelta
from sqlalchemy import BigInteger, bindparam, func, select, type_coerce, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from bot.loyalty.program import Program, Tier
from bot.models import Customer, Order, OutboundMessage, TierChange
from bot.models.base import UTCDateTime
from bot.outbox.service import enqueue

# Orders whose money the store kept, in part or in full.
SPEND_STATUSES = ("paid", "partially_refunded")


@dataclass(frozen=True)
class TierStatus:
    tier: Tier
    next_tier: Optional[Tier]
    qualifying_spend: Decimal
    spend_to_next: Optional[Decimal]
    term_start: Optional[datetime]
    held_until: Optional[datetime] = None  # the tier is kept at least until then


def term_start(program: Program, now: datetime) -> Optional[datetime]:
    """First moment whose spend counts; None for a lifetime term."""
    if program.tier_term == "rolling_12_months":
        return now - relativedelta(months=12)
    if program.tier_term == "calendar_year":
        return datetime(now.year, 1, 1, tzinfo=timezone.utc)
    return None


def term_end(program: Program, reached_at: datetime) -> Optional[datetime]:
    """Until when a tier reached at `reached_at` is kept: 12 months on a rolling term, through the next
    calendar year on a calendar term (it was earned with this year's spend), forever on a lifetime term."""
    if program.tier_term == "rolling_12_months":
        return reached_at + relativedelta(months=12)
    if program.tier_term == "calendar_year":
        return datetime(reached_at.year + 2, 1, 1, tzinfo=timezone.utc)
    return None


def qualifying_spend(session: Session, customer_id: int, program: Program, now: datetime) -> Decimal:
    """What the customer paid and kept over the term that ends at `now`."""
    query = select(func.coalesce(func.sum(_KEPT_CENTS), 0)).where(Order.customer_id == customer_id,
                                                                   *_in_term(program, now))
    return Decimal(int(session.execute(query).scalar_one())) / 100


def qualifying_spends(session: Session, customer_ids: Sequence[int], program: Program,
                      now: datetime) -> Dict[int, Decimal]:
    """qualifying_spend of many customers in one query (0 for those without orders)."""
    spends = {customer_id: Decimal(0) for customer_id in customer_ids}
    rows = session.execute(
        select(Order.customer_id, func.sum(_KEPT_CENTS))
        .where(Order.customer_id.in_(list(spends)), *_in_term(program, now)).group_by(Order.customer_id)
    ).all()
    for customer_id, cents in rows:
        spends[customer_id] = Decimal(int(cents)) / 100
    return spends


# Summed as raw cents: exact on every backend.
_KEPT_CENTS = type_coerce(Order.total, BigInteger) - type_coerce(Order.refunded_total, BigInteger)


def _in_term(program: Program, now: datetime) -> list:
    conditions = [Order.status.in_(SPEND_STATUSES), Order.placed_at <= now]
    start = term_start(program, now)
    if start is not None:
        conditions.append(Order.placed_at >= start)
    return conditions


class SpendHistory:
    """Qualifying spend of a batch's customers at any moment, computed in memory: what qualifying_spend sums,
    from their orders loaded with one query, plus the orders the batch records meanwhile (`add`) — so a batch
    of orders does not query the spend once per order. A customer whose orders changed otherwise (a refund)
    is `forget`-ten and loaded again when next asked."""

    def __init__(self, session: Session, since: Optional[datetime] = None) -> None:
        self.session = session
        # Orders before this never count for the moments asked about (the term start of the earliest of
        # them): not loaded. None: all.
        self.since = since
        self._orders: Dict[int, List[Tuple[datetime, Decimal]]] = {}  # customer → (placed_at, kept)
        self._term_starts: Dict[datetime, Optional[datetime]] = {}

    def load(self, customer_ids: Iterable[int]) -> None:
        wanted = [customer_id for customer_id in set(customer_ids) if customer_id not in self._orders]
        for customer_id in wanted:
            self._orders[customer_id] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            conditions = [Order.customer_id.in_(wanted[start:start + _IN_CHUNK]), Order.status.in_(SPEND_STATUSES)]
            if self.since is not None:
                conditions.append(Order.placed_at >= self.since)
            rows = self.session.execute(
                select(Order.customer_id, Order.placed_at, Order.total, Order.refunded_total).where(*conditions)
            ).all()
            for customer_id, placed_at, total, refunded in rows:
                self._orders[customer_id].append((placed_at, total - refunded))

    def add(self, customer_id: int, placed_at: datetime, kept: Decimal) -> None:
        self.load([customer_id])
        self._orders[customer_id].append((placed_at, kept))

    def forget(self, customer_id: int) -> None:
        self._orders.pop(customer_id, None)

    def spend(self, program: Program, customer_id: int, now: datetime) -> Decimal:
        self.load([customer_id])
        if now not in self._term_starts:  # many orders share a moment (an export's dates)
            self._term_starts[now] = term_start(program, now)
        start = self._term_starts[now]
        assert self.since is None or (start is not None and start >= self.since), "asked before `since`"
        return sum((kept for placed_at, kept in self._orders[customer_id]
                    if placed_at <= now and (start is None or placed_at >= start)), Decimal(0))


_IN_CHUNK = 500  # ids in one IN (...) list


def tier_for_spend(program: Program, spend: Decimal) -> Tier:
    current = program.tiers[0]
    for tier in program.tiers:
        if spend >= tier.min_spend:
            current = tier
    return current


def next_tier(program: Program, tier: Tier) -> Optional[Tier]:
    index = program.tiers.index(tier)
    return program.tiers[index + 1] if index + 1 < len(program.tiers) else None


def _rank(program: Program, tier: Tier) -> int:
    return program.tiers.index(tier)


def held_tier(program: Program, customer: Customer, now: datetime) -> Optional[Tier]:
    """The tier the customer keeps regardless of spend: the recorded one while its term lasts."""
    tier = program.tier(customer.tier_name)
    if tier is None:
        return None
    if customer.tier_held_until is not None and customer.tier_held_until <= now:
        return None
    return tier


def tier_status(session: Session, customer_id: int, program: Program, now: datetime) -> TierStatus:
    spend = qualifying_spend(session, customer_id, program, now)
    customer = session.get(Customer, customer_id)
    held = held_tier(program, customer, now) if customer is not None else None
    reached = None
    if held is not None:
        reached = session.execute(
            select(func.max(TierChange.created_at)).where(
                TierChange.customer_id == customer_id, TierChange.to_tier == held.name)
        ).scalar()
    tier, held_until = tier_at(program, spend, customer, reached, now)
    upcoming = next_tier(program, tier)
    return TierStatus(
        tier=tier,
        next_tier=upcoming,
        qualifying_spend=spend,
        spend_to_next=max(upcoming.min_spend - spend, Decimal(0)) if upcoming else None,
        term_start=term_start(program, now),
        held_until=held_until,
    )


def tier_at(program: Program, spend: Decimal, customer: Optional[Customer], reached_held_tier_at: Optional[datetime],
            now: datetime) -> Tuple[Tier, Optional[datetime]]:
    """The tier held at `now` with `spend` qualifying, and until when it is held (None: earned by spend).
    `reached_held_tier_at`: when the customer last moved to their recorded tier (their latest TierChange to it)."""
    tier = tier_for_spend(program, spend)
    held = held_tier(program, customer, now) if customer is not None else None
    if held is not None and reached_held_tier_at is not None and reached_held_tier_at > now:
        held = None  # not reached yet at `now`: a past order recorded late or imported earns as it was then
    if held is not None and customer is not None and _rank(program, held) >= _rank(program, tier):
        return held, customer.tier_held_until
    return tier, None


def tiers_reached_at(session: Session, customer_ids: Sequence[int]) -> Dict[Tuple[int, str], datetime]:
    """(customer, tier) → when the customer last moved to that tier, for many customers in one query: what
    tier_status looks up per customer."""
    reached: Dict[Tuple[int, str], datetime] = {}
    ids = list(set(customer_ids))
    for start in range(0, len(ids), _IN_CHUNK):
        for customer_id, tier_name, at in session.execute(
            select(TierChange.customer_id, TierChange.to_tier, func.max(TierChange.created_at))
            .where(TierChange.customer_id.in_(ids[start:start + _IN_CHUNK]))
            .group_by(TierChange.customer_id, TierChange.to_tier)
        ).all():
            reached[(customer_id, tier_name)] = at
    return reached


# Entry rewards are posted through this hook (bot.loyalty.earning) so tiers need not import earning.
EntryRewardPoster = Callable[[Session, Program, int, Tier, datetime], None]


def recompute_tier(
    session: Session,
    program: Program,
    customer_id: int,
    now: datetime,
    reason: str,
    post_entry_reward: Optional[EntryRewardPoster] = None,
) -> Optional[TierChange]:
    """Bring the customer's recorded tier up to date; returns the change, if there was one.

    Up as soon as spend qualifies; down only once the held tier's term has ended, to the best of the
    tier earned by the term that just ended and the tier current spend earns.
    """
    customer = _locked_customer(session, customer_id)
    by_spend = tier_for_spend(program, qualifying_spend(session, customer_id, program, now))
    return _bring_up_to_date(session, program, customer, by_spend, now, reason, post_entry_reward)


@dataclass(frozen=True)
class TierRecompute:
    """What recompute_tiers did for one customer: the change (None: none), or the error that refused it."""

    customer_id: int
    change: Optional[TierChange] = None
    error: Optional[Exception] = None


def recompute_tiers(
    session: Session,
    program: Program,
    customer_ids: Sequence[int],
    now: datetime,
    reason: str,
    post_entry_reward: Optional[EntryRewardPoster] = None,
) -> List[TierRecompute]:
    """recompute_tier for many customers at once: their recorded tiers are read (locked) and their spend
    summed with one query each; a customer whose recorded tier stands, or who is evaluated for the first time
    to the lowest tier, costs no statement of their own (the latter are written with one UPDATE for all), and
    a move runs in its own savepoint, so an entry reward the ledger refuses (LedgerError) refuses only that
    customer's move."""
    from bot.loyalty.ledger import LedgerError

    ids = sorted(set(customer_ids))
    table = Customer.__table__
    recorded: Dict[int, Tuple[Optional[str], Optional[datetime]]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        # Columns, not Customer rows: loading thousands of objects cost more than the recompute itself.
        for customer_id, tier_name, held_until in session.execute(
            select(table.c.id, table.c.tier_name, table.c.tier_held_until)
            .where(table.c.id.in_(ids[start:start + _IN_CHUNK])).with_for_update(key_share=True)
        ).all():
            recorded[customer_id] = (tier_name, held_until)
    spends: Dict[int, Decimal] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        spends.update(qualifying_spends(session, ids[start:start + _IN_CHUNK], program, now))
    first_evaluations: List[Dict[str, object]] = []
    first_term_end = term_end(program, now)  # the same for every first evaluation
    results = []
    for customer_id in ids:
        if customer_id not in recorded:
            results.append(TierRecompute(customer_id, error=LedgerError(f"no customer with id {customer_id}")))
            continue
        tier_name, held_until = recorded[customer_id]
        by_spend = tier_for_spend(program, spends[customer_id])
        if _settles_without_a_move(program, tier_name, held_until, by_spend, now):
            if program.tier(tier_name) is None:  # what _bring_up_to_date sets on a first evaluation
                first_evaluations.append({"b_id": customer_id, "b_tier": by_spend.name, "b_until": first_term_end})
            results.append(TierRecompute(customer_id))
            continue
        customer = session.get(Customer, customer_id)
        assert customer is not None
        try:
            with session.begin_nested():
                change = _bring_up_to_date(session, program, customer, by_spend, now, reason, post_entry_reward)
        except LedgerError as error:
            results.append(TierRecompute(customer_id, error=error))
        else:
            results.append(TierRecompute(customer_id, change))
    if first_evaluations:
        session.connection().execute(
            update(table).where(table.c.id == bindparam("b_id"))
            .values(tier_name=bindparam("b_tier"), tier_held_until=bindparam("b_until", type_=UTCDateTime())),
            first_evaluations)
        for evaluation in first_evaluations:  # written in SQL: a loaded customer reloads them on next access
            customer = session.identity_map.get(identity_key(Customer, evaluation["b_id"]))
            if customer is not None:
                session.expire(customer, ["tier_name", "tier_held_until"])
    return results


def _settles_without_a_move(program: Program, tier_name: Optional[str], held_until: Optional[datetime],
                            by_spend: Tier, now: datetime) -> bool:
    """Whether _bring_up_to_date only sets attributes here (no statement, nothing that can fail): a first
    evaluation to the lowest tier, or a recorded tier that spend does not beat and whose term still runs."""
    recorded = program.tier(tier_name)
    if recorded is None:
        return _rank(program, by_spend) == 0
    return _rank(program, by_spend) <= _rank(program, recorded) and (held_until is None or held_until > now)


def _bring_up_to_date(session: Session, program: Program, customer: Customer, by_spend: Tier, now: datetime,
                      reason: str, post_entry_reward: Optional[EntryRewardPoster]) -> Optional[TierChange]:
    customer_id = customer.id
    recorded = program.tier(customer.tier_name)
    if recorded is None:
        # First evaluation (or the tier was renamed in the config): start from what spend earns.
        customer.tier_name = by_spend.name
        customer.tier_held_until = term_end(program, now)
        if _rank(program, by_spend) == 0:
            return None
        return _change(session, program, customer, None, by_spend, now, reason, post_entry_reward)

    if _rank(program, by_spend) > _rank(program, recorded):
        customer.tier_name = by_spend.name
        customer.tier_held_until = term_end(program, now)
        return _change(session, program, customer, recorded, by_spend, now, reason, post_entry_reward)

    held_until = customer.tier_held_until
    if held_until is None or held_until > now:
        return None
    # The term ended: keep what the ended term's spend earned, or what spend earns now if that is more.
    ended_term = tier_for_spend(
        program, qualifying_spend(session, customer_id, program, held_until - timedelta(microseconds=1))
    )
    kept = max(ended_term, by_spend, key=lambda tier: _rank(program, tier))
    kept = min(kept, recorded, key=lambda tier: _rank(program, tier))
    customer.tier_name = kept.name
    # The next term starts where the last one ended (so a late job run does not shift terms).
    next_end = held_until + relativedelta(years=1)
    while next_end <= now:
        next_end += relativedelta(years=1)
    customer.tier_held_until = next_end if _rank(program, kept) > 0 else term_end(program, now)
    if kept == recorded:
        return None
    return _change(session, program, customer, recorded, kept, now, "term ended", post_entry_reward)


def _locked_customer(session: Session, customer_id: int) -> Customer:
    # Row lock on PostgreSQL so two recomputations cannot both record the same move; SQLite's write
    # transactions are already serialised (BEGIN IMMEDIATE). FOR NO KEY UPDATE (key_share), like the
    # balance update itself: a plain FOR UPDATE also waits for the key-share lock another transaction's
    # new order row holds on the customer, and two orders of one customer at once would deadlock.
    customer = session.execute(
        select(Customer).where(Customer.id == customer_id).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if customer is None:
        from bot.loyalty.ledger import LedgerError

        raise LedgerError(f"no customer with id {customer_id}")
    return customer


def _change(
    session: Session,
    program: Program,
    customer: Customer,
    old: Optional[Tier],
    new: Tier,
    now: datetime,
    reason: str,
    post_entry_reward: Optional[EntryRewardPoster],
) -> TierChange:
    up = old is None or _rank(program, new) > _rank(program, old)
    change = TierChange(
        customer_id=customer.id,
        from_tier=old.name if old else None,
        to_tier=new.name,
        direction="up" if up else "down",
        reason=reason[:255],
        created_at=now,
    )
    session.add(change)
    session.flush()
    if up and post_entry_reward is not None and new.entry_reward_points:
        post_entry_reward(session, program, customer.id, new, now)
    if up:
        enqueue(session, customer.id, OUTBOX_KIND, tier_up_text(new), outbox_key(change.id), now,
                payload={"tier_change_id": change.id, "tier": new.name,
                         "buttons": [{"title": "My tier", "payload": "/check_tier"}]})
    return change


OUTBOX_KIND = "tier_change"


def outbox_key(change_id: int) -> str:
    return f"tier-change:{change_id}"


def tier_up_text(tier: Tier) -> str:
    bonus = f" and {tier.entry_reward_points:,} bonus points" if tier.entry_reward_points else ""
    return (f"Congratulations — you're {tier.name} now! You earn {tier.multiplier}× points{bonus}. "
            f"Ask me about your tier to see its perks.")


def unannounced_changes(session: Session, customer_id: int) -> List[TierChange]:
    return list(
        session.execute(
            select(TierChange)
            .where(TierChange.customer_id == customer_id, TierChange.announced_at.is_(None))
            .order_by(TierChange.id)
            # Two turns of one customer at once (PostgreSQL) must not both announce the same change.
            .with_for_update()
        ).scalars()
    )


def mark_announced(session: Session, changes: List[TierChange], now: datetime) -> None:
    """Told in the conversation: the outbox's message about them, if not sent yet, is not sent."""
    for change in changes:
        change.announced_at = now
    if changes:
        for message in session.execute(select(OutboundMessage).where(
                OutboundMessage.dedupe_key.in_([outbox_key(change.id) for change in changes]),
                OutboundMessage.status.in_(("queued", "waiting_for_window")))).scalars():
            message.status, message.reason, message.updated_at = "skipped", "told in the conversation", now


def customers_due_for_review(session: Session, now: datetime, batch_size: int = 1000) -> Iterator[List[int]]:
    """Ids of customers whose held tier's term has ended, in batches (for the scheduled job)."""
    last_id = 0
    while True:
        ids = list(
            session.execute(
                select(Customer.id)
                .where(Customer.tier_held_until <= now, Customer.id > last_id)
                .order_by(Customer.id)
                .limit(batch_size)
            ).scalars()
        )
        if not ids:
            return
        yield ids
        last_id = ids[-1]
