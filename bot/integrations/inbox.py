"""The durable inbox of store webhook deliveries: a delivery is written here, keyed by its delivery id, in the
transaction that acknowledges it (a retried delivery finds its row and is not written twice), and applied
later by a worker: each event in its own transaction, retried with backoff when applying fails, and kept as
`failed` with its error after the last try, for the merchant to see and retry.

Which code applies which topic is the caller's (`Topics`): bot/integrations/shopify.py for Shopify.
"""
from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, ContextManager, Dict, List, Optional, Sequence, Set, Tuple

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db import Database
from bot.log import get_logger
from bot.models import StoreEvent

log = get_logger(__name__)

# After the nth failed try the event waits BACKOFF[n - 1]; after the last try it is `failed`. Shopify itself
# retries for 4 hours; this keeps trying for about 8 before asking the merchant.
BACKOFF = (timedelta(seconds=10), timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10),
           timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2), timedelta(hours=4))
MAX_ATTEMPTS = len(BACKOFF) + 1
# How long a worker may take over one event before another may claim it (a worker that died).
CLAIM = timedelta(minutes=2)
# Applied and ignored deliveries (their ids are the dedupe) are kept this long; Shopify retries for 4 hours
# and asks that ids be remembered for at least 7 days.
KEEP_DONE = timedelta(days=30)
KEEP_FAILED = timedelta(days=90)
MAX_ERROR_CHARS = 2000
STATES_SHOWN = ("pending", "failed", "applied", "ignored")  # the console's filter, in its order


class WaitingFor(Exception):
    """The event cannot apply yet: it needs another one first (a refund whose order has not arrived). It is
    tried again when that resource arrives, or on the usual backoff."""

    def __init__(self, resource: str, message: str) -> None:
        self.resource = resource
        super().__init__(message)


if TYPE_CHECKING:  # only for the annotation
    from bot.order_events import OrderStateResult


@dataclass(frozen=True)
class Outcome:
    """What applying an event did, in a few words; `ignored` when it changed nothing on purpose."""

    summary: str
    ignored: bool = False

    @classmethod
    def of_order(cls, name: str, result: "OrderStateResult", fulfilled_word: str = "fulfilled") -> "Outcome":
        """What an order's new state did: "order 1042: paid (295 points), fulfilled" or "nothing new"."""
        done = []
        if result.paid.created:
            done.append(f"paid ({result.paid.points_awarded} points)")
        if result.refunds:
            done.append(f"{len(result.refunds)} refund(s)")
        if result.cancellation is not None:
            done.append("cancelled")
        if result.fulfilled is not None and result.fulfilled.created:
            done.append(fulfilled_word)
        return cls(f"order {name}: " + (", ".join(done) if done else "nothing new"), ignored=not done)


# An event's handler: applies it in the event's own transaction (the session) — or, for work that runs its own
# transactions (an erasure), `own_transaction` handlers get no session and the event is marked afterwards.
SessionHandler = Callable[[Session, StoreEvent], Outcome]
OwnHandler = Callable[[StoreEvent], Outcome]


@dataclass(frozen=True)
class Topic:
    apply: Callable[..., Outcome]
    own_transaction: bool = False


Topics = Callable[[str, str], Optional[Topic]]  # (source, topic) → its handler, None when unknown


@dataclass(frozen=True)
class Accepted:
    event_id: int
    duplicate: bool  # the delivery key was known: nothing was written


def delivery_key_of(event_id: Optional[str], body: bytes) -> str:
    """The store's event id; without one, the body's digest (a retry sends the same bytes)."""
    key = (event_id or "").strip()
    return key[:255] if key else "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Delivery:
    source: str
    shop: str
    delivery_key: str
    topic: str
    body: bytes


def accept_deliveries(session: Session, deliveries: Sequence[Delivery], now: datetime) -> List[Accepted]:
    """Write verified deliveries to the inbox in the caller's one transaction (one commit for a burst), once per
    delivery key: a key already stored, or met earlier in the same burst, writes nothing and is a duplicate.

    A few statements for the whole burst (a lookup, one multi-row insert, a lookup of the new ids), not a
    lookup, a savepoint and an ORM flush per delivery: the intake writes one burst at a time, so its cost per
    delivery bounds how many deliveries a second one web app can acknowledge."""
    if not deliveries:
        return []
    known = _ids_of(session, deliveries)
    fresh: Dict[Tuple[str, str, str], Delivery] = {}
    for item in deliveries:
        key = (item.source, item.shop, item.delivery_key)
        if key not in known:
            fresh.setdefault(key, item)
    written = set()
    if fresh:
        rows = [dict(source=item.source, shop=item.shop, delivery_key=item.delivery_key, topic=item.topic[:100],
                     payload=item.body.decode("utf-8", errors="replace"), received_at=now, state="pending",
                     attempts=0, next_attempt_at=now)
                for item in fresh.values()]
        try:
            with session.begin_nested():
                session.execute(insert(StoreEvent.__table__), rows)
            written = set(fresh)
        except IntegrityError:
            # Another web app replica wrote one of them meanwhile (PostgreSQL; on SQLite this transaction holds
            # the write lock): one by one, each either ours or theirs.
            for key, row in zip(fresh, rows):
                try:
                    with session.begin_nested():
                        session.execute(insert(StoreEvent.__table__), row)
                    written.add(key)
                except IntegrityError:
                    pass
        known.update(_ids_of(session, list(fresh.values())))
    results = []
    for item in deliveries:
        key = (item.source, item.shop, item.delivery_key)
        results.append(Accepted(known[key], duplicate=key not in written))
        written.discard(key)  # the same key again later in the burst is a duplicate of this one
    return results


