"""The feedback inbox in the console over HTTP (bot/console/pages/feedback.py): every filter, search on SQLite and
PostgreSQL, pages, bad input, a feedback with its transcript, status and notes (with and without the CSRF
token), 404, what an agent may do, and the streamed CSV export."""
from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Dict, List

import pytest
from sqlalchemy import func, select

from bot.console.pages import feedback as feedback_pages
from bot.db import Database
from bot.feedback.export import COLUMNS
from bot.feedback.inbox import PAGE_SIZE
from bot.identity import create_customer
from bot.models import Feedback, FeedbackNote, HandoffRequest, Order
from tests.unit.test_feedback_inbox import add_feedback
from tests.web.console import Console, make_merchant

DAY = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
_ROW = re.compile(r'<tr class="row-link" data-id="(\d+)"')


@dataclass
class Shop:
    """Eight feedback, one a day from 2026-06-01 (a) to 2026-06-08 (h)."""

    ids: Dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.ids[name]

    def of(self, names: str) -> List[int]:
        return [self.ids[name] for name in names]


def seed(db: Database) -> Shop:
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann")
        ann.last_name = "Lee"
        bo = create_customer(session, "bo@example.com", "Bo")
        order = Order(external_id="1042", customer_id=ann.id, total=Decimal("189.00"), currency="USD", status="paid",
                      placed_at=DAY - timedelta(days=5))
        session.add(order)
        session.flush()
        handoff = HandoffRequest(channel="widget", sender_id="ann-web", customer_id=ann.id, status="open",
                                 last_messages=[], requested_at=DAY)
        session.add(handoff)
        session.flush()

        def day(n: int) -> datetime:
            return DAY + timedelta(days=n)

        ids = {
            "a": add_feedback(session, at=day(0), channel="widget", kind="csat", score=1, customer_id=ann.id,
                              order_id=order.id, comment="Parcel arrived late and the box was crushed",
                              sentiment="negative", topics=["shipping", "packaging"], sender_id="ann-web",
                              goodwill_points=200, handoff_request_id=handoff.id).id,
            "b": add_feedback(session, at=day(1), channel="telegram", kind="nps", score=3,
                              comment="Support never answered my emails", sentiment="negative", topics=["support"],
                              status="in_progress").id,
            "c": add_feedback(session, at=day(2), channel="instagram", kind="nps", score=10,
                              comment="Love the lamp, fast delivery", sentiment="positive",
                              topics=["product", "shipping"], status="done").id,
            "d": add_feedback(session, at=day(3), channel="widget", kind="csat", score=3, comment=None,
                              sentiment=None).id,
            "e": add_feedback(session, at=day(4), channel="telegram", kind="csat", score=5, customer_id=bo.id,
                              comment="Great quality chair", sentiment="positive", topics=["quality", "product"]).id,
            "f": add_feedback(session, at=day(5), channel="widget", kind="nps", score=7, comment="It was fine",
                              sentiment="neutral", status="done",
                              turns=[{"role": "shopper", "text": "The courier left it at the door",
                                      "at": day(5).isoformat()}]).id,
            "g": add_feedback(session, at=day(6), channel="widget", kind="csat", score=2,
                              comment='=HYPERLINK("http://evil.example","refund")', sentiment="negative",
                              topics=["price"]).id,
            "h": add_feedback(session, at=day(7), channel="widget", kind="csat", score=4,
                              comment="<script>alert(1)</script> fine <img src=x onerror=alert(1)>",
                              sentiment="neutral").id,
        }
    return Shop(ids)


async def rows_of(console: Console, params: Dict[str, str]) -> List[int]:
    response = await console.get("/console/feedback", params)
    assert response.status == 200, (params, await response.text())
    return [int(found) for found in _ROW.findall(await response.text())]


async def signed_in(console: Console, role: str = "owner") -> Console:
    email = f"{role}@shop.example"
    make_merchant(console.db, email, role)
    assert (await console.sign_in(email)).status == 303
    return console


