"""Every console page on a phone and on a desktop, in headless Chromium: the real web app on a SQLite store
with something on every page (Annabelle's whole record from tests/unit/test_privacy.py, the feedback of
tests/e2e/test_console_browser.py, a live handoff whose transcript has product cards, quick replies and a long
unbroken link). At 390 × 844 no page scrolls sideways (document.documentElement.scrollWidth ≤ 390 + 1: tables
scroll inside their own box or stack, the navigation wraps); each page is photographed at 1280 and at 390 px
wide into var/screenshots/console-<page>-desktop.png and -phone.png (git-ignored). A console page added
later without being listed here fails the route check. No Rasa server or model is needed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterator, List

import pytest
from rasa_sdk import Tracker
from sqlalchemy import select

from bot.campaigns.service import create_campaign, record_response, send_campaign
from bot.db import Database
from bot.feedback.transcripts import clean_turns, store_transcript
from bot.handoff import add_note, agent_reply, request_handoff, route_shopper_message
from bot.loyalty.program import load_program
from bot.models import Customer, Feedback, HandoffRequest, Merchant
from bot.outbox.service import enqueue
from bot.processes import free_port
from bot.settings import PROJECT_ROOT
from bot.web import create_app
from tests.browser import DESKTOP, chromium, new_page, require_chromium, screenshot
from tests.e2e.test_console_browser import _AppServer, _seed as seed_feedback
from tests.fakes.threaded import ThreadedServers
from tests.unit.test_privacy import EMAIL, seed as seed_customers
from tests.web.conftest import web_settings
from tests.web.console import PASSWORD, make_merchant
from tests.web.test_console_transcripts import _events

OWNER = "olive@oak-and-ember.example"
PHONE_390 = {"width": 390, "height": 844}
LONG_LINK = "https://shop.example/track?parcel=" + "Z9" * 60  # one word wider than any phone
# Any element whose right edge passes the screen's (what to fix when a page is too wide).
TOO_WIDE = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined
         ? '.' + String(e.className).split(' ').join('.') : '') + ' → ' + Math.round(e.getBoundingClientRect().right))
    .slice(0, 6)"""


@dataclass
class Site:
    url: str
    ids: Dict[str, int]


def _pages(ids: Dict[str, int]) -> Dict[str, str]:
    """Every console page (name → address), signed in as an owner."""
    return {
        "home": "/console/",
        "feedback": "/console/feedback",
        "feedback-detail": f"/console/feedback/{ids['feedback']}",
        "insights": "/console/insights",
        "handoffs": "/console/handoffs",
        "handoff": f"/console/handoffs/{ids['handoff']}",
        "customers": "/console/customers",
        "customer": f"/console/customers/{ids['customer']}",
        "segments": "/console/segments?segment=one_time_buyers_likely_to_return",
        "loyalty": "/console/loyalty",
        "referrals": "/console/referrals",
        "quizzes": "/console/quizzes",
        "moderation": "/console/moderation",
        "integrations": "/console/integrations",
        "audit": "/console/audit",
        "outbox": "/console/outbox",
        "campaigns": "/console/campaigns",
        "campaign-draft": f"/console/campaigns/{ids['campaign_draft']}",
        "campaign-sent": f"/console/campaigns/{ids['campaign_sent']}",
        "not-found": "/console/no-such-page",
    }


# The routes _pages covers (by their route pattern), and those that are not pages to look at.
COVERED = {"/console", "/console/", "/console/feedback", "/console/feedback/{id}", "/console/insights",
           "/console/handoffs", "/console/handoffs/{id}", "/console/customers", "/console/customers/{id}", "/console/segments",
           "/console/loyalty", "/console/referrals", "/console/quizzes", "/console/moderation",
           "/console/integrations", "/console/audit", "/console/outbox", "/console/campaigns",
           "/console/campaigns/{id}", "/console/login"}
NOT_PAGES = ("/export.csv", "/events", "/static/", "/logout", "/data-requests/",  # downloads and streams
             "/segments/preview")  # the Segments page's JSON