def _ids_of(session: Session, deliveries: Sequence[Delivery]) -> Dict[Tuple[str, str, str], int]:
    """The stored ids of these deliveries' keys, by (source, shop, delivery key); unknown keys are absent."""
    found: Dict[Tuple[str, str, str], int] = {}
    by_shop: Dict[Tuple[str, str], set] = {}
    for item in deliveries:
        by_shop.setdefault((item.source, item.shop), set()).add(item.delivery_key)
    for (source, shop), keys in by_shop.items():
        rows = session.execute(select(StoreEvent.id, StoreEvent.delivery_key).where(
            StoreEvent.source == source, StoreEvent.shop == shop, StoreEvent.delivery_key.in_(sorted(keys))))
        for event_id, delivery_key in rows:
            found[(source, shop, delivery_key)] = event_id
    return found


# --- applying ----------------------------------------------------------------------------------------


@dataclass
class Applied:
    """One worker run's counts."""

    claimed: int = 0
    applied: int = 0
    ignored: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> Dict[str, int]:
        return {name: int(value) for name, value in vars(self).items()}


def apply_due(database: Database, topics: Topics, now: Callable[[], datetime], *, limit: int = 50,
              turn: Callable[[], ContextManager[object]] = nullcontext,
              unfinished: Optional[Set[int]] = None) -> Applied:
    """Claim the events that are due (oldest first) and apply each in its own transaction. Each write (the
    claim, each event) happens inside `turn()`: the web app passes its writers' turns, so that on SQLite (one
    writer at a time) acknowledgements waiting to be written go before the next event.

    A worker that calls this again and again passes the same `unfinished` set: when the database goes away in
    the middle of a batch (an event can then not even be marked failed), the events it claimed and did not
    finish are kept there and released at its next call, instead of waiting for their claim to lapse."""
    counts = Applied()
    if unfinished:
        with turn():
            _release(database, unfinished)
        unfinished.clear()
    with turn():
        claimed = _claim(database, now(), limit)
    for index, event_id in enumerate(claimed):
        counts.claimed += 1
        try:
            with turn():
                state = apply_event(database, topics, event_id, now)
        except Exception:
            if unfinished is not None:
                unfinished.update(claimed[index:])
            raise
        setattr(counts, state, getattr(counts, state) + 1)
    return counts


def _release(database: Database, event_ids: Set[int]) -> None:
    with database.session(write=True) as session:
        session.execute(update(StoreEvent).where(StoreEvent.id.in_(sorted(event_ids)), StoreEvent.state == "pending")
                        .values(claimed_until=None).execution_options(synchronize_session=False))