FILTERS = [
    ({}, "hgfedcba"),
    ({"from": "2026-06-02", "to": "2026-06-04"}, "dcb"),
    ({"from": "2026-06-07"}, "hg"),
    ({"to": "2026-06-01"}, "a"),
    ({"channel": "telegram"}, "eb"),
    ({"kind": "nps"}, "fcb"),
    ({"band": "low"}, "gba"),
    ({"band": "medium"}, "fd"),
    ({"band": "high"}, "hec"),
    ({"score_min": "3", "score_max": "4"}, "hdb"),
    ({"kind": "csat", "score_max": "2"}, "ga"),
    ({"sentiment": "negative"}, "gba"),
    ({"topic": "shipping"}, "ca"),
    ({"with_comment": "1"}, "hgfecba"),
    ({"status": "done"}, "fc"),
    ({"status": "new"}, "hgeda"),
    ({"q": "late"}, "a"),
    ({"q": "courier"}, "f"),  # said in the transcript only
    ({"q": "LAMP deliv"}, "c"),  # every word, the last one as a prefix
    ({"sentiment": "negative", "topic": "shipping"}, "a"),
    ({"band": "low", "status": "new", "channel": "widget", "q": "refund"}, "g"),
    ({"q": "nothing like this"}, ""),
]


async def test_every_filter_on_sqlite_and_postgresql(any_console: Console) -> None:
    shop = seed(any_console.db)
    await signed_in(any_console)
    for params, expected in FILTERS:
        assert await rows_of(any_console, params) == shop.of(expected), params


async def test_the_inbox_shows_each_row_and_keeps_the_filter_in_its_form(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console)
    response = await console.get("/console/feedback", {"sentiment": "negative", "topic": "shipping", "q": "late"})
    page = await response.text()
    row = page[page.index(f'data-id="{shop["a"]}"'):page.index("</tr>", page.index(f'data-id="{shop["a"]}"'))]
    for shown in ("2026-06-01 09:00 UTC", "widget", "Ann Lee", "ann@example.com", "CSAT 1", "negative", "shipping",
                  "packaging", "Parcel arrived late and the box was crushed", "New"):
        assert shown in row, shown
    assert '<option value="negative" selected>' in page and '<option value="shipping" selected>' in page
    assert 'name="q" value="late"' in page
    assert "1 feedback match these filters." in page
    export = html.unescape(re.search(r'href="([^"]*export\.csv[^"]*)"', page).group(1))
    assert export == "/console/feedback/export.csv?sentiment=negative&topic=shipping&q=late"


async def test_the_low_score_filter_is_one_click_away(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console)
    page = await (await console.get("/console/feedback")).text()
    link = html.unescape(re.search(r'<a class="chip" href="([^"]+)">Low scores</a>', page).group(1))
    assert link == "/console/feedback?band=low"
    assert await rows_of(console, {"band": "low"}) == shop.of("gba")


async def test_a_long_comment_is_cut_in_the_list_and_whole_on_its_page(console: Console) -> None:
    with console.db.session(write=True) as session:
        feedback_id = add_feedback(session, comment="word " * 100 + "THE-END").id
    await signed_in(console)
    listed = await (await console.get("/console/feedback")).text()
    assert "THE-END" not in listed and "word word…" in listed
    assert "THE-END" in await (await console.get(f"/console/feedback/{feedback_id}")).text()


