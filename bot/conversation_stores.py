"""Rasa tracker and lock stores chosen from the environment.

Rasa's ${VAR} substitution in endpoints.yml has no defaults — an unset variable is an error — so
one endpoints.yml cannot say "SQLite unless REDIS_URL is set". These two classes, named as custom
stores in endpoints.yml, make that choice from bot.settings:
  tracker  TRACKER_STORE=sql (default)  → AppendOnlySQLTrackerStore on TRACKER_DATABASE_URL (SQLite under
                                          var/, or PostgreSQL: the scaled-out layout)
           TRACKER_STORE=redis          → Rasa's RedisTrackerStore on REDIS_URL
  locks    REDIS_URL set                → bot.locks.RedisTicketLockStore (atomic FIFO tickets, leases)
           otherwise                    → Rasa's InMemoryLockStore (one process)
Building the tracker store also installs the project's hooks on Rasa's action calls (bot/rasa_hooks.py):
every Rasa entry point that reads endpoints.yml constructs it.
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Dict, Iterator, List, Optional

from rasa.core.brokers.broker import EventBroker
from sqlalchemy import create_engine, event, insert
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool
from rasa.core.lock_store import InMemoryLockStore, LockStore
from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

from bot.conversation_storage import CONVERSATION_FENCES, redis_kwargs, sql_kwargs
from bot.locks import RedisTicketLockStore, current_fence
from bot.log import get_logger
from bot.settings import get_settings

log = get_logger(__name__)

# Set on a tracker this store built or saved: how many of its events are stored.
_STORED_EVENTS = "_rapport_stored_events"


class StaleLockHolder(RuntimeError):
    """A save whose lock lease ran out and whose conversation a newer lock holder has saved since."""


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _use_pooled_wal_engine(store: SQLTrackerStore) -> None:
    """Swap the engine Rasa made for SQLite for a pooled one in WAL mode.

    Rasa's engine opens a new SQLite connection for every read and write of a turn (SQLAlchemy 1.4's
    NullPool) in rollback-journal mode with a full fsync per commit. A small pool with WAL and
    synchronous=NORMAL keeps every committed turn across a process crash at a fraction of the cost.
    """
    pooled = create_engine(
        store.engine.url,
        poolclass=QueuePool,
        pool_size=5,
        max_overflow=10,
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(pooled, "connect", _sqlite_wal)
    store.engine.dispose()
    store.engine = pooled
    store.sessionmaker = sessionmaker(bind=pooled)


class AppendOnlySQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store (same `events` table), saving without a read-modify-write.

    Rasa's save counts the events stored since the session started and inserts the tracker's events
    past that count: two saves of one conversation at once count the same and duplicate or drop events,
    and the count (a sub-query on the latest session start) is a good part of a turn's database time.
    This store remembers how many events the tracker it handed out already had stored, and appends only
    the ones after those — INSERTs, one statement. With the lock's ticket (bot/locks.py) it also fences:
    the save records its ticket per conversation and is refused if a newer ticket already saved.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            _use_pooled_wal_engine(self)
        elif self.engine.dialect.name == "postgresql":
            _use_checked_postgres_engine(self)
        CONVERSATION_FENCES.metadata.create_all(self.engine)

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        """Rasa's query (the events since the latest session start, by id), reading only the JSON column:
        Rasa builds an ORM object per event row only to read that column."""
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions=fetch_events_from_all_sessions)
            rows = query.with_entities(self.SQLEvent.data).all()
        if not rows or not self.domain:
            return None
        return DialogueStateTracker.from_dict(sender_id, [json.loads(row[0]) for row in rows], self.domain.slots)

    async def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        tracker = await _retrying_outage(lambda: SQLTrackerStore.retrieve(self, sender_id))
        if tracker is not None:
            setattr(tracker, _STORED_EVENTS, len(tracker.events))
        return tracker

    def _new_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        stored = getattr(tracker, _STORED_EVENTS, None)
        if stored is None or stored > len(tracker.events):
            return self._additional_events(session, tracker)  # a tracker we did not build: Rasa's count
        return itertools.islice(tracker.events, stored, None)

    def _advance_fence(self, session: Any, sender_id: str, fence: int) -> None:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[no-redef]
        statement = upsert(CONVERSATION_FENCES).values(sender_id=sender_id, fence=fence)
        statement = statement.on_conflict_do_update(
            index_elements=[CONVERSATION_FENCES.c.sender_id],
            set_={"fence": statement.excluded.fence},
            where=CONVERSATION_FENCES.c.fence <= statement.excluded.fence,
        )
        # Inserted or updated: one row; a newer fence already there: none (SQLite and PostgreSQL alike).
        if session.execute(statement).rowcount == 0:
            raise StaleLockHolder(
                f"conversation {sender_id!r} was saved by a newer lock holder; this turn's lease had run out"
            )

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)
        await _retrying_outage(lambda: self._save(tracker))

    async def _save(self, tracker: DialogueStateTracker) -> None:
        with self.session_scope() as session:
            fence = current_fence(tracker.sender_id)
            if fence is not None:
                self._advance_fence(session, tracker.sender_id, fence)
            rows: List[Dict[str, Any]] = []
            for event_ in self._new_events(session, tracker):
                data = event_.as_dict()
                rows.append({
                    "sender_id": tracker.sender_id,
                    "type_name": event_.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                    "action_name": data.get("name"),
                    "data": json.dumps(data),
                })
            if rows:
                session.execute(insert(self.SQLEvent.__table__), rows)
            session.commit()
        setattr(tracker, _STORED_EVENTS, len(tracker.events))


# A database that restarts or refuses connections for a few seconds delays turns instead of failing them.
DATABASE_OUTAGE_SECONDS = 15.0


async def _retrying_outage(call: Any) -> Any:
    import asyncio
    import time

    from sqlalchemy.exc import DBAPIError

    deadline = time.monotonic() + DATABASE_OUTAGE_SECONDS
    delay = 0.1
    while True:
        try:
            return await call()
        except DBAPIError as error:
            if not error.connection_invalidated and not _is_connection_error(error):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("tracker_store.database_unavailable", error=type(error.orig).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def _is_connection_error(error: Any) -> bool:
    from sqlalchemy.exc import OperationalError, InterfaceError

    return isinstance(error, (OperationalError, InterfaceError))


def _use_checked_postgres_engine(store: SQLTrackerStore) -> None:
    """Rasa's PostgreSQL engine keeps up to 50 connections and never tests them: after the database
    restarts (or a proxy drops its connections) every pooled one fails once. This one pings a connection
    before handing it out and gives up connecting after a few seconds (the caller retries)."""
    checked = create_engine(
        store.engine.url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=1800,
        connect_args={"connect_timeout": 3}, hide_parameters=True,
    )
    store.engine.dispose()
    store.engine = checked
    store.sessionmaker = sessionmaker(bind=checked)


class EnvironmentTrackerStore:
    """Factory named in endpoints.yml; instantiating it returns one of Rasa's tracker stores."""

    def __new__(  # type: ignore[misc]
        cls,
        domain: Optional[Domain] = None,
        event_broker: Optional[EventBroker] = None,
        host: Optional[str] = None,
        **_: Any,
    ) -> TrackerStore:
        from bot.rasa_hooks import install_action_hooks

        install_action_hooks()
        settings = get_settings()
        if settings.tracker_store == "redis" and settings.redis_url:
            return RedisTrackerStore(domain=domain, event_broker=event_broker, **redis_kwargs(settings.redis_url))
        return AppendOnlySQLTrackerStore(
            domain=domain, event_broker=event_broker, **sql_kwargs(settings.tracker_database_url)
        )


class EnvironmentLockStore:
    """Factory named in endpoints.yml; instantiating it returns one of Rasa's lock stores."""

    def __new__(cls, endpoint_config: Any = None) -> LockStore:  # type: ignore[misc]
        settings = get_settings()
        if settings.redis_url:
            return RedisTicketLockStore(settings.redis_url, lease_seconds=settings.lock_lease_seconds)
        return InMemoryLockStore()