def _live_handoff(db: Database) -> Dict[str, int]:
    """Annabelle asked for a person on Telegram after a search with cards and a redeemed code; she wrote a
    long link since, an agent answered and left a note."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    tracker = Tracker("7300111222", {}, None, _events(now.timestamp() - 900), False, None, {}, "action_listen")
    from actions.handoff import conversation_turns

    turns = conversation_turns(tracker) + [{"role": "shopper", "text": f"the tracking page {LONG_LINK} is empty",
                                            "at": now - timedelta(minutes=5)}]
    with db.session(write=True) as session:
        ann = session.execute(select(Customer.id).where(Customer.email == EMAIL)).scalar_one()
        for old in session.execute(select(HandoffRequest).where(HandoffRequest.status != "closed")).scalars():
            old.status, old.closed_at = "closed", now
        kept = store_transcript(session, channel="widget", sender_id="ann-widget", customer_id=ann, order_id=None,
                                reason="handoff", turns=turns, redact=True, now=now)
        request = request_handoff(session, "widget", "ann-widget", ann, clean_turns(turns[-6:], redact_text=True),
                                  reason=f"Parcel tracking is empty: {LONG_LINK}", now=now - timedelta(minutes=4))
        request.transcript_id = kept.id
        session.flush()
        handoff = request.id
        # Her low score on the same conversation: the feedback page shows its cards and buttons too.
        answer = Feedback(channel="widget", sender_id="ann-widget", customer_id=ann, kind="csat", score=1,
                          comment="No tracking for a week: " + LONG_LINK, sentiment="negative", topics=["shipping"],
                          search_text="", status="new", goodwill_points=0, transcript_id=kept.id,
                          created_at=now - timedelta(minutes=4), updated_at=now - timedelta(minutes=4))
        session.add(answer)
        session.flush()
        feedback = answer.id
    with db.session(write=True) as session:
        olive = session.execute(select(Merchant).where(Merchant.email == OWNER)).scalar_one()
        agent_reply(session, handoff, olive, "I'm checking with the courier now.", now - timedelta(minutes=3))
        add_note(session, handoff, olive, "Courier ticket " + "#" * 90, now - timedelta(minutes=2))
    route_shopper_message("widget", "ann-widget", "still nothing, and " + LONG_LINK, now - timedelta(minutes=1),
                          database=db)
    with db.session(write=True) as session:  # the Outbox page lists a proactive message with a long text
        enqueue(session, ann, "review_request", "How do you like your lamp? Tell us here: " + LONG_LINK,
                "phone-test:review", now)
    with db.session(write=True) as session:  # a draft with its dry run, and a sent poll with an answer
        program = load_program(PROJECT_ROOT / "data" / "program.yml")
        draft = create_campaign(session, program, name="Points about to expire",
                                text="{first_name}, your {expiring_points} points expire on {expiry_date}: "
                                     + LONG_LINK, audience={"customer_ids": [ann]}, now=now, buttons=["redeem"])
        poll = create_campaign(session, program, name="What should we do more of?", kind="poll",
                               text="What should we do more of?", audience={"customer_ids": [ann]}, now=now,
                               options=["Free shipping", "New colours", "Faster delivery"], holdout_percent=0)
        send_campaign(session, program, poll.id, now)
        record_response(session, program, poll.id, ann, now, option=1)
        drafted, sent = draft.id, poll.id
    return {"customer": ann, "handoff": handoff, "feedback": feedback, "campaign_draft": drafted,
            "campaign_sent": sent}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_chromium()
    folder = tmp_path_factory.mktemp("phone")
    db = Database(f"sqlite:///{folder / 'rapport.db'}")
    db.create_schema()
    program = load_program(PROJECT_ROOT / "data" / "program.yml")
    seed_customers(db, program)
    seed_feedback(db)
    make_merchant(db, OWNER, "owner", "Olive")
    ids = _live_handoff(db)
    app = create_app(web_settings(folder), db, program=program)
    routes = {route.resource.canonical for route in app.router.routes()
              if route.method == "GET" and route.resource is not None}
    port = free_port()
    servers = ThreadedServers(console=_AppServer(app, port)).start()
    try:
        site = Site(f"http://127.0.0.1:{port}", ids)
        site.routes = routes  # type: ignore[attr-defined]
        yield site
    finally:
        servers.stop()
        db.dispose()


def test_every_console_page_is_listed_here(site: Site) -> None:
    pages = {route for route in site.routes if route.startswith("/console")  # type: ignore[attr-defined]
             and not any(part in route for part in NOT_PAGES)}
    assert pages - COVERED == set(), "a console page this test does not open at phone size"


def _sign_in(page, site: Site) -> None:
    page.goto(site.url + "/console/login")
    page.fill("input[name=email]", OWNER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(site.url + "/console/")


def _open_transcripts(page) -> None:
    """Folded conversations (the handoff's "before", the customer's kept ones) opened: measured and shown."""
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")


def test_every_console_page_fits_a_390_px_phone_and_is_photographed(site: Site) -> None:
    with chromium() as browser:
        phone = new_page(browser, viewport=PHONE_390, is_mobile=True, has_touch=True)
        desktop = new_page(browser, viewport=DESKTOP)
        too_wide: List[str] = []

        phone.goto(site.url + "/console/login")  # signed out: the sign-in page
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > PHONE_390["width"] + 1:
            too_wide.append(f"login: {width} px {phone.evaluate(TOO_WIDE)}")
        screenshot(phone, "login-phone", prefix="console", full_page=True)
        desktop.goto(site.url + "/console/login")
        screenshot(desktop, "login-desktop", prefix="console", full_page=True)

        _sign_in(phone, site)
        _sign_in(desktop, site)
        for name, path in _pages(site.ids).items():
            phone.goto(site.url + path)
            phone.wait_for_load_state()
            _open_transcripts(phone)
            assert phone.locator("header.top nav").is_visible(), name
            width = phone.evaluate("document.documentElement.scrollWidth")
            if width > PHONE_390["width"] + 1:
                too_wide.append(f"{name}: {width} px {phone.evaluate(TOO_WIDE)}")
            screenshot(phone, f"{name}-phone", prefix="console", full_page=True)
            desktop.goto(site.url + path)
            desktop.wait_for_load_state()
            _open_transcripts(desktop)
            screenshot(desktop, f"{name}-desktop", prefix="console", full_page=True)
        assert too_wide == [], "pages wider than a 390 px phone:\n" + "\n".join(too_wide)
        # The navigation wraps: every link of the header is on the screen, none cut off to the right.
        for link in phone.locator("header.top nav a").all():
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_390["width"] + 1
        assert phone.js_errors == [] and desktop.js_errors == []  # type: ignore[attr-defined]