async def test_pages_of_25_newest_first_and_back(any_console: Console) -> None:
    with any_console.db.session(write=True) as session:
        # Pairs share a moment: the id orders them.
        ids = [add_feedback(session, at=DAY + timedelta(minutes=index // 2)).id for index in range(2 * PAGE_SIZE + 3)]
    expected = list(reversed(ids))
    await signed_in(any_console)

    async def page(path: str) -> tuple:
        text = await (await any_console.client.get(path, allow_redirects=False)).text()
        links = {rel: html.unescape(href) for href, rel in re.findall(r'<a href="([^"]+)" rel="(next|prev)">', text)}
        return [int(found) for found in _ROW.findall(text)], links, text

    first, links, text = await page("/console/feedback")
    assert first == expected[:PAGE_SIZE] and set(links) == {"next"} and "Page 1" in text
    assert "53 feedback." in text and "Showing 1–25" in text
    second, links, text = await page(links["next"])
    assert second == expected[PAGE_SIZE:2 * PAGE_SIZE] and set(links) == {"next", "prev"} and "Page 2" in text
    third, links, text = await page(links["next"])
    assert third == expected[2 * PAGE_SIZE:] and set(links) == {"prev"} and "Showing 51–53" in text
    back, links, _ = await page(links["prev"])
    assert back == second
    top, links, _ = await page(links["prev"])
    assert top == first and set(links) == {"next"}


async def test_pages_keep_the_filter(console: Console) -> None:
    with console.db.session(write=True) as session:
        kept = [add_feedback(session, at=DAY + timedelta(minutes=index), status="done" if index % 2 else "new").id
                for index in range(2 * PAGE_SIZE + 4)]
    done = [feedback_id for index, feedback_id in reversed(list(enumerate(kept))) if index % 2]
    await signed_in(console)
    text = await (await console.get("/console/feedback", {"status": "done"})).text()
    link = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', text).group(1))
    assert "status=done" in link
    second = await (await console.client.get(link)).text()
    assert [int(found) for found in _ROW.findall(second)] == done[PAGE_SIZE:]


@pytest.mark.parametrize("params, message", [
    ({"from": "yesterday"}, "“From” must be a date written YYYY-MM-DD."),
    ({"score_min": "99"}, "“Score from” must be a whole number from 0 to 10."),
    ({"page": "-3"}, "The page must be a whole number from 1."),
    ({"older": "not-a-cursor"}, "That page link is not valid"),
    ({"channel": "<b>fax</b>"}, "Channel must be one of: widget, telegram, instagram, rest."),
])
async def test_a_bad_filter_value_gets_a_message_not_a_500(
    console: Console, params: Dict[str, str], message: str,
) -> None:
    shop = seed(console.db)
    await signed_in(console)
    response = await console.get("/console/feedback", {**params, "kind": "nps"})
    text = await response.text()
    assert response.status == 400 and message in text
    assert [int(found) for found in _ROW.findall(text)] == shop.of("fcb"), "the other filters still apply"
    assert html.escape(next(iter(params.values())), quote=True) in text, "the form keeps what was typed"
    assert "<b>fax</b>" not in text


async def test_a_feedback_page_shows_everything_beside_its_transcript(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console)
    response = await console.get(f"/console/feedback/{shop['a']}", {"back": "topic=shipping&evil=1"})
    text = await response.text()
    assert response.status == 200
    for shown in ("Feedback #", "CSAT 1", "Parcel arrived late and the box was crushed", "negative", "shipping",
                  "packaging", "Ann Lee", "ann@example.com", "#1042 · 189.00 USD", "widget", "2026-06-01 09:00 UTC",
                  "Request #", "open", "200", "E-mail addresses, phone and card numbers were masked.",
                  "How was your order? 1 to 5.", "2026-06-01 08:58 UTC"):
        assert shown in text, shown
    assert '<li class="shopper"><span class="role">Shopper</span>' in text
    assert 'href="/console/feedback?topic=shipping"' in text, "back to the inbox as it was, unknown names dropped"


async def test_unknown_feedback_is_a_404_page(console: Console) -> None:
    seed(console.db)
    await signed_in(console)
    for path in ("/console/feedback/999", "/console/feedback/99999999999999999999", "/console/feedback/abc"):
        response = await console.get(path)
        assert response.status == 404 and "<h1>" in await response.text(), path
    assert (await console.post("/console/feedback/999/status", {"status": "done"})).status == 404
    assert (await console.post("/console/feedback/999/notes", {"text": "hello"})).status == 404


async def test_an_id_of_too_many_or_non_ascii_digits_is_a_404_not_a_500(console: Console) -> None:
    """Route ids are [0-9]{1,9}: thousands of digits used to reach int() (ValueError past Python's digit
    limit, a 500), and \\d also matches other scripts' digits, which int() reads as ours."""
    shop = seed(console.db)
    await signed_in(console)
    long = "9" * 5000
    for path in (f"/console/feedback/{long}", f"/console/feedback/{shop['a']:010d}", "/console/feedback/1234567890",
                 "/console/feedback/%D9%A3", "/console/feedback/%EF%BC%91", "/console/feedback/0"):
        response = await console.get(path)
        assert response.status == 404 and "<h1>" in await response.text(), path
    for action, form in (("status", {"status": "done"}), ("notes", {"text": "hello"})):
        for feedback_id in (long, f"{shop['a']:010d}", "%D9%A3"):
            response = await console.post(f"/console/feedback/{feedback_id}/{action}", form)
            assert response.status == 404, (action, feedback_id[:12])
    assert (await console.get(f"/console/feedback/{shop['a']:09d}")).status == 200, "nine digits, leading zeros"
    with console.db.session() as session:
        assert session.execute(select(func.count()).select_from(FeedbackNote)).scalar_one() == 0
        assert session.get(Feedback, shop["a"]).status == "new"


async def test_shoppers_words_are_shown_as_text(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console)
    for path in ("/console/feedback", f"/console/feedback/{shop['h']}"):
        text = await (await console.get(path)).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
        assert "<script>alert" not in text and "<img src=x" not in text
    await console.post(f"/console/feedback/{shop['h']}/notes", {"text": "<b>bold</b> move"})
    text = await (await console.get(f"/console/feedback/{shop['h']}")).text()
    assert "&lt;b&gt;bold&lt;/b&gt; move" in text


async def test_a_status_change_redirects_back_and_shows_in_the_inbox(console: Console, clock) -> None:
    shop = seed(console.db)
    await signed_in(console)
    clock.advance(hours=1)
    response = await console.post(f"/console/feedback/{shop['a']}/status", {"status": "done", "back": "band=low"})
    assert response.status == 303
    assert response.headers["Location"] == f"/console/feedback/{shop['a']}?back=band%3Dlow"
    with console.db.session() as session:
        stored = session.get(Feedback, shop["a"])
        assert (stored.status, stored.updated_at) == ("done", clock.current)
    assert await rows_of(console, {"status": "done"}) == shop.of("fca")
    page = await (await console.get("/console/feedback", {"band": "low"})).text()
    row = page[page.index(f'data-id="{shop["a"]}"'):]
    assert '<span class="pill done">Done</span>' in row[:row.index("</tr>")]


async def test_a_status_post_without_the_csrf_token_changes_nothing(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console)
    for token in ("", "forged"):
        response = await console.post(f"/console/feedback/{shop['a']}/status", {"status": "done"}, csrf=token)
        assert response.status == 403
    bad = await console.post(f"/console/feedback/{shop['a']}/status", {"status": "archived"})
    assert bad.status == 400 and "Choose a status" in await bad.text()
    with console.db.session() as session:
        assert session.get(Feedback, shop["a"]).status == "new"


async def test_notes_are_added_checked_and_listed_oldest_first(console: Console, clock) -> None:
    shop = seed(console.db)
    await signed_in(console)
    first = await console.post(f"/console/feedback/{shop['b']}/notes", {"text": "Called the shopper"})
    assert first.status == 303 and first.headers["Location"].startswith(f"/console/feedback/{shop['b']}#note-")
    clock.advance(minutes=3)
    await console.post(f"/console/feedback/{shop['b']}/notes", {"text": "Sent a replacement"})
    empty = await console.post(f"/console/feedback/{shop['b']}/notes", {"text": "   "})
    assert empty.status == 400 and "A note cannot be empty." in await empty.text()
    long = await console.post(f"/console/feedback/{shop['b']}/notes", {"text": "n" * 2001})
    long_page = await long.text()
    assert long.status == 400 and "at most 2,000 characters" in long_page and "n" * 2001 in long_page, \
        "the text is kept to fix"
    refused = await console.post(f"/console/feedback/{shop['b']}/notes", {"text": "forged"}, csrf="")
    assert refused.status == 403
    text = await (await console.get(f"/console/feedback/{shop['b']}")).text()
    assert text.index("Called the shopper") < text.index("Sent a replacement")
    assert "owner@shop.example" in text and "2026-06-15 12:00 UTC" in text and "2026-06-15 12:03 UTC" in text
    with console.db.session() as session:
        assert session.execute(select(func.count()).select_from(FeedbackNote)).scalar_one() == 2


async def test_a_nul_in_a_note_or_a_filter_is_a_400_with_a_message_on_sqlite_and_postgresql(
    any_console: Console,
) -> None:
    """PostgreSQL refuses NUL in text (it was a 500 for a note). A note holding a control character is refused
    with the text shown back without it; a filter holding one never reaches the database."""
    shop = seed(any_console.db)
    await signed_in(any_console)
    response = await any_console.post(f"/console/feedback/{shop['b']}/notes", {"text": "Called\x00 her\r\nagain"})
    text = await response.text()
    assert response.status == 400 and "A note cannot contain control characters such as NUL." in text
    assert "\x00" not in text and ">Called her\r\nagain</textarea>" in text, "the text is kept to fix, less the NUL"
    with any_console.db.session() as session:
        assert session.execute(select(func.count()).select_from(FeedbackNote)).scalar_one() == 0
    refused = {
        "q": "The search must not contain control characters such as NUL.",
        "channel": "Channel must be one of", "topic": "Topic must be one of", "sentiment": "Sentiment must be one of",
        "status": "Status must be one of", "band": "Score band must be one of", "kind": "Kind must be one of",
        "from": "“From” must be a date", "score_min": "“Score from” must be a whole number",
        "with_comment": "“With a comment” must be 1 or 0.",
    }
    typed = {"q": "late\x00", "channel": "widget\x00", "topic": "ship\x00ping", "sentiment": "\x00negative",
             "status": "new\x00", "band": "low\x00", "kind": "csat\x00", "from": "2026-06-01\x00",
             "score_min": "1\x00", "with_comment": "1\x00"}
    for name, value in typed.items():
        response = await any_console.get("/console/feedback", {name: value, "sentiment": "negative"}
                                         if name != "sentiment" else {name: value, "band": "low"})
        page = await response.text()
        assert response.status == 400 and refused[name] in page, (name, page[:200])
        assert "\x00" not in page, name
        assert [int(found) for found in _ROW.findall(page)] == shop.of("gba"), "the other filter still applies"
        export = await any_console.get("/console/feedback/export.csv", {name: value})
        assert export.status == 400 and "Export not started" in await export.text(), name


async def test_a_note_sent_twice_at_once_is_stored_once(any_console: Console) -> None:
    shop = seed(any_console.db)
    await signed_in(any_console)
    path = f"/console/feedback/{shop['c']}/notes"
    responses = await asyncio.gather(*(any_console.post(path, {"text": "Thanked them"}) for _ in range(3)))
    assert [response.status for response in responses] == [303, 303, 303]
    with any_console.db.session() as session:
        assert session.execute(select(FeedbackNote.text)).scalars().all() == ["Thanked them"]


async def test_the_export_is_for_owners_only(console: Console) -> None:
    seed(console.db)
    await signed_in(console, "agent")
    inbox = await (await console.get("/console/feedback")).text()
    assert "Export CSV" not in inbox
    response = await console.get("/console/feedback/export.csv")
    assert response.status == 403 and "Owners only" in await response.text()


async def test_an_agent_uses_the_inbox_like_an_owner(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console, "agent")
    assert await rows_of(console, {"band": "low"}) == shop.of("gba")
    assert (await console.get(f"/console/feedback/{shop['g']}")).status == 200
    assert (await console.post(f"/console/feedback/{shop['g']}/status", {"status": "in_progress"})).status == 303
    assert (await console.post(f"/console/feedback/{shop['g']}/notes", {"text": "On it"})).status == 303
    with console.db.session() as session:
        note = session.execute(select(FeedbackNote)).scalar_one()
        assert (note.author, session.get(Feedback, shop["g"]).status) == ("agent@shop.example", "in_progress")


async def test_signed_out_the_pages_and_the_export_redirect_to_sign_in(console: Console) -> None:
    shop = seed(console.db)
    for path in ("/console/feedback", f"/console/feedback/{shop['a']}", "/console/feedback/export.csv"):
        response = await console.get(path)
        assert response.status == 303 and response.headers["Location"].startswith("/console/login?next="), path
    response = await console.post(f"/console/feedback/{shop['a']}/status", {"status": "done"}, csrf="")
    assert response.status == 403


def _csv(text: str) -> List[Dict[str, str]]:
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


async def test_the_export_is_a_streamed_attachment_of_the_filtered_rows(console: Console, clock) -> None:
    shop = seed(console.db)
    await signed_in(console)
    await console.post(f"/console/feedback/{shop['a']}/notes", {"text": "Refunded shipping"})
    response = await console.get("/console/feedback/export.csv", {"sentiment": "negative"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="feedback-2026-06-15.csv"'
    assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Content-Type-Options"] == "nosniff"
    rows = _csv(await response.text())
    assert list(rows[0]) == list(COLUMNS)
    assert [int(row["id"]) for row in rows] == shop.of("gba")
    a = rows[2]
    assert (a["created_at"], a["channel"], a["customer_email"], a["order"], a["kind"], a["score"]) == \
        ("2026-06-01T09:00:00Z", "widget", "ann@example.com", "1042", "csat", "1")
    assert (a["sentiment"], a["topics"], a["status"]) == ("negative", "shipping; packaging", "new")
    assert a["transcript"].splitlines() == [
        "bot [2026-06-01T08:58:00Z]: How was your order? 1 to 5.",
        "shopper [2026-06-01T08:59:00Z]: 1",
        "bot [2026-06-01T08:59:10Z]: Thanks! Why that score?",
        "shopper [2026-06-01T09:00:00Z]: Parcel arrived late and the box was crushed",
    ]
    assert a["notes"] == "owner@shop.example [2026-06-15T12:00:00Z]: Refunded shipping"


async def test_the_export_neutralises_formulas(console: Console) -> None:
    shop = seed(console.db)
    await signed_in(console)
    await console.post(f"/console/feedback/{shop['g']}/notes", {"text": "@ops please check"})
    rows = _csv(await (await console.get("/console/feedback/export.csv", {"topic": "price"})).text())
    assert rows[0]["comment"] == '\'=HYPERLINK("http://evil.example","refund")'
    # Inside a cell that starts with the role, a formula is only text.
    assert rows[0]["transcript"].splitlines()[-1] == \
        'shopper [2026-06-07T09:00:00Z]: =HYPERLINK("http://evil.example","refund")'
    assert rows[0]["notes"].endswith(": @ops please check")


async def test_the_export_reads_in_batches_and_writes_every_row(console: Console, monkeypatch) -> None:
    monkeypatch.setattr(feedback_pages, "EXPORT_BATCH_SIZE", 3)
    shop = seed(console.db)
    await signed_in(console)
    rows = _csv(await (await console.get("/console/feedback/export.csv")).text())
    assert [int(row["id"]) for row in rows] == shop.of("hgfedcba")
    empty = _csv(await (await console.get("/console/feedback/export.csv", {"q": "nothing like this"})).text())
    assert empty == []


async def test_an_export_with_a_bad_filter_is_refused(console: Console) -> None:
    seed(console.db)
    await signed_in(console)
    response = await console.get("/console/feedback/export.csv", {"from": "last week"})
    assert response.status == 400 and "YYYY-MM-DD" in await response.text()
    assert "attachment" not in response.headers.get("Content-Disposition", "")
