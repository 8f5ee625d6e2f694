"""The merchant console in headless Chromium: the real web app (create_app, served on a local port from a
background thread) on a SQLite database of feedback stored by the shopper-side service (bot/feedback/service.py:
real tagging, redaction and transcripts). A merchant signs in through the form, filters and searches the inbox,
opens a transcript, changes a status, adds a note and downloads the CSV; shopper HTML stays text; a post
without the CSRF token, a signed-out visit and an agent on an owner's page are refused.

No Rasa server or model is needed. Screenshots: var/screenshots/console-inbox.png, console-transcript.png.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.db import Database
from bot.feedback.export import COLUMNS
from bot.feedback.service import submit_feedback
from bot.identity import create_customer
from bot.loyalty.program import load_program
from bot.models import Feedback, FeedbackNote, FeedbackTopic, Order
from bot.processes import free_port
from bot.settings import PROJECT_ROOT
from bot.web import create_app
from tests.browser import chromium, new_page, require_chromium, screenshot
from tests.fakes.threaded import ThreadedServers
from tests.web.conftest import web_settings
from tests.web.console import PASSWORD, make_merchant

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

OWNER = "olive@oak-and-ember.example"
AGENT = "ravi@oak-and-ember.example"
XSS_COMMENT = "<script>alert(1)</script> and the tracking page showed <img src=x onerror=alert(1)>"

# (kind, score, comment, channel): what shoppers of a furniture shop say, a few times over.
ANSWERS = [
    ("csat", 1, "The parcel arrived two weeks late and the courier never called.", "widget"),
    ("csat", 5, "Lovely lamp, fast delivery, thank you!", "telegram"),
    ("nps", 2, "Nobody answered my emails about the refund.", "widget"),
    ("csat", 2, "Delivery was slow and the box was crushed.", "instagram"),
    ("nps", 10, "Great quality chair, very comfortable.", "widget"),
    ("csat", 3, "It was ok.", "telegram"),
    ("csat", 2, "The cushion is too small for the sofa.", "widget"),
    ("nps", 4, "Checkout kept crashing on my phone, email me at ann.lee@example.com", "widget"),
    ("csat", 1, "Still waiting for my order, the tracking has not moved in a week.", "telegram"),
    ("nps", 9, "Good price for the quality.", "instagram"),
    ("csat", 4, "Nice rug, the courier was friendly.", "widget"),
    ("nps", 7, "", "telegram"),
]
ROUNDS = 3


@dataclass
class Site:
    url: str
    db: Database
    xss_id: int


class _AppServer:
    """The web app on 127.0.0.1:`port`, for ThreadedServers (its own event loop in a thread)."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.app, self.port = app, port
        self.runner: Optional[web.AppRunner] = None

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _turns(score: int, comment: str, at: datetime) -> List[Dict[str, str]]:
    said = [
        ("bot", "How was your order? Reply 1 to 5 (or 0 to 10).", 3),
        ("shopper", str(score), 2),
        ("bot", "Thanks! What is the main reason for your score?", 2),
    ] + ([("shopper", comment, 1)] if comment else [])
    return [{"role": role, "text": text, "at": (at - timedelta(minutes=ago)).isoformat()} for role, text, ago in said]


def _seed(db: Database) -> int:
    program = load_program(PROJECT_ROOT / "data" / "program.yml")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    names = [("Ann", "Lee"), ("Bo", "Park"), ("Chloé", "Martin"), ("Dev", "Shah"), ("Eva", "Nowak"), ("Finn", "Ross")]
    with db.session(write=True) as session:
        customers = []
        for index, (first, last) in enumerate(names):
            customer = create_customer(session, f"{first.lower()}.{last.lower()}@example.com", first, last)
            order = Order(external_id=str(1040 + index), customer_id=customer.id, total=Decimal("129.00") + index * 40,
                          currency="USD", status="paid", placed_at=now - timedelta(days=40))
            session.add(order)
            session.flush()
            customers.append((customer.id, order.id))
        count = 0
        for round_ in range(ROUNDS):
            for index, (kind, score, comment, channel) in enumerate(ANSWERS):
                count += 1
                at = now - timedelta(days=ROUNDS * len(ANSWERS) - count, hours=index)
                customer_id, order_id = customers[count % len(customers)] if count % 4 else (None, None)
                submit_feedback(session, program, channel=channel, sender_id=f"{channel}-{count}",
                                customer_id=customer_id, order_id=order_id, answers=[(kind, score)],
                                comment=comment or None, turns=_turns(score, comment, at), now=at)
        xss_at = now - timedelta(minutes=30)
        submission = submit_feedback(
            session, program, channel="widget", sender_id="widget-xss", customer_id=None, order_id=None,
            answers=[("csat", 2)], comment=XSS_COMMENT, now=xss_at, turns=_turns(2, XSS_COMMENT, xss_at),
        )
        return submission.feedback[0].id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_chromium()  # no server for nothing
    folder = tmp_path_factory.mktemp("console")
    db = Database(f"sqlite:///{folder / 'rapport.db'}")
    db.create_schema()
    xss_id = _seed(db)
    make_merchant(db, OWNER, "owner", "Olive")
    make_merchant(db, AGENT, "agent", "Ravi")
    port = free_port()
    app = create_app(web_settings(folder), db, program=load_program(PROJECT_ROOT / "data" / "program.yml"))
    servers = ThreadedServers(console=_AppServer(app, port)).start()
    try:
        yield Site(f"http://127.0.0.1:{port}", db, xss_id)
    finally:
        servers.stop()
        db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    with chromium() as running:
        yield running


