"""The console's Segments page over aiohttp's test client on a real store: built-ins, the editor's preview
endpoint (size, members with reasons, errors), saving and deleting, the owner-only CSV export (an agent is
refused) and the audit lines they leave."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.loyalty.program import Program
from bot.models import AuditEvent, SavedSegment
from tests.unit.test_segments import build_store
from tests.web.console import Console, console_for, make_merchant


@pytest.fixture()
async def console(sqlite_db: Database, program: Program, tmp_path: Path) -> AsyncIterator[Console]:
    async for value in console_for(sqlite_db, program, tmp_path):
        yield value


async def test_the_page_shows_built_ins_size_and_members_with_reasons(console: Console, sqlite_db: Database,
                                                                       clock: Any) -> None:
    store = build_store(sqlite_db)
    make_merchant(sqlite_db, "owner@shop.example", "owner")
    await console.sign_in("owner@shop.example")

    page = await console.get("/console/segments")
    html = await page.text()
    assert page.status == 200 and 'href="/console/segments" aria-current="page"' in html
    assert "VIPs at risk" in html and "Happy customers who never referred" in html
    assert '<strong id="segment-size">6</strong>' in html  # no condition: every customer
    assert '<template id="condition-likely_to_lapse">' in html and "/console/static/segments.js" in html

    vips = await (await console.get("/console/segments", {"segment": "vips_at_risk"})).text()
    assert '<strong id="segment-size">1</strong>' in vips
    assert "Gold tier; spent 1,000.00; 22 % likely (was 61 %)" in vips
    assert f'href="/console/customers/{store["vip"]}"' in vips
    assert 'data-kind="likely_to_lapse"' in vips and 'id="export-link"' in vips

    preview = await console.get("/console/segments/preview", {"filter": json.dumps(
        {"conditions": [{"kind": "frequency", "min": "1", "max": "1"}]})})
    data = await preview.json()
    assert preview.status == 200 and data["count"] == 2 and data["description"] == "1 order"
    assert [(m["name"], m["reason"]) for m in data["members"]] == [("Once", "1 order"), ("Once_Low", "1 order")]
    assert data["export_url"].startswith("/console/segments/export.csv?filter=")

    refused = await console.get("/console/segments/preview", {"filter": '{"conditions": [{"kind": "tier"}]}'})
    assert refused.status == 400 and (await refused.json())["error"] == "condition 1: tier: tiers is required"
    broken = await console.get("/console/segments", {"filter": "{nope"})
    assert broken.status == 400 and "the filter is not JSON" in await broken.text()
    unknown = await console.get("/console/segments", {"segment": "nobody"})
    assert unknown.status == 400 and "no segment &#39;nobody&#39;" in await unknown.text()


async def test_save_export_and_delete_and_an_agent_cannot_export(console: Console, sqlite_db: Database,
                                                                 clock: Any) -> None:
    store = build_store(sqlite_db)
    make_merchant(sqlite_db, "owner@shop.example", "owner")
    make_merchant(sqlite_db, "agent@shop.example", "agent")
    await console.sign_in("agent@shop.example")
    loyal = json.dumps({"conditions": [{"kind": "frequency", "min": 2}]})
    saved = await console.post("/console/segments", {"name": "Loyal", "description": "2+ orders", "filter": loyal})
    assert saved.status == 303 and saved.headers["Location"].startswith("/console/segments?segment=")
    page = await (await console.get(saved.headers["Location"])).text()
    assert "Saved “Loyal”" in page and '<strong id="segment-size">2</strong>' in page
    assert 'id="export-link"' not in page  # agents see no export link …
    export = await console.get("/console/segments/export.csv", {"filter": loyal})
    assert export.status == 403 and "Owners only" in await export.text()  # … and are refused the file
    with sqlite_db.session() as session:
        segment_id = session.execute(select(SavedSegment.id)).scalar_one()
    assert (await console.post(f"/console/segments/{segment_id}/delete")).status == 403
    bad = await console.post("/console/segments", {"name": "", "filter": loyal})
    assert bad.status == 400 and "name has 1 to 100 characters" in await bad.text()
    no_token = await console.post("/console/segments", {"name": "X", "filter": loyal}, csrf="")
    assert no_token.status == 403

    owner = Console(console.client, sqlite_db)
    await owner.client.post("/console/logout", data={"csrf_token": console.csrf})
    await owner.sign_in("owner@shop.example")
    export = await owner.get("/console/segments/export.csv", {"segment": "Loyal"})
    assert export.status == 200 and export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="segment-loyal-2026-06-15.csv"' in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO((await export.read()).decode("utf-8-sig"))))
    assert [(row["id"], row["email"], row["orders"], row["reason"]) for row in rows] == [
        (str(store["vip"]), "vip@example.com", "2", "2 orders"),
        (str(store["referrer"]), "referrer@example.com", "2", "2 orders")]
    deleted = await owner.post(f"/console/segments/{segment_id}/delete")
    assert deleted.status == 303
    with sqlite_db.session() as session:
        assert session.execute(select(SavedSegment)).first() is None
        actions = [event.action for event in session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()]
    assert actions == ["segment_saved", "segment_exported", "segment_deleted"]
