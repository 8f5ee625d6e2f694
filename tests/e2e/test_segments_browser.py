"""The Segments page in headless Chromium: the real web app on a SQLite store of tests/unit/test_segments.py.
An owner opens a built-in, adds a condition and changes it, and the size and members (with their reasons)
follow without a reload (static/segments.js asks /console/segments/preview); a broken field is said; the
segment is saved and listed. Screenshots: var/screenshots/console-segments*.png. No Rasa server or model."""
from __future__ import annotations

from typing import Iterator

import pytest

from bot.db import Database
from bot.loyalty.program import load_program
from bot.processes import free_port
from bot.settings import PROJECT_ROOT
from bot.web import create_app
from tests.browser import chromium, new_page, require_chromium, screenshot
from tests.e2e.test_console_browser import _AppServer
from tests.fakes.threaded import ThreadedServers
from tests.unit.test_segments import build_store
from tests.web.conftest import web_settings
from tests.web.console import PASSWORD, make_merchant

OWNER = "olive@oak-and-ember.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    folder = tmp_path_factory.mktemp("segments")
    db = Database(f"sqlite:///{folder / 'rapport.db'}")
    db.create_schema()
    build_store(db)
    make_merchant(db, OWNER, "owner", "Olive")
    program = load_program(PROJECT_ROOT / "data" / "program.yml")
    port = free_port()
    servers = ThreadedServers(console=_AppServer(create_app(web_settings(folder), db, program=program), port)).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        servers.stop()
        db.dispose()


def test_the_size_follows_the_filter_as_it_changes(site: str) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = new_page(browser)
        page.goto(site + "/console/segments?segment=detractors")
        page.fill("input[name=email]", OWNER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.goto(site + "/console/segments?segment=detractors")
        size = page.locator("#segment-size")
        expect(size).to_have_text("1")
        expect(page.locator("#member-table tbody tr")).to_have_count(1)
        expect(page.locator("#member-table")).to_contain_text("last NPS 4")

        # Remove the built-in's condition: everyone (6), then add "Number of orders" at least 2: 2.
        page.click("fieldset.condition .remove-condition")
        expect(size).to_have_text("6")
        page.select_option("#new-condition", "frequency")
        orders = page.locator("fieldset.condition[data-kind=frequency]")
        orders.locator("[data-field=min]").fill("2")
        expect(size).to_have_text("2")
        expect(page.locator("#segment-description")).to_have_text("at least 2 orders")
        expect(page.locator("#member-table tbody tr")).to_have_count(2)
        expect(page.locator("#member-table")).to_contain_text("2 orders")
        orders.locator("[data-field=max]").fill("1")  # min above max: said, the last good size stays
        expect(page.locator("#segment-problem")).to_contain_text("the minimum 2 is above the maximum 1")
        orders.locator("[data-field=min]").fill("1")
        expect(size).to_have_text("2")
        expect(page.locator("#segment-problem")).to_be_hidden()
        expect(page.locator("#member-table")).to_contain_text("1 order")
        assert "frequency" in page.locator("#export-link").get_attribute("href")
        page.select_option("#new-condition", "probability")
        page.locator("fieldset.condition[data-kind=probability] [data-field=min]").fill("50")
        expect(size).to_have_text("1")
        expect(page.locator("#member-table")).to_contain_text("1 order; 55 % likely")
        screenshot(page, "segments-editor", prefix="console", full_page=True)

        page.fill("#save-form input[name=name]", "Returning soon")
        page.click("#save-form button[type=submit]")
        expect(page.locator("[role=status]")).to_contain_text("Saved “Returning soon”")
        expect(page.locator("#segment-list")).to_contain_text("Returning soon")
        expect(size).to_have_text("1")
        assert page.js_errors == []  # type: ignore[attr-defined]
