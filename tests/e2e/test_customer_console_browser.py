"""The customer pages and the audit log in headless Chromium: the real web app on a SQLite store holding Ann
from tests/unit/test_privacy.py (every kind of row the store keeps about a shopper). An owner finds her by
name, reads her whole record, credits points, is refused a debit below zero, and finds both in the audit
log; every page fits a 390 px phone. Screenshots: var/screenshots/console-customer*.png, console-audit*.png.
No Rasa server or model is needed."""
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
from tests.e2e.test_handoff_e2e import assert_fits
from tests.fakes.threaded import ThreadedServers
from tests.unit.test_privacy import EMAIL, seed
from tests.web.conftest import web_settings
from tests.web.console import PASSWORD, make_merchant

OWNER = "olive@oak-and-ember.example"
PHONE_390 = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    folder = tmp_path_factory.mktemp("customers")
    db = Database(f"sqlite:///{folder / 'rapport.db'}")
    db.create_schema()
    program = load_program(PROJECT_ROOT / "data" / "program.yml")
    seed(db, program)
    make_merchant(db, OWNER, "owner", "Olive")
    port = free_port()
    servers = ThreadedServers(console=_AppServer(create_app(web_settings(folder), db, program=program), port)).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        servers.stop()
        db.dispose()


def test_an_owner_reads_and_corrects_a_whole_customer(site: str) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = new_page(browser)
        page.goto(site + "/console/customers")
        page.fill("input[name=email]", OWNER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        expect(page.locator("table.customer-list")).to_be_visible()
        screenshot(page, "customers", prefix="console")

        page.fill("input[name=q]", "quixotic")
        page.click("form[role=search] button")
        expect(page.locator("h1")).to_contain_text("Annabelle Quixotic")
        expect(page.locator("#codes code")).to_contain_text("RW-••••-••••-")
        expect(page.locator("#referrals")).to_contain_text("advocate")
        expect(page.locator("#consent")).to_contain_text(EMAIL)
        balance = int(page.locator("#ledger tbody tr").first.locator("td").last.inner_text().replace(",", ""))

        page.select_option("select[name=direction]", "credit")
        page.fill("#adjust input[name=points]", "150")
        page.fill("#adjust input[name=reason]", "Sorry about the chipped glaze")
        page.click("#adjust button")
        expect(page.locator("#adjusted")).to_have_text(f"+150 points recorded. Balance: {balance + 150:,}.")
        expect(page.locator("#ledger tbody tr").first).to_contain_text("Sorry about the chipped glaze (by Olive)")
        page.select_option("select[name=direction]", "debit")
        page.fill("#adjust input[name=points]", "999999")
        page.fill("#adjust input[name=reason]", "Test a debit below zero")
        page.click("#adjust button")
        expect(page.locator("#adjust .error")).to_contain_text("below zero")
        screenshot(page, "customer", prefix="console", full_page=True)

        page.goto(site + "/console/audit")
        expect(page.locator("table.audit-table tbody tr")).to_have_count(1)
        expect(page.locator("table.audit-table")).to_contain_text("+150 points: Sorry about the chipped glaze")
        screenshot(page, "audit", prefix="console")

        phone = new_page(browser, viewport=PHONE_390, is_mobile=True, has_touch=True)
        phone.context.add_cookies(page.context.cookies())
        for path, name in (("/console/customers", "customers-phone"), ("/console/audit", "audit-phone"),
                           ("/console/customers?q=quixotic", "customer-phone")):
            phone.goto(site + path)
            phone.wait_for_load_state()
            assert_fits(phone)
            screenshot(phone, name, prefix="console")
        assert page.js_errors == [] and phone.js_errors == []  # type: ignore[attr-defined]
