"""The loyalty store's database: one engine per process, sessions, migrations, and the one helper that runs
a piece of work in a transaction (`transaction`, and `transaction_in_thread` for async callers).

The URL comes from settings (DATABASE_URL): SQLite by default, PostgreSQL when configured.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


class Database:
    """Engine and session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = self._create_engine(url)
        self._sessions = sessionmaker(bind=self.engine, future=True, expire_on_commit=False)
        # On SQLite a transaction that will write takes the write lock up front (BEGIN IMMEDIATE):
        # a deferred one that upgrades later can fail with "database is locked" under contention.
        self._write_sessions = sessionmaker(
            bind=self.engine.execution_options(sqlite_begin="IMMEDIATE"),
            future=True,
            expire_on_commit=False,
        )
        # A re-runnable bulk job's transactions (an import): on SQLite their commit does not wait for the disk
        # (synchronous=NORMAL in WAL: never corrupt, but a power cut may undo the last commits — which running
        # the job again redoes), and they keep 64 MB of pages in memory instead of 2 MB. An import's fsyncs
        # were a seventh of its time.
        self._bulk_sessions = sessionmaker(
            bind=self.engine.execution_options(sqlite_begin="IMMEDIATE", sqlite_pragmas=_BULK_PRAGMAS),
            future=True,
            expire_on_commit=False,
        )

    @staticmethod
    def _create_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # A pool of open connections (SQLAlchemy 1.4 would open a new file connection per session).
            # hide_parameters: a failing statement's values (emails, names) must not reach logs via the error text.
            engine = create_engine(
                url,
                future=True,
                hide_parameters=True,
                poolclass=QueuePool,
                pool_size=5,
                max_overflow=10,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over.
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(url, future=True, hide_parameters=True, pool_pre_ping=True, pool_size=10, max_overflow=20)

    @contextmanager
    def session(self, write: bool = False, *, bulk: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        Pass write=True when the transaction changes data; bulk=True (a write) for a job that is simply run
        again after a crash (an import): on SQLite its commits do not wait for the disk.
        """
        factory = self._bulk_sessions if bulk else self._write_sessions if write else self._sessions
        with factory() as session:
            with session.begin():
                yield session

    def create_schema(self) -> None:
        """Bring the schema to the latest migration (Alembic upgrade head)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()


# SQLite's defaults, and what a bulk session (Database.session(bulk=True)) runs with instead.
_DEFAULT_PRAGMAS = ("synchronous=FULL", "cache_size=-2000")
_BULK_PRAGMAS = ("synchronous=NORMAL", "cache_size=-65536")


def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    options = connection.get_execution_options()
    # Per transaction, on a pooled connection: set when they differ from what the connection last had.
    pragmas = options.get("sqlite_pragmas", _DEFAULT_PRAGMAS)
    info = connection.connection.info
    if info.get("pragmas", _DEFAULT_PRAGMAS) != pragmas:
        for pragma in pragmas:
            connection.exec_driver_sql(f"PRAGMA {pragma}")
        info["pragmas"] = pragmas
    connection.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', '')}".strip())


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_database: Optional[Database] = None


def get_database() -> Database:
    """The process's database, built from settings on first use."""
    global _database
    if _database is None:
        _database = Database(get_settings().database_url)
    return _database


def reset_database() -> None:
    global _database
    if _database is not None:
        _database.dispose()
    _database = None


def transaction(work: Callable[[Session], T], *, write: bool = False, database: Optional[Database] = None) -> T:
    """`work(session)` in one transaction of `database` (default: the process's): committed when it returns,
    rolled back when it raises. Pass write=True when the work changes data (SQLite then takes the write lock
    up front). Every entry point (web handlers, actions, the console, the CLI, channels through their
    services) runs its store work through this helper or its async twin below."""
    with (database or get_database()).session(write=write) as session:
        return work(session)


async def transaction_in_thread(work: Callable[[Session], T], *, write: bool = False,
                                database: Optional[Database] = None, executor: Optional[Executor] = None) -> T:
    """`transaction(work)` on a worker thread of `executor` (default: the loop's): the database drivers block,
    so code on an event loop never runs a transaction on the loop itself."""
    run = partial(transaction, work, write=write, database=database or get_database())
    return await asyncio.get_running_loop().run_in_executor(executor, run)


def serialise_on(session: Session, lock_class: int, keys: Iterable[str]) -> None:
    """Make transactions about the same keys run one after the other, until this one commits.

    PostgreSQL: a transaction-scoped advisory lock per key, `lock_class` keeping each caller's locks apart
    from everyone else's (pick a distinct constant). Keys are taken in sorted order, so two transactions
    wanting the same keys cannot deadlock. SQLite: nothing to do, its write transactions are serial already
    (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        session.execute(text(f"SELECT pg_advisory_xact_lock({int(lock_class)}, hashtext(:key))"), {"key": key})


# How long a caller should wait before retrying work the database could not serve (HTTP Retry-After).
RETRY_AFTER_SECONDS = 5
# SQLite's words for a database it cannot use now (a file it cannot open or write, a lock held too long, a
# full or failing disk), as opposed to a statement it refuses (no such table, a constraint): a bug.
_SQLITE_UNAVAILABLE = ("unable to open database file", "readonly database", "database is locked", "disk i/o error",
                       "database or disk is full")
# PostgreSQL SQLSTATE classes and codes of a server that cannot serve now: connection exceptions (08),
# insufficient resources (53: too many connections, disk full), operator intervention (57: shutting down,
# starting up), and a read-only transaction (25006: a hot standby, default_transaction_read_only).
_POSTGRES_UNAVAILABLE_CLASSES = ("08", "53", "57")
_POSTGRES_READ_ONLY = "25006"


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot serve right now (down, refusing connections, read-only, out of
    connections or disk) rather than that the work is wrong: the first is worth a retry later (503), the
    second is a bug (500)."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    if type(original).__module__.startswith("sqlite3"):
        message = str(original).lower()
        return isinstance(error, sa_exc.OperationalError) and any(words in message for words in _SQLITE_UNAVAILABLE)
    code = getattr(original, "pgcode", None)
    if code is None:  # psycopg2 raises OperationalError without a code when it cannot connect or the server left
        return isinstance(error, sa_exc.OperationalError)
    return code[:2] in _POSTGRES_UNAVAILABLE_CLASSES or code == _POSTGRES_READ_ONLY
