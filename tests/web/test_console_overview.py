"""The console's overview pages through the real app (bot/console/pages/): insights charts, the
handoff queue, the loyalty overview, referral stats with the review queue, and quiz stats — with real data
in SQLite (and PostgreSQL where the numbers come from engine-specific SQL), roles and CSRF."""
from __future__ import annotations

import re
from html import unescape
from datetime import timedelta
from decimal import Decimal
from typing import Any, Dict, List, Tuple

from sqlalchemy import func, select

from bot.advocacy.content import SubmittedMedia, keep_submission
from bot.advocacy.fingerprints import ip_hash
from bot.advocacy.friend_offers import record_click
from bot.advocacy.referrals import attribute_order, referral_code_for
from bot.advocacy.reviews import ReviewableProduct, ReviewDraft, submit_review
from bot.advocacy.social import claim_social_follow
from bot.catalog import load_catalog, upsert_product
from bot.db import Database
from bot.demo import CATALOG_FILE
from bot.feedback.transcripts import store_transcript
from bot.handoff import request_handoff
from bot.identity import create_customer, link_identity
from bot.loyalty.ledger import balance, post_entry
from bot.loyalty.orders import record_paid_order
from bot.models import (
    Customer, HandoffRequest, LedgerEntry, QuizRun, Referral, ReferralDecision, SocialFollowClaim, TierChange,
)
from tests.unit.test_console_insights import MONDAY, add_feedback, at, fill_answers
from tests.web.console import Console, make_merchant

OWNER, AGENT = "olive@shop.example", "aaron@shop.example"
KEY = b"fingerprint-key-for-tests-000000"
OWNER_PAGES = ("/console/loyalty", "/console/referrals", "/console/quizzes", "/console/moderation")


async def signed_in(console: Console, role: str) -> Console:
    email = OWNER if role == "owner" else AGENT
    make_merchant(console.db, email, role)
    assert (await console.sign_in(email)).status == 303
    return console


async def page(console: Console, path: str, params: Any = None, status: int = 200) -> str:
    response = await console.get(path, params)
    body = await response.text()
    assert response.status == status, body[:2000]
    return body


