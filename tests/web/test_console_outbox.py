"""The console's Outbox page: every proactive message with its state, the reason it was skipped or is waiting
and the error it failed with, filtered by state; owners only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.loyalty.program import Program
from bot.outbox.policy import ProactivePolicy
from bot.outbox.service import enqueue, mark_failed, route_due
from tests.web.console import Console, console_for, make_merchant


@pytest.fixture()
async def console(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Console]:
    async for value in console_for(sqlite_db, program, tmp_path):
        yield value


def _messages(db: Database, now: Any) -> None:
    """One delivered-to-be, one capped, one failed, one waiting for a chat."""
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com").id
        link_identity(session, ann, "telegram", "901")
        nobody = create_customer(session, "bo@example.com").id
        failed = enqueue(session, ann, "tier_change", "You're Gold <now>", "t1", now)
        for n in range(2):
            enqueue(session, ann, "review_approved", f"Your review {n} is live", f"r{n}", now)
        enqueue(session, nobody, "points_expiry_warning", "Your points expire soon", "e1", now)
        route_due(session, ProactivePolicy(quiet_start=None, quiet_end=None, max_per_30_days=2), now)
        mark_failed(session, failed.id, "Forbidden: bot was blocked by the user", now)


async def test_the_owner_sees_every_message_with_its_state_and_filters_by_state(
        console: Console, sqlite_db: Database, clock: Any) -> None:
    _messages(sqlite_db, clock.current)
    make_merchant(sqlite_db, "owner@shop.example", "owner")
    assert (await console.sign_in("owner@shop.example")).status == 303

    page = await console.get("/console/outbox")
    html = await page.text()
    assert page.status == 200 and 'href="/console/outbox" aria-current="page"' in html
    assert "Your review 0 is live" in html and "Your points expire soon" in html
    assert "frequency cap: 2 messages in 30 days" in html
    assert "Forbidden: bot was blocked by the user" in html
    assert "You&#39;re Gold &lt;now&gt;" in html  # escaped
    assert "no linked chat yet" in html

    failed = await (await console.get("/console/outbox", {"state": "failed"})).text()
    assert "Forbidden: bot was blocked by the user" in failed and "Your review 0 is live" not in failed
    queued = await (await console.get("/console/outbox", {"state": "queued"})).text()
    assert "Your review 0 is live" in queued and "Your points expire soon" in queued and "blocked" not in queued
    assert "Your review 1 is live" not in queued
    skipped = await (await console.get("/console/outbox", {"state": "skipped"})).text()
    assert "Your review 1 is live" in skipped and "frequency cap" in skipped and "Your review 0" not in skipped
    everything = await (await console.get("/console/outbox", {"state": "nonsense"})).text()
    assert "Your review 1 is live" in everything


async def test_an_agent_may_not_open_the_outbox(console: Console, sqlite_db: Database) -> None:
    make_merchant(sqlite_db, "agent@shop.example", "agent")
    assert (await console.sign_in("agent@shop.example")).status == 303
    assert (await console.get("/console/outbox")).status == 403