def _sign_in(page: "Page", site: Site, email: str = OWNER, path: str = "/console/feedback") -> None:
    page.goto(site.url + path)
    assert "/console/login" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()


def _row_ids(page: "Page") -> List[int]:
    return [int(value) for value in page.locator("tr.row-link").evaluate_all("rows => rows.map(r => r.dataset.id)")]


def _ids_where(db: Database, *conditions: Any) -> List[int]:
    with db.session() as session:
        return list(session.execute(
            select(Feedback.id).where(*conditions).order_by(Feedback.created_at.desc(), Feedback.id.desc())
        ).scalars())


def test_an_owner_finds_reads_handles_and_exports_feedback(browser: "Browser", site: Site) -> None:
    from playwright.sync_api import expect

    page = new_page(browser)
    dialogs: List[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _sign_in(page, site, path="/console/feedback?status=new")
    assert page.url == site.url + "/console/feedback?status=new", "back to the page asked for"
    page.goto(site.url + "/console/feedback")
    expect(page.locator("h1")).to_have_text("Feedback")
    assert len(_row_ids(page)) == 25 and page.locator("a[rel=next]").is_visible()
    screenshot(page, "inbox", prefix="console", full_page=True)

    # Negative comments about shipping: what the tagger found, as the database has it.
    page.select_option("select[name=sentiment]", "negative")
    page.select_option("select[name=topic]", "shipping")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    shipping = select(FeedbackTopic.feedback_id).where(FeedbackTopic.topic == "shipping")
    expected = _ids_where(site.db, Feedback.sentiment == "negative", Feedback.id.in_(shipping))
    assert len(expected) >= ROUNDS * 3, "the seeded late and slow deliveries"
    assert "sentiment=negative" in page.url and "topic=shipping" in page.url
    assert _row_ids(page) == expected
    for row in page.locator("tr.row-link").all():
        expect(row).to_contain_text("negative")
        expect(row).to_contain_text("shipping")
    expect(page.locator("select[name=sentiment]")).to_have_value("negative")

    # Full-text search: a word said only in some comments, any sentiment.
    page.click("text=Clear")
    page.fill("input[name=q]", "courier")
    page.press("input[name=q]", "Enter")
    page.wait_for_load_state()
    courier = _ids_where(site.db, Feedback.comment.like("%courier%"))
    assert len(courier) == 2 * ROUNDS and _row_ids(page) == courier
    expect(page.locator("input[name=q]")).to_have_value("courier")

    # Open the first one: its transcript beside it.
    first = courier[0]
    page.locator(f"tr[data-id='{first}'] a.row-anchor").click()
    page.wait_for_load_state()
    assert page.url.startswith(f"{site.url}/console/feedback/{first}")
    turns = page.locator("ol.transcript li")
    expect(turns.first).to_contain_text("How was your order?")
    expect(turns.last).to_contain_text("courier")
    expect(page.locator("ol.transcript li.shopper").first).to_be_visible()
    expect(page.locator(".transcript-info")).to_contain_text("were masked")

    # Status: done, after a Post/Redirect/Get back to this page.
    page.check("input[name=status][value=done]")
    page.click("text=Save status")
    page.wait_for_load_state()
    assert page.url.startswith(f"{site.url}/console/feedback/{first}")
    expect(page.locator("h1 .pill")).to_have_text("Done")

    # A note, listed with its author.
    page.fill("textarea[name=text]", "Called the shopper; courier company warned.")
    page.click("text=Add note")
    page.wait_for_load_state()
    note = page.locator(".note-list li").last
    expect(note).to_contain_text("Called the shopper; courier company warned.")
    expect(note).to_contain_text(OWNER)
    with site.db.session() as session:
        assert session.get(Feedback, first).status == "done"
        assert session.execute(select(FeedbackNote.text).where(FeedbackNote.feedback_id == first)).scalars().all() == \
            ["Called the shopper; courier company warned."]
    screenshot(page, "transcript", prefix="console", full_page=True)

    # Back in the search the row says Done.
    page.click("text=← Feedback inbox")
    page.wait_for_load_state()
    assert "q=courier" in page.url
    expect(page.locator(f"tr[data-id='{first}'] .pill.done")).to_have_text("Done")

    # The CSV of this search.
    with page.expect_download() as info:
        page.click("text=Export CSV")
    download = info.value
    assert re.fullmatch(r"feedback-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8-sig"))))
    assert list(rows[0]) == list(COLUMNS)
    assert [int(row["id"]) for row in rows] == courier
    exported = next(row for row in rows if int(row["id"]) == first)
    assert exported["status"] == "done" and exported["notes"].endswith("Called the shopper; courier company warned.")
    assert exported["transcript"].splitlines()[0].startswith("bot [")
    assert dialogs == [] and page.js_errors == []  # type: ignore[attr-defined]