def flat(html: str) -> str:
    """The page's text with tags and runs of whitespace reduced, for assertions on what is read."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --- roles -----------------------------------------------------------------------------------------------


async def test_an_agent_sees_insights_and_handoffs_but_not_the_owner_pages(console: Console) -> None:
    await signed_in(console, "agent")
    for path in ("/console/insights", "/console/handoffs"):
        assert "Sign out" in await page(console, path)
    for path in OWNER_PAGES:
        assert "Owners only" in await page(console, path, status=403)


async def test_the_pages_need_a_signed_in_merchant(console: Console) -> None:
    for path in ("/console/insights", "/console/handoffs", "/console/handoffs/1", *OWNER_PAGES):
        response = await console.get(path)
        assert response.status == 303 and response.headers["Location"].startswith("/console/login?next=")


async def test_every_page_links_to_insights_near_the_top(console: Console) -> None:
    await signed_in(console, "owner")
    for path in ("/console/insights", "/console/handoffs", *OWNER_PAGES):
        html = await page(console, path)
        head = html[html.index("<main>"):html.index("<main>") + 600]
        assert 'href="/console/insights"' in head, path


async def test_odd_ids_and_numbers_in_addresses_are_not_found_or_ignored(console: Console) -> None:
    await signed_in(console, "owner")
    for path in ("/console/handoffs/" + "9" * 12, "/console/handoffs/²"):
        assert (await console.get(path)).status == 404
    assert (await console.post("/console/handoffs/" + "9" * 5000 + "/close")).status == 404
    for path, params in (("/console/handoffs", {"closed": "²", "page": "9" * 5000}),
                         ("/console/referrals", {"decided": "9" * 30}),
                         ("/console/moderation", {"decided": "reviews-²"}),
                         ("/console/quizzes", {"days": "-1"})):
        assert (await console.get(path, params)).status == 200, path


# --- insights --------------------------------------------------------------------------------------------


async def test_insights_show_scores_over_time_distributions_and_topics(any_console: Console) -> None:
    await signed_in(any_console, "agent")
    fill_answers(any_console.db)
    html = await page(any_console, "/console/insights", {"from": "2026-06-01", "to": "2026-06-14"})
    text = flat(html)
    assert "2026-06-01 to 2026-06-14 (weeks start on Monday)" in text
    assert "60% CSAT (4–5) · 5 answers" in text and "+0 NPS · 8 answers" in text
    assert "3 / 2 / 3 promoters / passives / detractors" in text
    # The charts are inline SVG with a text alternative; each point says what it rests on.
    assert html.count('<svg class="chart') == 5 and html.count("<desc id=") == 5
    assert "<title>Jun 1: 50% from 4 answers</title>" in html and "<title>Jun 8: 100% from 1 answer</title>" in html
    assert 'class="point small-sample"' in html  # every week here rests on fewer than 5 answers
    assert "<title>shipping, positive: 1</title>" in html and "<title>shipping, negative: 1</title>" in html
    # And the numbers as tables.
    assert "2026-06-01 – 2026-06-07 4 50% 5 2 1 2 +0" in text
    assert "2026-06-08 – 2026-06-14 1 100% 3 1 1 1 +0" in text
    assert "shipping 2 1 0 1 0" in text and "packaging 1 0 0 0 1" in text

    telegram = flat(await page(any_console, "/console/insights",
                               {"from": "2026-06-01", "to": "2026-06-14", "channel": "telegram"}))
    assert "– CSAT (4–5) · 0 answers" in telegram and "+33 NPS · 6 answers" not in telegram
    assert "+0 NPS · 6 answers" in telegram and "channel telegram" in telegram


async def test_daily_buckets(console: Console) -> None:
    await signed_in(console, "agent")
    fill_answers(console.db)
    html = await page(console, "/console/insights", {"from": "2026-06-01", "to": "2026-06-14", "bucket": "day"})
    text = flat(html)
    assert "2026-06-03 4 50% 0 0 0 0 –" in text and "2026-06-14 1 100% 0 0 0 0 –" in text
    assert '<option value="day" selected>' in html


async def test_without_answers_the_charts_say_so(console: Console) -> None:
    await signed_in(console, "agent")
    text = flat(await page(console, "/console/insights"))
    assert "No CSAT answers in this range." in text and "No NPS answers in this range." in text
    assert "No comments with topics in this range." in text


async def test_a_bad_range_falls_back_to_the_last_twelve_weeks_with_a_notice(console: Console, clock) -> None:
    await signed_in(console, "agent")
    text = flat(await page(console, "/console/insights", {"from": "2026-06-10", "to": "2026-06-01"}, status=400))
    assert "the start of the range is after its end. Showing the last 12 weeks instead." in text
    assert "2026-03-30 to 2026-06-15" in text  # the clock's Monday, 15 June 2026, and 11 weeks before
    text = flat(await page(console, "/console/insights", {"from": "last tuesday"}, status=400))
    assert "the start date must look like 2026-06-01" in text


async def test_a_range_at_the_end_of_the_calendar_is_refused_not_a_crash(any_console: Console, clock) -> None:
    """The day after 9999-12-31 does not exist: such ranges are a bad range (400), not a server error."""
    await signed_in(any_console, "agent")
    for params in ({"from": "9999-12-01", "to": "9999-12-31"},
                   {"from": "9999-12-25", "to": "9999-12-31", "bucket": "day"}):
        text = flat(await page(any_console, "/console/insights", params, status=400))
        assert "the range must end by 9999-12-24. Showing the last 12 weeks instead." in text
        assert "2026-03-30 to 2026-06-15" in text
    text = flat(await page(any_console, "/console/insights", {"from": "9999-12-18", "to": "9999-12-24"}))
    assert "9999-12-13 to 9999-12-24" in text  # weeks start on Monday: 13 December 9999 is one
    text = flat(await page(any_console, "/console/insights", {"to": "0001-01-03"}))
    assert "0001-01-01 to 0001-01-03" in text


async def test_nul_characters_in_the_insights_filters_are_refused(any_console: Console) -> None:
    """PostgreSQL refuses NUL in text: a NUL in the channel filter is a bad filter (400), not a server error."""
    await signed_in(any_console, "agent")
    fill_answers(any_console.db)
    html = await page(any_console, "/console/insights", {"from": "2026-06-01", "to": "2026-06-14", "channel": "w\x00"},
                      status=400)
    text = flat(html)
    assert "the channel must not contain NUL characters. Showing all channels instead." in text
    assert "all channels" in text and "60% CSAT (4–5) · 5 answers" in text and "\x00" not in html
    assert "the start date must look like" in flat(await page(
        any_console, "/console/insights", {"from": "2026-06-01\x00", "bucket": "week\x00"}, status=400))


async def test_labels_from_the_data_are_escaped_in_charts_and_filters(console: Console) -> None:
    await signed_in(console, "agent")
    with console.db.session(write=True) as session:
        add_feedback(session, "csat", 2, at(MONDAY), channel='<img src=x onerror="alert(1)">',
                     sentiment="negative", topics=["<script>alert(2)</script>"])
    html = await page(console, "/console/insights", {"from": "2026-06-01", "to": "2026-06-07"})
    assert "<script>alert(2)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and "&lt;img src=x onerror=" in html


# --- handoffs --------------------------------------------------------------------------------------------


def handoffs(db: Database, clock, email: str = "ann@example.com") -> Tuple[int, int, int]:
    """Three open requests: a customer's with a stored transcript, a guest's, and a newer one; their ids."""
    with db.session(write=True) as session:
        ann = create_customer(session, email, "Ann").id
        link_identity(session, ann, "telegram", "100")
        first = request_handoff(session, "telegram", "100", ann, [
            {"role": "shopper", "text": "where is my order?", "at": "2026-06-15T11:58:00+00:00"},
            {"role": "bot", "text": "Let me check.", "at": "2026-06-15T11:58:02+00:00"},
            {"role": "shopper", "text": "I want a person", "at": "2026-06-15T11:59:00+00:00"},
        ])
        transcript = store_transcript(
            session, channel="telegram", sender_id="100", customer_id=ann, order_id=None, reason="handoff",
            turns=[{"role": "shopper", "text": "hi, I'm ann@example.com", "at": "2026-06-15T11:50:00+00:00"},
                   {"role": "bot", "text": "Hello Ann!", "at": "2026-06-15T11:50:01+00:00"},
                   {"role": "shopper", "text": "I want a person", "at": "2026-06-15T11:59:00+00:00"}],
            redact=True, now=clock.current)
        first.transcript_id = transcript.id
    clock.advance(minutes=5)
    with db.session(write=True) as session:
        guest = request_handoff(session, "widget", "w-7", None, [{"role": "shopper", "text": "<b>human</b> please"}])
    clock.advance(minutes=5)
    with db.session(write=True) as session:
        newest = request_handoff(session, "instagram", "ig-9", None, [{"role": "shopper", "text": "agent"}])
    return first.id, guest.id, newest.id


async def test_the_queue_lists_open_requests_oldest_first_with_their_last_messages(console: Console, clock) -> None:
    first, guest, newest = handoffs(console.db, clock)
    await signed_in(console, "agent")
    html = await page(console, "/console/handoffs")
    positions = [html.index(f'id="handoff-{request_id}"') for request_id in (first, guest, newest)]
    assert positions == sorted(positions)
    text = flat(html)
    # Who, their first words, the channel, how long they have waited (since their last message), who has it.
    assert f"#{first} · Ann where is my order? telegram 10 min nobody yet" in text
    assert f"#{guest} · Guest <b>human</b> please widget 5 min nobody yet" in text
    assert f"#{newest} · Guest agent instagram under a minute nobody yet" in text
    assert "&lt;b&gt;human&lt;/b&gt; please" in html and "<b>human" not in html
    assert "Open 3" in text and "Waiting for the shopper 0" in text and "Closed 0" in text
    assert "Handoffs 3" in text, "the header counts open handoffs on every page"
    assert 'href="/console/handoffs/%d"' % first in html


async def test_a_request_shows_its_stored_transcript_or_else_its_last_messages(console: Console, clock) -> None:
    first, guest, _ = handoffs(console.db, clock)
    await signed_in(console, "agent")
    text = flat(await page(console, f"/console/handoffs/{first}"))
    assert ("the conversation as kept when the shopper asked (3 messages; e-mails, phone and card numbers masked)"
            in text)
    assert "hi, I'm [email]" in text and "Hello Ann!" in text and "ann@example.com>" in text
    html = await page(console, f"/console/handoffs/{guest}")
    assert "only the last messages were kept" in html
    assert '<span class="text">&lt;b&gt;human&lt;/b&gt; please</span>' in html
    assert "There is no handoff request #999." in await page(console, "/console/handoffs/999", status=404)


async def test_closing_a_request_records_who_and_when_once(any_console: Console, clock) -> None:
    first, _, _ = handoffs(any_console.db, clock)
    await signed_in(any_console, "agent")
    response = await any_console.post(f"/console/handoffs/{first}/close")
    assert response.status == 303 and response.headers["Location"] == f"/console/handoffs?closed={first}"
    closed_at = clock.current
    assert f"Request #{first} is closed (by {AGENT}, 2026-06-15 12:10 UTC)." in flat(
        await page(any_console, response.headers["Location"]))
    # A second close (double submit, or another merchant) changes nothing.
    clock.advance(minutes=3)
    assert (await any_console.post(f"/console/handoffs/{first}/close")).status == 303
    with any_console.db.session() as session:
        request = session.get(HandoffRequest, first)
        assert (request.status, request.closed_by, request.closed_at) == ("closed", AGENT, closed_at)
    # The shopper can ask again: a new open request beside the closed one (one open per sender).
    with any_console.db.session(write=True) as session:
        again = request_handoff(session, "telegram", "100", None, [{"role": "shopper", "text": "me again"}])
    assert again.id != first
    assert (await any_console.post(f"/console/handoffs/{again.id}/close")).status == 303
    text = flat(await page(any_console, "/console/handoffs", {"status": "closed"}))
    assert "Open 2" in text and "Closed 2" in text
    assert text.index(f"#{again.id} ·") < text.index(f"#{first} ·")  # most recently closed first
    assert "There is no handoff request #999." in flat(
        await (await any_console.post("/console/handoffs/999/close")).text())


async def test_closing_without_the_csrf_token_is_refused(console: Console, clock) -> None:
    first, _, _ = handoffs(console.db, clock)
    await signed_in(console, "agent")
    response = await console.post(f"/console/handoffs/{first}/close", csrf="")
    assert response.status == 403 and "Form expired" in await response.text()
    response = await console.post(f"/console/handoffs/{first}/close", csrf="not-the-token")
    assert response.status == 403
    with console.db.session() as session:
        assert session.get(HandoffRequest, first).status == "open"


# --- loyalty ---------------------------------------------------------------------------------------------


async def test_the_loyalty_overview_counts_members_tiers_points_and_liability(any_console: Console, clock) -> None:
    db = any_console.db
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        bo = create_customer(session, "bo@example.com", "Bo").id
        link_identity(session, ann, "telegram", "100")
        for key, (customer, points, kind) in enumerate([(ann, 2500, "earn"), (ann, -1000, "redeem"),
                                                        (bo, 400, "earn"), (bo, -150, "expire"),
                                                        (bo, -50, "reverse")]):
            post_entry(session, customer, points, kind=kind, reason="test", source="test", idempotency_key=str(key))
        session.get(Customer, ann).tier_name = "Gold"
        session.add(TierChange(customer_id=ann, from_tier="Silver", to_tier="Gold", direction="up",
                               reason="order 1042", created_at=clock.current))
    await signed_in(any_console, "owner")
    text = flat(await page(any_console, "/console/loyalty"))
    assert "2 members (customers)" in text and "1 linked to a chat (50%)" in text
    assert "1,700 points members can spend" in text and "$17 liability (USD)" in text
    assert "valued at $0.01 a point" in text and "“$5 off” ($5 for 500 points)" in text
    assert "Issued (earned, positive adjustments) 2,900" in text and "Redeemed for rewards −1,000" in text
    assert "Expired −150" in text and "−50" in text and "Outstanding (ledger) 1,700" in text
    assert ("Bronze 0 0% Silver 0 0% Gold 1 50% Platinum 0 0% "
            "not evaluated yet (no tier computed: no order since joining) 1 50%") in text
    assert "telegram 1" in text
    assert "2026-06-15 12:00 UTC ann@example.com Silver → Gold order 1042" in text
    assert "run .venv/bin/python -m bot ledger verify" not in text


# --- referrals -------------------------------------------------------------------------------------------


def referrals(db: Database, program, clock, advocate: str = "ann@example.com") -> Tuple[int, List[Any]]:
    """An advocate, one click, five friends ordering from one network (3 rewarded, 2 held for review) and one
    friend whose order was too small (rejected). (advocate id, outcomes of the five)."""
    now = clock.current
    with db.session(write=True) as session:
        ann = create_customer(session, advocate, "Ann").id
        record_paid_order(session, program, ann, "adv-1", Decimal("40.00"), now)
        code = referral_code_for(session, ann, now).code
        record_click(session, program, code, ip_hash("198.51.100.7", KEY), "Mozilla/5.0", now)
    outcomes = []
    for index, total in enumerate(["60.00"] * 5 + ["24.00"]):
        with db.session(write=True) as session:
            friend = create_customer(session, f"friend{index}@example.com").id
            recorded = record_paid_order(session, program, friend, f"F{index}", Decimal(total), now)
            recorded.order.ip_hash = ip_hash(f"2001:db8:aa:bb::{index + 1}" if index < 5 else "192.0.2.1", KEY)
            session.flush()
            outcomes.append(attribute_order(session, program, recorded.order, referral_code=code, now=now))
    assert [outcome.status for outcome in outcomes] == ["rewarded"] * 3 + ["review"] * 2 + ["rejected"]
    return ann, outcomes


async def test_referral_stats_funnel_and_review_queue(console: Console, program, clock) -> None:
    _, outcomes = referrals(console.db, program, clock)
    await signed_in(console, "owner")
    html = await page(console, "/console/referrals")
    text = flat(html)
    assert "1 link clicks 6 friends joined 6 first orders 3 rewarded 2 waiting for your review 1 rejected" in text
    assert "1,500 points paid to advocates" in text
    assert "friend's first order $24 was below the $30 minimum 1" in text
    assert "<title>Rewarded: 3</title>" in html and "<title>Link clicks: 1</title>" in html
    for outcome in outcomes[3:5]:
        assert f'action="/console/referrals/{outcome.referral_id}/approve"' in html
    assert "held: more than 3 referred purchases from one network" in text
    assert f'action="/console/referrals/{outcomes[0].referral_id}/approve"' not in html


async def test_approving_and_rejecting_held_referrals(any_console: Console, program, clock) -> None:
    ann, outcomes = referrals(any_console.db, program, clock)
    held, other = outcomes[3].referral_id, outcomes[4].referral_id
    with any_console.db.session() as session:
        before = balance(session, ann)
    await signed_in(any_console, "owner")

    response = await any_console.post(f"/console/referrals/{held}/approve", {"back": "referrals"})
    assert response.status == 303 and response.headers["Location"] == f"/console/referrals?decided={held}"
    assert f"Referral #{held} is rewarded: approved after review (500 points to the advocate)." in flat(
        await page(any_console, response.headers["Location"]))
    again = await any_console.post(f"/console/referrals/{held}/approve")
    assert again.status == 409 and "only a referral in review can be approved" in await again.text()

    refused = await any_console.post(f"/console/referrals/{other}/reject", {"reason": "   "})
    assert refused.status == 400 and "a rejection needs a reason" in await refused.text()
    response = await any_console.post(f"/console/referrals/{other}/reject", {"reason": "same flat, same card"})
    assert response.status == 303
    with any_console.db.session() as session:
        assert balance(session, ann) == before + 500
        assert session.get(Referral, other).status == "rejected"
        actors = session.execute(select(ReferralDecision.decision, ReferralDecision.actor)
                                 .where(ReferralDecision.actor.like("merchant:%")).order_by(ReferralDecision.id)).all()
        assert actors == [("approved", f"merchant:{OWNER}"), ("rejected", f"merchant:{OWNER}")]
        assert session.execute(select(func.count()).select_from(LedgerEntry)
                               .where(LedgerEntry.source == "referral")).scalar_one() == 4
    assert "Referral #999: no referral with id 999" in flat(
        await (await any_console.post("/console/referrals/999/approve")).text())


async def test_a_rejection_reason_with_a_nul_character_is_refused(any_console: Console, program, clock) -> None:
    """PostgreSQL refuses NUL in text: such a reason is refused like a missing one (400), nothing written."""
    _, outcomes = referrals(any_console.db, program, clock)
    held = outcomes[3].referral_id
    await signed_in(any_console, "owner")
    for back, heading in (("referrals", "Referrals"), ("moderation", "Moderation")):
        refused = await any_console.post(f"/console/referrals/{held}/reject", {"reason": "same\x00card", "back": back})
        body = await refused.text()
        assert refused.status == 400, body[:2000]
        assert f"Referral #{held}: the reason must not contain NUL characters" in flat(body)
        assert f"<h1>{heading}" in body and "\x00" not in body
    with any_console.db.session() as session:
        assert session.get(Referral, held).status == "review"
        assert session.execute(select(func.count()).select_from(ReferralDecision)
                               .where(ReferralDecision.actor.like("merchant:%"))).scalar_one() == 0


async def test_referral_decisions_need_the_csrf_token_and_an_owner(console: Console, program, clock) -> None:
    _, outcomes = referrals(console.db, program, clock)
    held = outcomes[3].referral_id
    await signed_in(console, "owner")
    assert (await console.post(f"/console/referrals/{held}/approve", csrf="")).status == 403
    with console.db.session() as session:
        assert session.get(Referral, held).status == "review"
    make_merchant(console.db, AGENT, "agent")
    assert (await console.sign_in(AGENT)).status == 303
    response = await console.post(f"/console/referrals/{held}/approve")
    assert response.status == 403 and "Owners only" in await response.text()
    with console.db.session() as session:
        assert session.get(Referral, held).status == "review"


# --- moderation queues (tests/web/test_console_moderation.py decides them) -------------------------------

LAMP = ReviewableProduct("OE-LT-002", "Pebble table lamp", "1001")
CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=abc"


def queues(db: Database, program, clock) -> Dict[str, int]:
    """One pending item in each queue (a photo review, an Instagram video with a non-https URL among its links,
    a Telegram photo, a social-follow claim), plus a guest's review; their ids and the customers'."""
    now = clock.current
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        bo = create_customer(session, "bo@example.com", "Bo").id
        photo = SubmittedMedia("telegram", "5001", "photo", "telegram:AgACAgIAAxk", [], "")
        review = submit_review(session, ReviewDraft("telegram", "5001", ann, LAMP, 4,
                                                    "Warm light, <b>lovely</b> glaze.", photo), now)[0].id
        guest = submit_review(session, ReviewDraft("instagram", "1784", None, LAMP, 2, "Too small."), now)[0].id
        video = keep_submission(session, SubmittedMedia("instagram", "1785", "video", "sha256:ab",
                                                        [CDN, "javascript:alert(1)"], "unboxing <i>day</i>"),
                                bo, now)[0].id
        tg_photo = keep_submission(session, SubmittedMedia("telegram", "5001", "photo", "telegram:BQACAgIAAxk", [],
                                                           ""), ann, now)[0].id
        claim_social_follow(session, program, ann, "insta", "@ann.smith", "telegram", now)
        claim = session.execute(select(SocialFollowClaim.id)).scalar_one()
    return {"ann": ann, "bo": bo, "review": review, "guest": guest, "video": video, "photo": tg_photo, "claim": claim}



# --- quizzes ---------------------------------------------------------------------------------------------


def quiz_runs(db: Database, clock) -> None:
    """The demo catalog (so the quiz file loads) and quiz runs: yesterday two completed and two unfinished
    (one stopped at the work-style question, one at the first), and one completed 60 days ago."""
    now = clock.current
    with db.session(write=True) as session:
        for product in load_catalog(CATALOG_FILE, "USD"):
            upsert_product(session, product, "https://shop.example", now)
        runs = [
            ("completed", {"room": ["office"], "work-style": ["standing"], "materials": ["oak"], "extras": [],
                           "budget": ["under-400"]}, None, ["OE-DK-001", "OE-LT-002"]),
            ("completed", {"room": ["living"], "living-space": ["small"], "materials": ["oak"], "extras": ["light"],
                           "budget": ["any"]}, None, ["OE-LT-002"]),
            ("in_progress", {"room": ["office"]}, "work-style", []),
            ("in_progress", {}, "room", []),
        ]
        for index, (status, answers, current, skus) in enumerate(runs):
            session.add(QuizRun(quiz_id="room-makeover", channel="widget", sender_id=f"s{index}", status=status,
                                stage="done" if status == "completed" else "questions", answers=answers,
                                current_question=current, pending=[], misses=0,
                                results=[{"sku": sku, "score": 1, "reasons": []} for sku in skus],
                                relaxed=[], points_awarded=25 if status == "completed" else 0,
                                started_at=now - timedelta(days=1), updated_at=now,
                                completed_at=now - timedelta(days=1) + timedelta(minutes=2)
                                if status == "completed" else None))
        session.add(QuizRun(quiz_id="room-makeover", channel="widget", sender_id="old", status="completed",
                            stage="done", answers={}, pending=[], misses=0, results=[], relaxed=[], points_awarded=0,
                            started_at=now - timedelta(days=60), updated_at=now))


async def test_quiz_stats_show_completion_drop_off_and_top_products(console: Console, clock) -> None:
    quiz_runs(console.db, clock)
    await signed_in(console, "owner")
    text = flat(await page(console, "/console/quizzes"))
    assert "Room makeover (room-makeover)" in text and "could not be read" not in text
    assert "4 starts 2 completions 50% completion rate 2 / 0 unfinished / started over 2m 00s median time" in text
    assert "50 points awarded" in text
    assert "Q1 Which room are we making over? 4 3 0 1 25%" in text
    assert re.search(r"Q\d .*? 2 1 0 1 50%", text)  # work-style: reached by 2, one of them stopped there
    assert re.search(r"1 OE-LT-002 \S.*? 2 1 2 OE-DK-001 \S.*? 1 1", text)
    ninety = flat(await page(console, "/console/quizzes", {"days": "90"}))
    assert "5 starts 3 completions 60% completion rate" in ninety


async def test_quizzes_without_runs(console: Console) -> None:
    await signed_in(console, "owner")
    text = flat(await page(console, "/console/quizzes"))
    # The test store has no catalog, so the quiz file does not load: said, not hidden.
    assert "The quiz files could not be read" in text and "No quiz has runs yet." in text



# --- styles ----------------------------------------------------------------------------------------------


def css_selectors(css: str) -> List[str]:
    """Every selector of a style sheet without at-rules (comments dropped, selector lists split)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return [selector.strip() for block in re.findall(r"([^{}]+)\{[^{}]*\}", css) for selector in block.split(",")]


