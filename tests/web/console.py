"""Signing in to the merchant console from tests: a merchant account and an aiohttp client that keeps its
cookies and sends the page's CSRF token with every form, like a browser would."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Dict, Optional

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bot import clock
from bot.console.accounts import add_merchant
from bot.db import Database
from bot.loyalty.program import Program
from bot.web import create_app
from tests.web.conftest import web_settings

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_merchant(db: Database, email: str, role: str, name: str = "") -> int:
    with db.session(write=True) as session:
        return add_merchant(session, email, name or email.split("@")[0].title(), role, PASSWORD, clock.now()).id


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@dataclass
class Console:
    """A browser-like client of the console. `sign_in` as a merchant, then `get` pages and `post` forms."""

    client: TestClient
    db: Database
    csrf: str = ""

    async def sign_in(self, email: str, password: str = PASSWORD) -> ClientResponse:
        page = await self.client.get("/console/login")
        response = await self.client.post(
            "/console/login", data={"email": email, "password": password, "csrf_token": csrf_of(await page.text())},
            allow_redirects=False)
        if response.status == 303:
            home = await self.client.get("/console/feedback")
            self.csrf = csrf_of(await home.text())
        return response

    async def get(self, path: str, params: Optional[Dict[str, str]] = None) -> ClientResponse:
        return await self.client.get(path, params=params, allow_redirects=False)

    async def post(self, path: str, data: Optional[Dict[str, str]] = None, *, csrf: Optional[str] = None) -> ClientResponse:
        """A form post with the session's CSRF token (or `csrf` given: "" to leave it out)."""
        token = self.csrf if csrf is None else csrf
        form = {**({"csrf_token": token} if token else {}), **(data or {})}
        return await self.client.post(path, data=form, allow_redirects=False)


async def console_for(database: Database, program: Program, tmp_path: Path, **env: str) -> AsyncIterator[Console]:
    app = create_app(web_settings(tmp_path, **env), database, program=program)
    async with TestClient(TestServer(app)) as client:
        yield Console(client, database)