def test_shopper_html_is_shown_as_text_and_runs_nothing(browser: "Browser", site: Site) -> None:
    from playwright.sync_api import expect

    page = new_page(browser)
    dialogs: List[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _sign_in(page, site)
    row = page.locator(f"tr[data-id='{site.xss_id}']")
    expect(row).to_contain_text("<script>alert(1)</script>")
    page.goto(f"{site.url}/console/feedback/{site.xss_id}")
    expect(page.locator("blockquote.comment")).to_have_text(XSS_COMMENT)
    expect(page.locator("ol.transcript li.shopper").last).to_contain_text(XSS_COMMENT)
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    page.wait_for_load_state("load")  # every image loaded or failed: an onerror would have fired
    assert dialogs == [] and page.js_errors == []  # type: ignore[attr-defined]


def test_without_the_csrf_token_a_post_is_refused(browser: "Browser", site: Site) -> None:
    from playwright.sync_api import expect

    page = new_page(browser)
    _sign_in(page, site)
    target = _ids_where(site.db, Feedback.status == "new")[-1]
    # From the signed-in browser context, with its cookie, without the token.
    response = page.request.post(f"{site.url}/console/feedback/{target}/status", form={"status": "done"})
    assert response.status == 403 and "could not be verified" in response.text()
    # The page's own form with its token taken out.
    page.goto(f"{site.url}/console/feedback/{target}")
    page.locator("form.status-form input[name=csrf_token]").evaluate("input => input.remove()")
    page.check("input[name=status][value=in_progress]")
    page.click("text=Save status")
    page.wait_for_load_state()
    expect(page.locator("h1")).to_have_text("Form expired")
    with site.db.session() as session:
        assert session.get(Feedback, target).status == "new"


def test_signed_out_pages_lead_to_sign_in(browser: "Browser", site: Site) -> None:
    page = new_page(browser)
    for path in ("/console/feedback", f"/console/feedback/{site.xss_id}", "/console/feedback/export.csv"):
        response = page.request.get(site.url + path, max_redirects=0)
        assert response.status == 303 and response.headers["location"].startswith("/console/login?next="), path
    page.goto(site.url + "/console/feedback")
    assert page.url.startswith(site.url + "/console/login?next=")
    assert page.locator("input[name=password]").is_visible()


def test_an_agent_works_the_inbox_but_not_the_owners_pages(browser: "Browser", site: Site) -> None:
    from playwright.sync_api import expect

    page = new_page(browser)
    _sign_in(page, site, AGENT)
    expect(page.locator("header.top .who")).to_contain_text("agent")
    assert len(_row_ids(page)) == 25
    expect(page.locator("header.top nav a", has_text="Loyalty")).to_have_count(0)
    # Agents read customers (to answer handoffs) but the program and the customer export are the owners'.
    for path in ("/console/loyalty", "/console/customers/export.csv"):
        response = page.goto(site.url + path)
        assert response is not None and response.status == 403, path
        expect(page.locator("h1")).to_have_text("Owners only")
