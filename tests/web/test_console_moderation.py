"""The console's moderation page (bot/console/pages/moderation.py): the review, photo/video and social-follow
queues and the flagged referrals, decided through the page with the merchant as actor — and a decision
submitted twice (one after the other, or both at once) pays once, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot.db import Database
from bot.loyalty.ledger import balance, verify_balances
from bot.models import ContentSubmission, LedgerEntry, OutboundMessage, Referral, Review
from tests.web.console import Console, make_merchant
from tests.web.test_console_overview import AGENT, CDN, OWNER, flat, queues, referrals, signed_in


def points(db: Database, customer_id: int) -> int:
    with db.session() as session:
        return balance(session, customer_id)


def ledger_entries(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one())


async def test_the_queues_show_every_pending_item_with_media_as_links_only(console: Console, program, clock) -> None:
    ids = queues(console.db, program, clock)
    referrals(console.db, program, clock, advocate="cleo@example.com")
    await signed_in(console, "owner")
    response = await console.get("/console/moderation")
    html = await response.text()
    assert response.status == 200
    text = flat(html)
    assert "Reviews 2 Photos and videos 2 Social follows 1 Flagged referrals 2" in text
    assert f"#{ids['review']} · Pebble table lamp OE-LT-002 · 4/5" in text
    assert "by ann@example.com via telegram" in text and "media: photo" in text
    assert "&lt;b&gt;lovely&lt;/b&gt;" in html and "<b>lovely" not in html
    assert "Telegram file id: AgACAgIAAxk" in text and "by guest (instagram)" in text
    assert f'<a href="{CDN.replace("&", "&amp;")}" rel="noopener noreferrer nofollow" target="_blank">' in html
    assert 'href="javascript:' not in html and "javascript:alert(1) (not an https link)" in text
    assert "unboxing &lt;i&gt;day&lt;/i&gt;" in html
    assert "<img" not in html and "<video" not in html and "<iframe" not in html
    assert "follows on instagram" in text and "handle: @ann.smith" in text
    assert "held: more than 3 referred purchases from one network" in text
    for queue, key in (("reviews", "review"), ("reviews", "guest"), ("content", "video"), ("content", "photo"),
                       ("social", "claim")):
        assert f'action="/console/moderation/{queue}/{ids[key]}/approve"' in html
        assert f'action="/console/moderation/{queue}/{ids[key]}/reject"' in html


async def test_approving_twice_pays_once(any_console: Console, program, clock) -> None:
    ids = queues(any_console.db, program, clock)
    await signed_in(any_console, "owner")
    path = f"/console/moderation/reviews/{ids['review']}/approve"
    response = await any_console.post(path, {"note": "nice photo"})
    assert response.status == 303
    assert response.headers["Location"] == f"/console/moderation?decided=reviews-{ids['review']}"
    landing = flat(await (await any_console.get(response.headers["Location"])).text())
    assert f"Reviews #{ids['review']} approved: 200 points paid." in landing
    entries = ledger_entries(any_console.db)

    again = await any_console.post(path, {"note": "nice photo"})
    body = flat(await again.text())
    assert again.status == 409 and f"Reviews #{ids['review']}: review #{ids['review']} is already approved." in body
    assert points(any_console.db, ids["ann"]) == 200 and ledger_entries(any_console.db) == entries
    with any_console.db.session() as session:
        review = session.get(Review, ids["review"])
        assert (review.status, review.moderated_by, review.moderation_note, review.points_awarded) == (
            "approved", OWNER, "nice photo", 200)
        assert session.execute(select(func.count()).select_from(OutboundMessage)).scalar_one() == 1
        assert verify_balances(session) == []


async def test_the_same_approval_submitted_twice_at_once_pays_once(any_console: Console, program, clock) -> None:
    ids = queues(any_console.db, program, clock)
    await signed_in(any_console, "owner")
    path = f"/console/moderation/content/{ids['video']}/approve"
    first, second = await asyncio.gather(any_console.post(path), any_console.post(path))
    assert sorted([first.status, second.status]) == [303, 409]
    assert points(any_console.db, ids["bo"]) == program.earning.user_content
    with any_console.db.session() as session:
        assert session.execute(select(func.count()).select_from(LedgerEntry)
                               .where(LedgerEntry.customer_id == ids["bo"])).scalar_one() == 1
        assert session.get(ContentSubmission, ids["video"]).moderated_by == OWNER


async def test_rejecting_needs_a_reason_which_the_shopper_is_told(console: Console, program, clock) -> None:
    ids = queues(console.db, program, clock)
    await signed_in(console, "owner")
    path = f"/console/moderation/content/{ids['photo']}/reject"
    refused = await console.post(path, {"reason": "  "})
    assert refused.status == 400 and "a rejection needs a reason (the shopper is told it)" in await refused.text()
    with console.db.session() as session:
        assert session.get(ContentSubmission, ids["photo"]).status == "pending"
    response = await console.post(path, {"reason": "Blurry, sorry"})
    assert response.status == 303
    text = flat(await (await console.get(response.headers["Location"])).text())
    assert f"Photos and videos #{ids['photo']} rejected." in text and "Photos and videos 1" in text
    with console.db.session() as session:
        submission = session.get(ContentSubmission, ids["photo"])
        assert (submission.status, submission.moderation_note, submission.moderated_by) == (
            "rejected", "Blurry, sorry", OWNER)
        [notice] = session.execute(select(OutboundMessage)).scalars().all()
        assert notice.kind == "content_rejected" and "Blurry, sorry." in notice.text
    assert points(console.db, ids["ann"]) == 0


async def test_social_claims_and_guest_reviews(console: Console, program, clock) -> None:
    ids = queues(console.db, program, clock)
    await signed_in(console, "owner")
    assert (await console.post(f"/console/moderation/social/{ids['claim']}/approve")).status == 303
    assert points(console.db, ids["ann"]) == program.earning.social_follow
    assert (await console.post(f"/console/moderation/reviews/{ids['guest']}/approve")).status == 303
    with console.db.session() as session:
        assert session.get(Review, ids["guest"]).points_awarded == 0  # a guest earns nothing
    missing = await console.post("/console/moderation/social/999/approve")
    assert missing.status == 404 and "There is no item #999 in social follows." in await missing.text()


async def test_flagged_referrals_are_decided_from_the_moderation_page(any_console: Console, program, clock) -> None:
    ann, outcomes = referrals(any_console.db, program, clock)
    held = outcomes[3].referral_id
    before = points(any_console.db, ann)
    await signed_in(any_console, "owner")
    response = await any_console.post(f"/console/referrals/{held}/approve", {"back": "moderation"})
    assert response.status == 303 and response.headers["Location"] == f"/console/moderation?decided=referral-{held}"
    text = flat(await (await any_console.get(response.headers["Location"])).text())
    assert f"Referral #{held} is rewarded: 500 points paid." in text and "Flagged referrals 1" in text
    again = await any_console.post(f"/console/referrals/{held}/approve", {"back": "moderation"})
    assert again.status == 409 and "Moderation" in await again.text()
    assert points(any_console.db, ann) == before + 500


async def test_decisions_need_the_csrf_token_and_an_owner(console: Console, program, clock) -> None:
    ids = queues(console.db, program, clock)
    await signed_in(console, "owner")
    for csrf in ("", "stale-token"):
        response = await console.post(f"/console/moderation/reviews/{ids['review']}/approve", csrf=csrf)
        assert response.status == 403 and "Form expired" in await response.text()
    make_merchant(console.db, AGENT, "agent")
    assert (await console.sign_in(AGENT)).status == 303
    response = await console.post(f"/console/moderation/reviews/{ids['review']}/approve")
    assert response.status == 403 and "Owners only" in await response.text()
    with console.db.session() as session:
        assert session.get(Review, ids["review"]).status == "pending"
        assert session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one() == 0
        assert session.execute(select(Referral)).first() is None


async def test_a_note_or_reason_with_a_nul_character_is_refused(any_console: Console, program, clock) -> None:
    """PostgreSQL refuses NUL in text: a note or reason holding one is refused like a bad note (400) and the
    item stays pending, unpaid and unannounced."""
    ids = queues(any_console.db, program, clock)
    await signed_in(any_console, "owner")
    for decision, field in (("approve", "note"), ("reject", "reason")):
        refused = await any_console.post(f"/console/moderation/reviews/{ids['review']}/{decision}",
                                         {field: "nice\x00photo"})
        body = await refused.text()
        assert refused.status == 400, body[:2000]
        assert f"Reviews #{ids['review']}: the {field} must not contain NUL characters." in flat(body)
        assert "<h1>Moderation" in body and "\x00" not in body
    with any_console.db.session() as session:
        review = session.get(Review, ids["review"])
        assert (review.status, review.moderated_by, review.moderation_note) == ("pending", None, None)
        assert session.execute(select(func.count()).select_from(OutboundMessage)).scalar_one() == 0
    assert ledger_entries(any_console.db) == 0 and points(any_console.db, ids["ann"]) == 0