async def test_the_overview_styles_apply_only_inside_the_overview_pages(console: Console, clock) -> None:
    """overview.css is loaded on every console page: each of its rules is scoped to the overview pages'
    wrapper, so its .count, .actions or .notice cannot restyle the inbox, the customers or sign-in pages."""
    await signed_in(console, "owner")
    response = await console.get("/console/static/overview.css")
    assert response.status == 200
    selectors = css_selectors(await response.text())
    assert len(selectors) > 50 and "@" not in "".join(selectors)
    assert [s for s in selectors if s != ".overview-page" and not s.startswith(".overview-page ")] == []
    first = handoffs(console.db, clock)[0]
    for path in ("/console/insights", "/console/handoffs", f"/console/handoffs/{first}", *OWNER_PAGES):
        html = await page(console, path)
        assert html.count('class="overview-page"') == 1, path
        body = html[html.index("<main>") + len("<main>"):html.index("</main>")].strip()
        assert body.startswith('<div class="overview-page">') and body.endswith("</div>"), path
        assert " style=" not in html, path  # no inline styles: the console's CSP forbids them
    for path in ("/console/feedback", "/console/customers"):
        assert "overview-page" not in await page(console, path), path


# --- in a browser ----------------------------------------------------------------------------------------


def busy_store(db: Database, program, clock) -> None:
    """Twelve weeks of feedback (more each week, some small weeks), handoffs, referrals and queued items."""
    now = clock.current
    comments = [("Fast delivery, lovely lamp", "positive", ["shipping", "product"]),
                ("arrived late and the box was crushed", "negative", ["shipping", "packaging"]),
                ("fair price", "neutral", ["price"]), ("support never answered", "negative", ["support"]),
                (None, None, [])]
    with db.session(write=True) as session:
        for day in range(84):
            when = now - timedelta(days=day, hours=1)
            answers = 0 if day in (40, 41, 42, 43, 44, 45) else 1 + (84 - day) // 12 + day % 3
            for index in range(answers):
                comment, sentiment, topics = comments[(day + index) % len(comments)]
                add_feedback(session, "csat", 5 - (day + index * 3) % 5 if day % 4 else 5 - index % 2, when,
                             channel=("widget", "telegram", "instagram")[index % 3], comment=comment,
                             sentiment=sentiment, topics=topics, sender_id=f"s{day}-{index}")
                add_feedback(session, "nps", 10 - (day * 3 + index * 7) % 11, when, sender_id=f"n{day}-{index}",
                             channel=("widget", "telegram")[index % 2])
    quiz_runs(db, clock)
    handoffs(db, clock, email="hana@example.com")
    referrals(db, program, clock, advocate="cleo@example.com")
    queues(db, program, clock)


