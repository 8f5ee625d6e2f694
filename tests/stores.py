"""Migrated test stores without running the 21 migrations for every test: each engine's store is migrated once
per session (per migration head) into a template, and every test gets an exact copy of it.

SQLite: the template file is closed (its WAL checkpointed into the file and removed) and copied byte for byte.
PostgreSQL: a template database, and one database per test made with CREATE DATABASE ... TEMPLATE (0.4 s
against 2 s for the migrations), dropped on a background thread after the test. Tests about the migrations
themselves do not use these (tests/unit/test_migrations.py migrates an empty store).
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Dict, List

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from bot.db import MIGRATIONS_DIR, Database


@lru_cache(maxsize=None)
def migration_head() -> str:
    """The revision `alembic upgrade head` ends at (read once: the migrations do not change during a run)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "no migrations"
    return head


class SqliteTemplates:
    """Migrated SQLite store files in `folder`, one per migration head."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._templates: Dict[str, Path] = {}

    def template(self) -> Path:
        head = migration_head()
        if head not in self._templates:
            self._templates[head] = self._build(self.folder / f"template-{head}.db")
        return self._templates[head]

    def copy_to(self, path: Path) -> None:
        """Make `path` (which must not exist yet) a migrated store: the template's copy."""
        if path.exists():
            raise FileExistsError(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.template(), path)

    def store_at(self, path: Path) -> Database:
        self.copy_to(path)
        return Database(f"sqlite:///{path}")

    @staticmethod
    def _build(path: Path) -> Path:
        database = Database(f"sqlite:///{path}")
        try:
            database.create_schema()
            with database.engine.connect() as connection:
                busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            assert busy == 0, "the template's WAL could not be checkpointed"
        finally:
            database.dispose()
        # Closing the last connection of a WAL store checkpoints it and deletes the -wal and -shm files; were one
        # left, a copy of the main file alone would miss the pages still in it.
        leftovers = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        assert not leftovers, f"the SQLite template is not self-contained: {leftovers}"
        return path


class PostgresTemplates:
    """Migrated PostgreSQL databases next to the test database of `url` (named after it and this process, so
    parallel runs on other test databases or in other processes never meet)."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.prefix = f"{self.url.database}_t{os.getpid()}_"
        # Connected to the test database itself (it exists); CREATE/DROP DATABASE cannot run in a transaction.
        self.admin: Engine = create_engine(self.url, future=True, isolation_level="AUTOCOMMIT")
        self._templates: Dict[str, str] = {}
        self._numbers = itertools.count(1)
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-test-db")
        self._drops: List[Future] = []
        self._drop_leftovers_of_dead_runs()

    def _url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def template(self) -> str:
        head = migration_head()
        if head not in self._templates:
            name = f"{self.prefix}head{head}"
            self._execute(f'CREATE DATABASE "{name}"')
            database = Database(self._url_of(name))
            try:
                database.create_schema()
            finally:
                database.dispose()  # CREATE DATABASE ... TEMPLATE needs a template nobody is connected to
            self._templates[head] = name
        return self._templates[head]

    def new_database(self) -> Database:
        """A database of the test's own: the template's copy."""
        name = f"{self.prefix}{next(self._numbers)}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template()}"')
        return Database(self._url_of(name))

    def empty_database(self) -> Database:
        """A database of the test's own without any table (for tests of the migrations)."""
        name = f"{self.prefix}{next(self._numbers)}"
        self._execute(f'CREATE DATABASE "{name}"')
        return Database(self._url_of(name))

    def drop_later(self, database: Database) -> None:
        """Drop a database from new_database() or empty_database() off the test's path (the test has disposed its engine)."""
        name = make_url(database.url).database
        assert name and name.startswith(self.prefix), name
        self._drops.append(self._dropper.submit(self._execute, f'DROP DATABASE "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self._dropper.shutdown(wait=True)
        try:
            for done in self._drops:
                done.result()  # a failed drop is an error of the run
            for name in self._templates.values():
                self._execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            self.admin.dispose()

    def _execute(self, statement: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(statement))

    def _drop_leftovers_of_dead_runs(self) -> None:
        """Databases a killed run of this test database left behind (its process is gone)."""
        pattern = re.compile(rf"^{re.escape(str(self.url.database))}_t(\d+)_")
        with self.admin.connect() as connection:
            names = connection.execute(text("SELECT datname FROM pg_database")).scalars().all()
        for name in names:
            found = pattern.match(name)
            if found and not _alive(int(found.group(1))):
                self._execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
