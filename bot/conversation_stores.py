"""Rasa tracker and lock stores chosen from the environment.

Rasa's ${VAR} substitution in endpoints.yml has no defaults — an unset variable is an error — so
one endpoints.yml cannot say "SQLite unless REDIS_URL is set". These two classes, named as custom
stores in endpoints.yml, make that choice from bot.settings and return Rasa's own stores:
  REDIS_URL set            → RedisTrackerStore + RedisLockStore (required with several workers)
  otherwise                → SQLTrackerStore on TRACKER_DATABASE_URL (default: SQLite under var/)
                             + InMemoryLockStore (one process)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlparse

from rasa.core.brokers.broker import EventBroker
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain

from bot.settings import get_settings


def _redis_kwargs(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError("REDIS_URL must start with redis:// or rediss://")
    return {
        "host": parsed.hostname or "localhost",
        "port": parsed.port or 6379,
        "db": int(parsed.path.lstrip("/") or 0),
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "use_ssl": parsed.scheme == "rediss",
    }


def _sql_kwargs(url: str) -> dict:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("TRACKER_DATABASE_URL must be a sqlite:/// or postgresql:// URL") from None
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        return {"dialect": "sqlite", "db": parsed.database}
    if dialect == "postgresql":
        # Rasa builds its own URL from these parts; query options (sslmode, …) go in query.
        return {
            "dialect": "postgresql",
            "host": parsed.host or "localhost",
            "port": parsed.port or 5432,
            "db": parsed.database or "postgres",
            "username": parsed.username,
            "password": parsed.password,
            "query": dict(parsed.query),
        }
    raise ValueError("TRACKER_DATABASE_URL must be a sqlite:/// or postgresql:// URL")


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


class EnvironmentTrackerStore:
    """Factory named in endpoints.yml; instantiating it returns one of Rasa's tracker stores."""

    def __new__(  # type: ignore[misc]
        cls,
        domain: Optional[Domain] = None,
        event_broker: Optional[EventBroker] = None,
        host: Optional[str] = None,
        **_: Any,
    ) -> TrackerStore:
        settings = get_settings()
        if settings.redis_url:
            return RedisTrackerStore(domain=domain, event_broker=event_broker, **_redis_kwargs(settings.redis_url))
        store = SQLTrackerStore(domain=domain, event_broker=event_broker, **_sql_kwargs(settings.tracker_database_url))
        if store.engine.dialect.name == "sqlite":
            _use_pooled_wal_engine(store)
        return store


class EnvironmentLockStore:
    """Factory named in endpoints.yml; instantiating it returns one of Rasa's lock stores."""

    def __new__(cls, endpoint_config: Any = None) -> LockStore:  # type: ignore[misc]
        settings = get_settings()
        if settings.redis_url:
            return RedisLockStore(**_redis_kwargs(settings.redis_url))
        return InMemoryLockStore()