async def test_the_pages_in_a_browser_render_their_charts_without_breaking_the_csp(
    console: Console, program, clock, tmp_path,
) -> None:
    """Headless Chromium signs in and opens every overview page: no CSP violation (no inline style or
    script), no script error, charts drawn at a readable size. Screenshots: var/screenshots/console-*.png."""
    import asyncio

    from tests.browser import SCREENSHOTS, chromium, new_page, require_chromium
    from tests.web.console import PASSWORD

    require_chromium()
    busy_store(console.db, program, clock)
    make_merchant(console.db, OWNER, "owner")
    base = str(console.client.make_url("/console")).rstrip("/")

    def browse() -> Dict[str, Any]:
        seen: Dict[str, Any] = {"console": [], "widths": {}, "failed": []}
        with chromium() as browser:
            tab = new_page(browser, viewport={"width": 1280, "height": 900})
            tab.on("console", lambda message: seen["console"].append(f"{message.type}: {message.text}"))
            tab.on("response", lambda response: seen["failed"].append(response.url) if response.status >= 400 else None)
            tab.goto(f"{base}/login?next=/console/insights")
            tab.fill("input[name=email]", OWNER)
            tab.fill("input[name=password]", PASSWORD)
            tab.click("form[action='/console/login'] button[type=submit]")
            tab.wait_for_url("**/console/insights")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for name in ("insights", "handoffs", "loyalty", "referrals", "quizzes", "moderation"):
                tab.goto(f"{base}/{name}")
                seen["widths"][name] = [box["width"] for box in
                                        (svg.bounding_box() for svg in tab.locator("svg.chart").all()) if box]
                tab.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)
            seen["errors"] = list(tab.js_errors)  # type: ignore[attr-defined]
        return seen

    seen = await asyncio.to_thread(browse)
    assert seen["errors"] == []
    # The browser asks for /favicon.ico on its own; the console has none.
    assert [url for url in seen["failed"] if not url.endswith("/favicon.ico")] == []
    assert not [line for line in seen["console"] if "Content Security Policy" in line
                or line.startswith("error") and "status of 404" not in line]
    assert len(seen["widths"]["insights"]) == 5 and min(seen["widths"]["insights"]) > 300
    assert seen["widths"]["loyalty"] and seen["widths"]["referrals"] and seen["widths"]["quizzes"]
