"""A sent poll's results in headless Chromium: the real web app on a SQLite store where a poll went to two
saved segments' members who answered differently. The owner ticks both segments and sees each one's size,
how many were messaged and answered, and its answers per option (counts and shares) beside the per-tier
chart. Screenshot: var/screenshots/console-campaign-segments.png. No Rasa server or model."""
from __future__ import annotations

from datetime import timedelta
from typing import Iterator

import pytest

from bot import clock
from bot.campaigns.service import create_campaign, record_response, send_campaign
from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.loyalty.program import load_program
from bot.processes import free_port
from bot.segments.filters import SegmentFilter
from bot.segments.service import save_segment
from bot.settings import PROJECT_ROOT
from bot.web import create_app
from tests.browser import chromium, new_page, require_chromium, screenshot
from tests.e2e.test_console_browser import _AppServer
from tests.fakes.threaded import ThreadedServers
from tests.web.conftest import web_settings
from tests.web.console import PASSWORD, make_merchant

OWNER = "olive@oak-and-ember.example"
OPTIONS = ["Free shipping", "New colours", "Faster delivery"]
# (tier, points, answer): three Gold customers, three with 600+ points (one of them Gold too), two others.
SHOPPERS = [("Gold", 0, 1), ("Gold", 0, 1), ("Gold", 0, None), ("Bronze", 650, 2), ("Bronze", 900, 3),
            ("Gold", 800, 2), ("Bronze", 0, 1), ("Silver", 0, 3)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    require_chromium()
    folder = tmp_path_factory.mktemp("campaigns")
    db = Database(f"sqlite:///{folder / 'rapport.db'}")
    db.create_schema()
    program = load_program(PROJECT_ROOT / "data" / "program.yml")
    now = clock.now() - timedelta(days=2)
    with db.session(write=True) as session:
        ids = []
        for n, (tier, points, _) in enumerate(SHOPPERS):
            customer = create_customer(session, f"shopper{n}@example.com", first_name=f"Shopper{n}")
            customer.tier_name, customer.points_balance = tier, points
            link_identity(session, customer.id, "telegram", str(5000 + n))
            ids.append(customer.id)
        gold = save_segment(session, "Gold members", SegmentFilter.from_json([{"kind": "tier", "tiers": ["Gold"]}]),
                            by="test", now=now, program=program)
        holders = save_segment(session, "Point holders", SegmentFilter.from_json(
            [{"kind": "points_balance", "min": 500}]), by="test", now=now, program=program)
        poll = create_campaign(session, program, name="What next", kind="poll", text="What should we do more of?",
                               options=OPTIONS, audience={"customer_ids": ids}, now=now, holdout_percent=0)
        send_campaign(session, program, poll.id, now)
        for customer_id, (_, _, answer) in zip(ids, SHOPPERS):
            if answer is not None:
                record_response(session, program, poll.id, customer_id, now, option=answer)
        refs = (poll.id, gold.ref, holders.ref)
    make_merchant(db, OWNER, "owner", "Olive")
    port = free_port()
    servers = ThreadedServers(console=_AppServer(create_app(web_settings(folder), db, program=program), port)).start()
    try:
        yield f"http://127.0.0.1:{port}", refs
    finally:
        servers.stop()
        db.dispose()


def test_the_owner_sees_a_polls_answers_per_segment(site: tuple) -> None:
    from playwright.sync_api import expect

    url, (poll, gold, holders) = site
    with chromium() as browser:
        page = new_page(browser)
        page.goto(url + f"/console/campaigns/{poll}")
        page.fill("input[name=email]", OWNER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.goto(url + f"/console/campaigns/{poll}")
        expect(page.locator("#chart-poll-tiers-title")).to_have_count(1)
        expect(page.locator("#segment-answers")).to_have_count(0)

        page.check(f"#segment-picker input[value='{gold}']")
        page.check(f"#segment-picker input[value='{holders}']")
        page.click("#segment-picker button[type=submit]")
        rows = page.locator("#segment-answers tbody tr")
        expect(rows).to_have_count(2)
        # Gold: 4 members, all messaged, 3 answered (2 free shipping, 1 new colours).
        expect(rows.nth(0).locator("th, td")).to_have_text(
            ["Gold members", "4", "4", "3", "2 (67 %)", "1 (33 %)", "0 (0 %)"])
        # 600+ points: 3 members, one answer each.
        expect(rows.nth(1).locator("th, td")).to_have_text(
            ["Point holders", "3", "3", "3", "0 (0 %)", "2 (67 %)", "1 (33 %)"])
        chart = page.locator("svg[aria-labelledby='chart-poll-segments-title chart-poll-segments-desc']")
        expect(chart).to_be_visible()
        expect(chart.locator("rect.segment")).to_have_count(4)  # one bar part per option a segment chose
        expect(page.locator(f"#segment-picker input[value='{gold}']")).to_be_checked()
        screenshot(page, "campaign-segments", prefix="console", full_page=True)
        assert page.js_errors == []  # type: ignore[attr-defined]
