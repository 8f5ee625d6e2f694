"""The web app in-process (aiohttp's TestServer) on the real SQLite / PostgreSQL test databases."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, Optional

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import balance, verify_balances
from bot.loyalty.program import Program
from bot.settings import Settings
from bot.web import create_app

if TYPE_CHECKING:
    from tests.web.console import Console

TOKEN = "store-token-for-tests-7f3a9c"
MAX_BODY_BYTES = 8192


def web_settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "RAPPORT_DATA_DIR": str(tmp_path / "var"),
        "STORE_API_TOKEN": TOKEN,
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "LOYALTY_JOBS_INTERVAL_MINUTES": "0",  # the scheduler has its own tests
    }
    return Settings.from_env({**base, **env})


@dataclass
class Api:
    """A client of the running app, authenticated unless told otherwise, and the database behind it."""

    client: TestClient
    db: Database

    async def post(self, path: str, body: Any = None, *, token: Optional[str] = TOKEN,
                   data: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> "Reply":
        all_headers = {**({"Authorization": f"Bearer {token}"} if token is not None else {}), **(headers or {})}
        if data is None:
            response = await self.client.post(path, json=body, headers=all_headers)
        else:
            response = await self.client.post(path, data=data, headers={"Content-Type": "application/json", **all_headers})
        return await Reply.of(response)

    async def get(self, path: str, *, token: Optional[str] = TOKEN, params: Optional[Dict[str, str]] = None) -> "Reply":
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await Reply.of(await self.client.get(path, headers=headers, params=params))

    def customer(self, email: str = "ann@example.com") -> int:
        """A customer with no points (no signup bonus: the arithmetic of each test stays its own)."""
        with self.db.session(write=True) as session:
            return create_customer(session, email, "Ann").id

    def balance(self, customer_id: int) -> int:
        with self.db.session() as session:
            return balance(session, customer_id)

    def count(self, model: Any) -> int:
        with self.db.session() as session:
            return int(session.execute(select(func.count()).select_from(model)).scalar_one())

    def assert_ledger_consistent(self) -> None:
        with self.db.session() as session:
            assert verify_balances(session) == []


@dataclass
class Reply:
    status: int
    json: Any
    headers: Any

    @classmethod
    async def of(cls, response: Any) -> "Reply":
        body = await response.json(content_type=None)
        return cls(response.status, body, response.headers)


async def started(database: Database, program: Program, settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings, database, program=program)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, database)


@pytest.fixture()
async def api(any_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on SQLite and on PostgreSQL."""
    async for value in started(any_db, program, web_settings(tmp_path)):
        yield value


@pytest.fixture()
async def sqlite_api(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on SQLite only: for request validation, which never reaches the engine's specifics."""
    async for value in started(sqlite_db, program, web_settings(tmp_path)):
        yield value


@pytest.fixture()
async def console(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator["Console"]:
    """The merchant console on SQLite, not signed in (tests/web/console.py)."""
    from tests.web.console import console_for

    async for value in console_for(sqlite_db, program, tmp_path):
        yield value


@pytest.fixture()
async def any_console(any_db: Database, program: Program, tmp_path: Path) -> AsyncIterator["Console"]:
    """The merchant console on SQLite and on PostgreSQL, not signed in."""
    from tests.web.console import console_for

    async for value in console_for(any_db, program, tmp_path):
        yield value
