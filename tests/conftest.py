from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from bot import db as db_module
from bot.db import Database
from bot.loyalty.program import Program, load_program
from bot.settings import PROJECT_ROOT, reset_settings
from tests.services import POSTGRES_URL, require_service
from tests.stores import PostgresTemplates, SqliteTemplates

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


@pytest.fixture(scope="session")
def nlu_agent():
    """The trained model loaded once per run (~30 s a load) for the tests that only parse messages with it: no
    action endpoint, and nothing a test does through it (parse_message) changes it."""
    from rasa.core.agent import Agent

    from bot.training import model_path, train_if_changed

    train_if_changed()
    return Agent.load(str(model_path()))


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    """The migrated SQLite store, built once per run and copied for each test (tests/stores.py)."""
    return SqliteTemplates(tmp_path_factory.mktemp("sqlite-templates"))


@pytest.fixture(scope="session")
def postgres_templates() -> Iterator[PostgresTemplates]:
    """The migrated PostgreSQL database, built once per run and cloned for each test (tests/stores.py)."""
    require_service("PostgreSQL", 5432)
    templates = PostgresTemplates(POSTGRES_URL)
    yield templates
    templates.close()


@pytest.fixture()
def sqlite_db(tmp_path: Path, sqlite_templates: SqliteTemplates) -> Iterator[Database]:
    """A migrated SQLite store of the test's own."""
    database = sqlite_templates.store_at(tmp_path / "rapport.db")
    yield database
    database.dispose()


@pytest.fixture()
def postgres_db(postgres_templates: PostgresTemplates) -> Iterator[Database]:
    """A migrated database of the test's own on the real PostgreSQL server, dropped afterwards."""
    database = postgres_templates.new_database()
    yield database
    database.dispose()
    postgres_templates.drop_later(database)


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
