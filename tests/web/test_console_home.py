"""The console's home page (/console/) through the real app: today's numbers — open handoffs and the oldest
wait, feedback needing attention, CSAT and NPS this week, pending moderation and the points liability —
each linking to the queue it counts and agreeing with that queue; agents see only what they can open; the
web app's root sends a person to the console instead of a JSON 404."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Dict

from bot.advocacy.content import SubmittedMedia, keep_submission
from bot.handoff import request_handoff
from bot.identity import create_customer
from bot.loyalty.ledger import post_entry
from bot.models import Feedback
from tests.unit.test_console_insights import add_feedback
from tests.web.console import Console
from tests.web.test_console_overview import flat, page, signed_in


def _seed(console: Console, now) -> None:
    with console.db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        post_entry(session, ann, 2500, kind="earn", reason="test", source="test", idempotency_key="a")
        # Handoffs: two open (one waiting 3 h since the shopper's last message), one waiting for the shopper.
        request_handoff(session, "widget", "w-1", ann, [], now=now - timedelta(hours=3))
        request_handoff(session, "telegram", "t-1", None, [], now=now - timedelta(minutes=20))
        request_handoff(session, "widget", "w-2", None, [], now=now - timedelta(days=2)).status = "waiting"
        request_handoff(session, "widget", "w-3", None, [], now=now - timedelta(days=5)).status = "closed"
        # This week (the clock's Monday): CSAT 5, 4, 2, 1 → 50 %; NPS 10, 3 → 0. Low and new: 2, 1 and 3.
        for kind, score in (("csat", 5), ("csat", 4), ("csat", 2), ("csat", 1), ("nps", 10), ("nps", 3)):
            add_feedback(session, kind, score, now - timedelta(hours=1))
        session.query(Feedback).filter(Feedback.kind == "csat", Feedback.score == 1).update({"status": "done"})
        add_feedback(session, "csat", 5, now - timedelta(days=3))  # last week: not this week's
        add_feedback(session, "nps", 0, now - timedelta(days=3))  # last week's, low and new: needs attention
        keep_submission(session, SubmittedMedia("telegram", "5001", "photo", "telegram:AgAC", [], ""), ann, now)


def _stat(html: str, name: str) -> Dict[str, str]:
    found = re.search(rf'<a class="stat" id="today-{name}" href="([^"]+)">(.*?)</a>', html, re.S)
    assert found, f"no {name} number on the home page"
    return {"href": found.group(1).replace("&amp;", "&"), "text": flat(found.group(2))}


async def test_an_owner_sees_todays_numbers_each_linking_to_its_queue(any_console: Console, clock) -> None:
    _seed(any_console, clock.current)
    await signed_in(any_console, "owner")
    html = await page(any_console, "/console/")

    handoffs = _stat(html, "handoffs")
    assert handoffs["text"].startswith("2 open handoffs")
    assert "oldest waiting 3 h" in handoffs["text"] and "1 waiting for the shopper" in handoffs["text"]
    assert handoffs["href"] == "/console/handoffs"
    queue = await page(any_console, handoffs["href"])
    assert queue.count('href="/console/handoffs/') >= 2, "the queue lists the two open requests"

    feedback = _stat(html, "feedback")
    assert feedback["text"].startswith("3 feedback needing attention")
    assert feedback["href"] == "/console/feedback?band=low&status=new"
    assert "3 feedback match these filters" in flat(await page(any_console, feedback["href"]))

    scores = _stat(html, "scores")
    assert scores["text"].startswith("50% · +0 CSAT · NPS this week")
    assert "since 2026-06-15: 4 CSAT, 2 NPS answers" in scores["text"]
    insights = flat(await page(any_console, scores["href"]))
    assert "from=2026-06-15" in scores["href"] and "50%" in insights

    moderation = _stat(html, "moderation")
    assert moderation["text"].startswith("1 waiting for moderation") and moderation["href"] == "/console/moderation"
    liability = _stat(html, "liability")
    assert liability["text"].startswith("$25 points liability (USD)") and liability["href"] == "/console/loyalty"
    assert "$25 liability (USD)" in flat(await page(any_console, liability["href"]))  # the same number as its page


async def test_an_agent_sees_only_the_numbers_of_pages_they_can_open(console: Console, clock) -> None:
    _seed(console, clock.current)
    await signed_in(console, "agent")
    html = await page(console, "/console/")
    for name in ("handoffs", "feedback", "scores"):
        _stat(html, name)
    assert 'id="today-moderation"' not in html and 'id="today-liability"' not in html


async def test_an_empty_store_says_nobody_is_waiting(console: Console, clock) -> None:
    await signed_in(console, "owner")
    text = flat(await page(console, "/console"))
    assert "0 open handoffs" in text and "nobody is waiting" in text and "– · – CSAT · NPS this week" in text


async def test_the_root_address_leads_a_person_to_the_console(console: Console) -> None:
    response = await console.get("/")
    assert response.status == 302 and response.headers["Location"] == "/console/"
    followed = await console.client.get("/")
    assert followed.status == 200 and "/console/login" in str(followed.url)
    assert "text/html" in followed.headers["Content-Type"]
    assert (await console.get("/console/")).headers["Location"] == "/console/login"
