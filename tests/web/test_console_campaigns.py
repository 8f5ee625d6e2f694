"""The console's Campaigns page (owners): make a poll for chosen customers or a segment, see its dry run (who
gets it on which chat, who waits or is skipped and why, who is held out), send it once, and see the results
with the answers charted per option, per tier and per chosen segment; refused input is shown, agents may not
open it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.campaigns.service import record_response
from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.loyalty.program import Program
from bot.models import AuditEvent, OutboundMessage
from bot.segments.filters import SegmentFilter
from bot.segments.service import save_segment
from tests.web.console import Console, console_for, make_merchant


@pytest.fixture()
async def console(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Console]:
    async for value in console_for(sqlite_db, program, tmp_path):
        yield value


def _customers(db: Database) -> list:
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", first_name="Ann").id
        link_identity(session, ann, "telegram", "901")
        bo = create_customer(session, "bo@example.com", first_name="Bo").id
        return [ann, bo]


def _queued(db: Database) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(OutboundMessage)).scalar_one()


async def test_the_owner_makes_a_poll_sees_the_dry_run_sends_and_sees_results(
        console: Console, sqlite_db: Database, program: Program, clock: Any) -> None:
    ann, bo = _customers(sqlite_db)
    make_merchant(sqlite_db, "owner@shop.example", "owner")
    assert (await console.sign_in("owner@shop.example")).status == 303
    page = await console.get("/console/campaigns")
    html = await page.text()
    assert page.status == 200 and 'href="/console/campaigns" aria-current="page"' in html and "No campaigns yet" in html

    created = await console.post("/console/campaigns", {
        "name": "More of", "kind": "poll", "text": "{first_name}, what should we do more of?",
        "customers": f"{ann}, {bo}", "options": "Free shipping\nNew colours", "bonus": "20"})
    assert created.status == 303
    where = created.headers["Location"]
    draft = await (await console.get(where)).text()
    assert "Dry run" in draft and "Ann, what should we do more of?" in draft
    assert "no linked chat yet" in draft and "telegram" in draft
    assert _queued(sqlite_db) == 0

    sent = await console.post(where + "/send")
    assert sent.status == 303 and sent.headers["Location"] == where + "?sent=1"
    assert (await console.post(where + "/send")).status == 303 and _queued(sqlite_db) == 2  # once
    with sqlite_db.session(write=True) as session:
        campaign_id = int(where.rsplit("/", 1)[1])
        record_response(session, program, campaign_id, ann, clock.current, option=2)
    results = await (await console.get(where)).text()
    assert "Results" in results and 'id="chart-poll-options-title"' in results and "New colours" in results
    assert "Lift:" in results
    assert 'id="segment-picker"' in results and 'id="segment-answers"' not in results

    with sqlite_db.session(write=True) as session:  # Ann is the one with a chat
        segment = save_segment(session, "On Telegram", SegmentFilter.from_json(
            [{"kind": "channel", "channels": ["telegram"]}]), by="test", now=clock.current, program=program).ref
    per_segment = await console.get(f"{where}?segment={segment}")
    html = await per_segment.text()
    assert per_segment.status == 200 and 'id="chart-poll-segments-title"' in html
    assert "On Telegram: Free shipping 0, New colours 1" in html  # the chart's description
    row = re.search(r'<tr data-segment="%s">(.*?)</tr>' % segment, html, re.S)
    assert row is not None
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row.group(1), re.S)
    assert cells == ["On Telegram", "1", "1", "1", "0 (0 %)", "1 (100 %)"]
    assert f'value="{segment}" checked' in html
    unknown = await console.get(f"{where}?segment=no-such-segment")
    html = await unknown.text()
    assert unknown.status == 400 and "no segment &#39;no-such-segment&#39;" in html and "Lift:" in html
    with sqlite_db.session() as session:
        actions = sorted(session.execute(select(AuditEvent.action)).scalars())
    assert actions == ["campaign_created", "campaign_sent"]
    listed = await (await console.get("/console/campaigns")).text()
    assert "More of" in listed and "sent" in listed


async def test_a_refused_campaign_is_explained_and_nothing_is_made(console: Console, sqlite_db: Database) -> None:
    _customers(sqlite_db)
    make_merchant(sqlite_db, "owner@shop.example", "owner")
    assert (await console.sign_in("owner@shop.example")).status == 303
    refused = await console.post("/console/campaigns", {"name": "x", "kind": "message", "text": "Hi {nickname}",
                                                        "customers": "1"})
    assert refused.status == 400 and "unknown personal field {nickname}" in await refused.text()
    missing = await console.post("/console/campaigns", {"name": "x", "kind": "message", "text": "Hi",
                                                        "segment": "no-such-segment"})
    assert missing.status == 400 and "no segment" in await missing.text()
    assert (await console.post("/console/campaigns", {"name": "x", "text": "Hi", "customers": "1"}, csrf="")).status == 403
    assert (await console.get("/console/campaigns/999")).status == 404


async def test_an_agent_may_not_open_campaigns(console: Console, sqlite_db: Database) -> None:
    make_merchant(sqlite_db, "agent@shop.example", "agent")
    assert (await console.sign_in("agent@shop.example")).status == 303
    assert (await console.get("/console/campaigns")).status == 403