def _claim(database: Database, now: datetime, limit: int) -> List[int]:
    with database.session(write=True) as session:
        query = (select(StoreEvent.id)
                 .where(StoreEvent.state == "pending", StoreEvent.next_attempt_at <= now,
                        or_(StoreEvent.claimed_until.is_(None), StoreEvent.claimed_until < now))
                 .order_by(StoreEvent.received_at, StoreEvent.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # several web app replicas share the inbox
        ids = list(session.execute(query).scalars())
        if ids:
            session.execute(update(StoreEvent).where(StoreEvent.id.in_(ids))
                            .values(claimed_until=now + CLAIM).execution_options(synchronize_session=False))
        return ids


def apply_event(database: Database, topics: Topics, event_id: int, now: Callable[[], datetime]) -> str:
    """Apply one event; its state afterwards as a count's name: applied, ignored, retrying or failed."""
    try:
        with database.session(write=True) as session:
            event = session.get(StoreEvent, event_id)
            if event is None or event.state != "pending":
                return "ignored"
            topic = topics(event.source, event.topic)
            if topic is None:
                outcome = Outcome(f"topic {event.topic} is not one this app handles", ignored=True)
            elif topic.own_transaction:
                outcome = None
            else:
                outcome = topic.apply(session, event)
            if outcome is not None:
                return _done(event, outcome, now())
        assert topic is not None
        # Work that runs its own transactions: done outside the event's, then the event is marked.
        with database.session() as session:
            detached = session.get(StoreEvent, event_id)
        outcome = topic.apply(detached)
        with database.session(write=True) as session:
            event = session.get(StoreEvent, event_id)
            if event is None:  # the work erased the inbox itself (a shop's data)
                return "ignored" if outcome.ignored else "applied"
            return _done(event, outcome, now())
    except WaitingFor as waiting:
        return _failed(database, event_id, waiting, now(), resource=waiting.resource)
    except Exception as error:  # noqa: BLE001 - recorded on the event, retried with backoff
        return _failed(database, event_id, error, now())


def _done(event: StoreEvent, outcome: Outcome, now: datetime) -> str:
    event.state = "ignored" if outcome.ignored else "applied"
    event.outcome = outcome.summary[:255]
    event.attempts += 1
    event.applied_at = now
    event.claimed_until = None
    event.next_attempt_at = None
    event.last_error = None
    log.info("store_event.applied", source=event.source, shop=event.shop, topic=event.topic, event_id=event.id,
             state=event.state, outcome=event.outcome)
    return event.state


def _failed(database: Database, event_id: int, error: Exception, now: datetime, *,
            resource: Optional[str] = None) -> str:
    message = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
    with database.session(write=True) as session:
        event = session.get(StoreEvent, event_id)
        if event is None:
            return "failed"
        event.attempts += 1
        event.last_error = message
        event.claimed_until = None
        if resource is not None:
            event.resource = resource
        if event.attempts >= MAX_ATTEMPTS:
            event.state = "failed"
            event.next_attempt_at = None
        else:
            event.next_attempt_at = now + BACKOFF[event.attempts - 1]
        fields = dict(source=event.source, shop=event.shop, topic=event.topic, event_id=event.id,
                      attempts=event.attempts, error=message)
    if isinstance(error, WaitingFor):
        log.info("store_event.waiting", **fields)
    elif event.state == "failed":
        log.error("store_event.failed", **fields)
    else:
        log.warning("store_event.retrying", **fields)
    return "failed" if event.state == "failed" else "retrying"


def wake_waiting(session: Session, source: str, shop: str, resource: str, now: datetime) -> int:
    """Make the events waiting for `resource` due now (it has just arrived); how many."""
    return int(session.execute(
        update(StoreEvent)
        .where(StoreEvent.source == source, StoreEvent.shop == shop, StoreEvent.resource == resource,
               StoreEvent.state == "pending", StoreEvent.next_attempt_at > now)
        .values(next_attempt_at=now).execution_options(synchronize_session=False)
    ).rowcount or 0)


def newer_applied(session: Session, event: StoreEvent) -> bool:
    """Whether an event about the same resource, reported newer than this one, was applied already."""
    if event.resource is None or event.resource_updated_at is None:
        return False
    return session.execute(select(func.count()).select_from(StoreEvent).where(
        StoreEvent.source == event.source, StoreEvent.shop == event.shop, StoreEvent.resource == event.resource,
        StoreEvent.state == "applied", StoreEvent.id != event.id,
        StoreEvent.resource_updated_at > event.resource_updated_at)).scalar_one() > 0


# --- the merchant's side -----------------------------------------------------------------------------


def retry_event(session: Session, event_id: int, now: datetime) -> bool:
    """Try a failed event again now, from its first try; False when it is not failed."""
    return session.execute(
        update(StoreEvent).where(StoreEvent.id == event_id, StoreEvent.state == "failed")
        .values(state="pending", attempts=0, next_attempt_at=now, claimed_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def recent_events(session: Session, *, source: Optional[str] = None, states: Sequence[str] = (),
                  limit: int = 100) -> List[StoreEvent]:
    """The latest deliveries, newest first."""
    query = select(StoreEvent).order_by(StoreEvent.received_at.desc(), StoreEvent.id.desc()).limit(limit)
    if source is not None:
        query = query.where(StoreEvent.source == source)
    if states:
        query = query.where(StoreEvent.state.in_(list(states)))
    return list(session.execute(query).scalars())


def forget_old_events(session: Session, now: datetime) -> int:
    """Delete deliveries past their keeping time; how many."""
    return int(session.execute(delete(StoreEvent).where(or_(
        and_(StoreEvent.state.in_(["applied", "ignored"]), StoreEvent.received_at < now - KEEP_DONE),
        and_(StoreEvent.state == "failed", StoreEvent.received_at < now - KEEP_FAILED),
    )).execution_options(synchronize_session=False)).rowcount or 0)


@dataclass(frozen=True)
class ShopActivity:
    """One connected store's deliveries at a glance."""

    source: str
    shop: str
    last_received_at: Optional[datetime]
    counts: Dict[str, int]  # by state


def shop_activity(session: Session) -> List[ShopActivity]:
    """Every store that delivered something still kept, with its latest delivery and its events by state."""
    rows = session.execute(select(StoreEvent.source, StoreEvent.shop, StoreEvent.state, func.count(),
                                  func.max(StoreEvent.received_at))
                           .group_by(StoreEvent.source, StoreEvent.shop, StoreEvent.state)).all()
    found: Dict[tuple, Dict[str, object]] = {}
    for source, shop, state, count, latest in rows:
        entry = found.setdefault((source, shop), {"latest": None, "counts": {}})
        entry["counts"][state] = int(count)  # type: ignore[index]
        if latest is not None and (entry["latest"] is None or latest > entry["latest"]):  # type: ignore[operator]
            entry["latest"] = latest
    return [ShopActivity(source, shop, entry["latest"], entry["counts"])  # type: ignore[arg-type]
            for (source, shop), entry in sorted(found.items())]
