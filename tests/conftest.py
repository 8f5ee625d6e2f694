from __future__ import annotations

import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import text

from bot import db as db_module
from bot.db import Database
from bot.loyalty.program import Program, load_program
from bot.settings import PROJECT_ROOT, reset_settings
from tests.services import POSTGRES_URL, require_service

# Importing sanic runs warnings.filterwarnings("once", DeprecationWarning) (sanic/app.py). Imported inside a
# test, that filter would sit in front of pytest.ini's filterwarnings and let library deprecation notices
# (pkg_resources, distutils, SQLAlchemy 2.0) into the summary; imported here, once, its filter goes with the
# catch_warnings block.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import sanic  # noqa: F401,E402


@pytest.fixture()
def program() -> Program:
    return load_program(PROJECT_ROOT / "data" / "program.yml")


@pytest.fixture()
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'rapport.db'}")
    database.create_schema()
    yield database
    database.dispose()


@pytest.fixture()
def postgres_db() -> Iterator[Database]:
    """A fresh schema in the real PostgreSQL test database, dropped afterwards."""
    require_service("PostgreSQL", 5432)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    with admin.engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    database = Database(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    database.create_schema()
    yield database
    database.dispose()
    with admin.engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param.replace('postgresql', 'postgres')}_db")


@pytest.fixture()
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Process settings pointing at a temporary data folder; caches reset around the test."""
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    reset_settings()
    db_module.reset_database()
    yield tmp_path / "var"
    reset_settings()
    db_module.reset_database()


class MovableClock:
    """The project's clock, set by the test: `clock.at(datetime)`, `clock.advance(days=…)`."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def at(self, moment: datetime) -> None:
        self.current = moment

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture()
def clock() -> Iterator[MovableClock]:
    from bot import clock as clock_module

    movable = MovableClock(datetime(2026, 6, 15, 12, tzinfo=timezone.utc))
    clock_module.set_clock(lambda: movable.current)
    yield movable
    clock_module.set_clock(None)
