"""The feedback inbox as a service (bot/feedback/inbox.py) and its CSV text (bot/feedback/export.py): filter
parsing with its errors, keyset pages, status, notes, export batches, formula-safe cells.

`add_feedback` writes a feedback and its transcript with the real models (the search text through
bot/feedback/search.py), so a test chooses its sentiment and topics exactly; the other console tests use it.
"""
from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from threading import Barrier
from typing import Dict, List, Optional, Sequence

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from bot.console.accounts import add_merchant
from bot.db import Database
from bot.feedback import export, inbox
from bot.feedback.inbox import (
    COUNT_CAP, PAGE_SIZE, Cursor, InboxError, InboxFilter, PageRequest, add_note, export_batch, export_rows,
    feedback_detail, inbox_page, score_band, set_status,
)
from bot.feedback.search import search_text_for
from bot.identity import create_customer
from bot.models import Feedback, FeedbackNote, FeedbackTopic, Merchant, Transcript

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def add_feedback(
    session: Session,
    *,
    at: datetime = T0,
    channel: str = "widget",
    kind: str = "csat",
    score: int = 4,
    comment: Optional[str] = "All good",
    sentiment: Optional[str] = "positive",
    topics: Sequence[str] = (),
    status: str = "new",
    customer_id: Optional[int] = None,
    order_id: Optional[int] = None,
    turns: Optional[List[Dict[str, str]]] = None,
    redacted: bool = True,
    sender_id: str = "sender-1",
    goodwill_points: int = 0,
    handoff_request_id: Optional[int] = None,
) -> Feedback:
    """One feedback with its transcript and topic rows, as the shopper-side service stores them."""
    if turns is None:
        turns = [
            {"role": "bot", "text": "How was your order? 1 to 5.", "at": (at - timedelta(minutes=2)).isoformat()},
            {"role": "shopper", "text": str(score), "at": (at - timedelta(minutes=1)).isoformat()},
            {"role": "bot", "text": "Thanks! Why that score?", "at": (at - timedelta(seconds=50)).isoformat()},
            {"role": "shopper", "text": comment or "no comment", "at": at.isoformat()},
        ]
    transcript = Transcript(customer_id=customer_id, order_id=order_id, channel=channel, sender_id=sender_id,
                            reason="feedback", turns=turns, redacted=redacted, created_at=at)
    session.add(transcript)
    session.flush()
    feedback = Feedback(
        customer_id=customer_id, order_id=order_id, transcript_id=transcript.id, channel=channel,
        sender_id=sender_id, kind=kind, score=score, comment=comment, sentiment=sentiment, topics=list(topics),
        search_text=search_text_for(comment, turns), status=status, goodwill_points=goodwill_points,
        handoff_request_id=handoff_request_id, created_at=at, updated_at=at,
    )
    session.add(feedback)
    session.flush()
    for topic in topics:
        session.add(FeedbackTopic(feedback_id=feedback.id, topic=topic))
    session.flush()
    return feedback


def merchant(session: Session, email: str = "olive@shop.example", role: str = "owner") -> Merchant:
    return add_merchant(session, email, email.split("@")[0].title(), role, "correct horse battery staple", T0)


# -- filter parsing ------------------------------------------------------------------------------------


def test_no_parameters_is_the_whole_inbox_without_errors() -> None:
    parsed, errors = InboxFilter.from_params({})
    assert parsed == InboxFilter() and parsed.is_empty and errors == []


def test_every_filter_is_read_and_written_back_the_same() -> None:
    params = {"from": "2026-06-01", "to": "2026-06-30", "channel": "telegram", "kind": "nps", "band": "low",
              "score_min": "0", "score_max": "6", "sentiment": "negative", "topic": "shipping", "with_comment": "1",
              "status": "in_progress", "q": "late parcel"}
    parsed, errors = InboxFilter.from_params(params)
    assert errors == []
    assert parsed == InboxFilter(date(2026, 6, 1), date(2026, 6, 30), "telegram", "nps", "low", 0, 6, "negative",
                                 "shipping", True, "in_progress", "late parcel")
    assert parsed.to_params() == params
    assert InboxFilter.from_params(parsed.to_params()) == (parsed, [])


def test_blank_values_are_no_filter_and_with_comment_accepts_a_checkbox() -> None:
    parsed, errors = InboxFilter.from_params({"from": "", "channel": " ", "q": "   ", "with_comment": "on"})
    assert errors == [] and parsed == InboxFilter(with_comment=True)
    assert InboxFilter.from_params({"with_comment": "0"}) == (InboxFilter(), [])


@pytest.mark.parametrize("params, param, words", [
    ({"from": "yesterday"}, "from", "YYYY-MM-DD"),
    ({"to": "2026-02-30"}, "to", "YYYY-MM-DD"),
    ({"from": "2026-06-10", "to": "2026-06-01"}, "to", "must not be before"),
    ({"channel": "fax"}, "channel", "widget, telegram"),
    ({"kind": "ces"}, "kind", "csat, nps"),
    ({"band": "terrible"}, "band", "low, medium, high"),
    ({"score_min": "99"}, "score_min", "from 0 to 10"),
    ({"score_max": "-1"}, "score_max", "from 0 to 10"),
    ({"score_min": "four"}, "score_min", "whole number"),
    ({"score_min": "2.5"}, "score_min", "whole number"),
    ({"kind": "csat", "score_max": "9"}, "score_max", "from 1 to 5"),
    ({"score_min": "8", "score_max": "3"}, "score_max", "must not be below"),
    ({"sentiment": "angry"}, "sentiment", "positive, neutral, negative"),
    ({"topic": "weather"}, "topic", "shipping"),
    ({"status": "closed"}, "status", "new, in_progress, done"),
    ({"with_comment": "maybe"}, "with_comment", "1 or 0"),
    ({"q": "x" * (inbox.MAX_QUERY_CHARS + 1)}, "q", "at most"),
])
def test_a_bad_value_is_reported_and_left_out(params: Dict[str, str], param: str, words: str) -> None:
    parsed, errors = InboxFilter.from_params({**params, "status": params.get("status", "new")})
    assert [error.param for error in errors] == [param]
    assert words in errors[0].message and errors[0].value == params[param].strip()
    if param != "status":
        assert parsed.status == "new", "the other filters are still applied"


def test_a_search_with_a_control_character_is_refused_and_so_is_every_other_filter() -> None:
    """PostgreSQL refuses NUL in text: no filter value holding one may reach a query. The search is the one
    free-text filter; every other one is a choice, a date or a number, which a NUL cannot pass for."""
    parsed, errors = InboxFilter.from_params({"q": "late\x00parcel", "status": "new"})
    assert [(error.param, error.value) for error in errors] == [("q", "lateparcel")], "shown back without the NUL"
    assert "must not contain control characters such as NUL" in errors[0].message
    assert parsed == InboxFilter(status="new")
    assert InboxFilter.from_params({"q": "late\x07"})[0].query == ""
    assert InboxFilter.from_params({"q": "late\tparcel"}) == (InboxFilter(query="late\tparcel"), [])
    for name, value in (("from", "2026-06-01"), ("to", "2026-06-01"), ("channel", "widget"), ("kind", "csat"),
                        ("band", "low"), ("score_min", "1"), ("score_max", "2"), ("sentiment", "negative"),
                        ("topic", "shipping"), ("with_comment", "1"), ("status", "new")):
        for typed in (value + "\x00", "\x00" + value, value[:1] + "\x00" + value[1:]):
            parsed, errors = InboxFilter.from_params({name: typed})
            assert parsed == InboxFilter() and [error.param for error in errors] == [name], (name, typed)
            assert "\x00" not in errors[0].value and "\x00" not in repr(parsed)


def test_page_numbers_and_cursors_are_checked() -> None:
    cursor = Cursor(datetime(2026, 6, 1, 9, 0, 0, 123456, tzinfo=timezone.utc), 42)
    assert Cursor.parse(cursor.token) == cursor
    assert PageRequest.from_params({}) == (PageRequest(), [])
    assert PageRequest.from_params({"older": cursor.token, "page": "3"}) == \
        (PageRequest(older_than=cursor, number=3), [])
    for bad in ({"page": "-3"}, {"page": "0"}, {"page": "two"}, {"older": "yesterday"}, {"newer": "1_99999999999"}):
        request, errors = PageRequest.from_params(bad)
        assert request == PageRequest() and len(errors) == 1, bad
    request, errors = PageRequest.from_params({"page": "7"})
    assert request.number == 1 and errors == [], "without a cursor it is the first page"
    request, errors = PageRequest.from_params({"older": cursor.token, "newer": cursor.token, "page": "2"})
    assert request.older_than == cursor and request.newer_than is None and errors[0].param == "newer"


def test_score_bands_follow_the_csat_and_nps_definitions() -> None:
    assert [score_band("csat", score) for score in range(1, 6)] == ["low", "low", "medium", "high", "high"]
    assert [score_band("nps", score) for score in range(0, 11)] == ["low"] * 7 + ["medium"] * 2 + ["high"] * 2
    assert score_band("csat", 0) is None and score_band("nps", 11) is None


# -- pages ---------------------------------------------------------------------------------------------


def _ids(page: inbox.InboxPage) -> List[int]:
    return [row.id for row in page.rows]


@pytest.mark.parametrize("in_order_threshold", [0, 10**9], ids=["along-the-order-index", "filter-then-sort"])
def test_pages_walk_every_match_newest_first_once_and_back(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, in_order_threshold: int,
) -> None:
    monkeypatch.setattr(inbox, "IN_ORDER_THRESHOLD", in_order_threshold)
    with sqlite_db.session(write=True) as session:
        created = []
        for index in range(PAGE_SIZE * 2 + 7):
            # Three at each moment: the id decides among them.
            at = T0 + timedelta(minutes=index // 3)
            created.append((at, add_feedback(session, at=at, sentiment="negative" if index % 2 else "positive").id))
        expected = [feedback_id for _, feedback_id in sorted(created, reverse=True)]
    with sqlite_db.session() as session:
        first = inbox_page(session, InboxFilter())
        assert _ids(first) == expected[:PAGE_SIZE] and first.number == 1 and first.newer is None
        assert first.total == len(expected) and not first.total_capped
        second = inbox_page(session, InboxFilter(), PageRequest(older_than=first.older, number=2))
        third = inbox_page(session, InboxFilter(), PageRequest(older_than=second.older, number=3))
        assert _ids(second) == expected[PAGE_SIZE:2 * PAGE_SIZE] and _ids(third) == expected[2 * PAGE_SIZE:]
        assert third.older is None and third.number == 3 and third.first_position == 2 * PAGE_SIZE + 1
        back = inbox_page(session, InboxFilter(), PageRequest(newer_than=third.newer, number=2))
        assert _ids(back) == _ids(second) and back.older == second.older
        top = inbox_page(session, InboxFilter(), PageRequest(newer_than=back.newer, number=1))
        assert _ids(top) == _ids(first) and top.number == 1 and top.newer is None
        negative = [feedback_id for _, feedback_id in sorted(created[1::2], reverse=True)]
        page = inbox_page(session, InboxFilter(sentiment="negative"))
        assert _ids(page) == negative[:PAGE_SIZE] and page.total == len(negative)
        page = inbox_page(session, InboxFilter(sentiment="negative"), PageRequest(older_than=page.older, number=2))
        assert _ids(page) == negative[PAGE_SIZE:] and page.older is None


def test_a_newer_link_near_the_top_shows_the_whole_first_page(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        ids = [add_feedback(session, at=T0 + timedelta(minutes=index)).id for index in range(PAGE_SIZE + 5)]
    with sqlite_db.session() as session:
        # A cursor only a few rows below the top (e.g. the list moved on since the link was made).
        cursor = Cursor(T0 + timedelta(minutes=PAGE_SIZE + 2), ids[PAGE_SIZE + 2])
        page = inbox_page(session, InboxFilter(), PageRequest(newer_than=cursor, number=4))
        assert _ids(page) == list(reversed(ids))[:PAGE_SIZE] and page.number == 1


def test_the_total_is_counted_only_up_to_the_cap(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox, "COUNT_CAP", 5)
    with sqlite_db.session(write=True) as session:
        for index in range(7):
            add_feedback(session, at=T0 + timedelta(minutes=index), status="done" if index < 5 else "new")
    with sqlite_db.session() as session:
        everything = inbox_page(session, InboxFilter())
        assert (everything.total, everything.total_capped) == (5, True) and len(everything.rows) == 7
        done = inbox_page(session, InboxFilter(status="done"))
        assert (done.total, done.total_capped) == (5, False)
    assert COUNT_CAP == 1_000


def test_along_the_order_index_sqlite_neither_sorts_nor_looks_filters_up(sqlite_db: Database) -> None:
    """What keeps a page of a broad filter fast at 100,000 rows: the plan walks ix_feedback_created_at_id
    and stops at a page's worth, instead of collecting every match and sorting them."""
    broad = InboxFilter(band="low", topic="shipping", sentiment="negative", status="new", channel="widget",
                        with_comment=True, query="late")
    dated = InboxFilter(date_from=date(2026, 6, 1), date_to=date(2026, 6, 30), kind="nps", query="late")
    plans = []
    with sqlite_db.session() as session:
        for inbox_filter in (broad, dated):
            conditions = inbox._conditions(session, inbox_filter)
            statement = select(Feedback.id).where(*[inbox._without_index(c) for c in conditions]) \
                .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(26)
            compiled = statement.compile(session.get_bind())
            plans.append([row[3] for row in session.connection().exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params[key] for key in compiled.positiontup))])
    everything, days = plans
    assert everything[0] == "SCAN feedback USING INDEX ix_feedback_created_at_id", everything
    # A date range still bounds the walk: it is on the order index itself.
    assert days[0].endswith("INDEX ix_feedback_created_at_id (created_at>? AND created_at<?)"), days
    assert not any("TEMP B-TREE" in step for step in everything + days), plans


def test_dates_are_whole_utc_days_and_search_finds_the_transcript_too(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        before = add_feedback(session, at=datetime(2026, 5, 31, 23, 59, 59, tzinfo=timezone.utc))
        first = add_feedback(session, at=datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc), comment="Parcel came late")
        last = add_feedback(session, at=datetime(2026, 6, 2, 23, 59, 59, 999999, tzinfo=timezone.utc),
                            comment=None, sentiment=None,
                            turns=[{"role": "shopper", "text": "Where is my parcel?", "at": T0.isoformat()}])
        after = add_feedback(session, at=datetime(2026, 6, 3, tzinfo=timezone.utc))
    with any_db.session() as session:
        days = inbox_page(session, InboxFilter(date_from=date(2026, 6, 1), date_to=date(2026, 6, 2)))
        assert _ids(days) == [last.id, first.id]
        assert _ids(inbox_page(session, InboxFilter(query="PARCEL"))) == [last.id, first.id]
        assert _ids(inbox_page(session, InboxFilter(query="parcel", with_comment=True))) == [first.id]
        assert _ids(inbox_page(session, InboxFilter(query="!!!"))) == [after.id, last.id, first.id, before.id]


# -- one feedback, status, notes -----------------------------------------------------------------------


def test_the_detail_has_customer_transcript_and_notes_oldest_first(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        customer = create_customer(session, "ann@example.com", "Ann")
        feedback = add_feedback(session, customer_id=customer.id, topics=["shipping"], comment="Late again")
        author = merchant(session)
        add_note(session, feedback.id, author, "Called her", T0)
        add_note(session, feedback.id, author, "Sent a code", T0 + timedelta(minutes=5))
    with sqlite_db.session() as session:
        found = feedback_detail(session, feedback.id)
        assert feedback_detail(session, feedback.id + 1) is None and feedback_detail(session, 2**40) is None
    assert found is not None
    assert (found.customer_name, found.customer_email, found.comment, found.topics) == \
        ("Ann", "ann@example.com", "Late again", ["shipping"])
    assert [turn.role for turn in found.turns] == ["bot", "shopper", "bot", "shopper"]
    assert found.turns[-1].text == "Late again" and found.turns[-1].at == T0 and found.transcript_redacted
    assert [(note.author, note.text) for note in found.notes] == [("olive@shop.example", "Called her"),
                                                                   ("olive@shop.example", "Sent a code")]


def test_a_status_change_sets_updated_at(sqlite_db: Database) -> None:
    later = T0 + timedelta(hours=3)
    with sqlite_db.session(write=True) as session:
        feedback_id = add_feedback(session).id
    with sqlite_db.session(write=True) as session:
        assert set_status(session, feedback_id, "in_progress", later).status == "in_progress"
        assert set_status(session, feedback_id + 1, "done", later) is None
        with pytest.raises(InboxError, match="new, in_progress, done"):
            set_status(session, feedback_id, "closed", later)
    with sqlite_db.session() as session:
        stored = session.get(Feedback, feedback_id)
        assert (stored.status, stored.updated_at, stored.created_at) == ("in_progress", later, T0)


def test_a_note_is_checked_and_a_repeat_within_seconds_is_the_same_note(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        feedback_id = add_feedback(session).id
        olive, ravi = merchant(session), merchant(session, "ravi@shop.example", "agent")
    with sqlite_db.session(write=True) as session:
        for text, words in (("   ", "cannot be empty"), ("x" * 2001, "at most 2,000")):
            with pytest.raises(InboxError, match=words):
                add_note(session, feedback_id, olive, text, T0)
        first = add_note(session, feedback_id, olive, "  Refunded the shipping \n", T0)
        repeat = add_note(session, feedback_id, olive, "Refunded the shipping", T0 + timedelta(seconds=3))
        other = add_note(session, feedback_id, ravi, "Refunded the shipping", T0 + timedelta(seconds=4))
        later = add_note(session, feedback_id, olive, "Refunded the shipping", T0 + timedelta(seconds=30))
        assert add_note(session, feedback_id + 1, olive, "Hello", T0) is None
        assert add_note(session, feedback_id, olive, "x" * 2000, T0) is not None
    assert first.created and first.note.text == "Refunded the shipping" and first.note.author == "olive@shop.example"
    assert not repeat.created and repeat.note.id == first.note.id
    assert other.created and later.created


def test_a_note_with_a_control_character_is_refused_on_sqlite_and_postgresql(any_db: Database) -> None:
    """PostgreSQL refuses NUL in text (psycopg2 raises before the query is sent): a note holding one, or any
    other control character but tab and line breaks, is an InboxError the page shows, not a 500."""
    with any_db.session(write=True) as session:
        feedback_id = add_feedback(session).id
        author = merchant(session)
    for text in ("Called\x00her", "\x00", "Sent a code\x1b[31m", "bell\x07"):
        with any_db.session(write=True) as session:
            with pytest.raises(InboxError, match="control characters such as NUL"):
                add_note(session, feedback_id, author, text, T0)
    with any_db.session(write=True) as session:
        kept = add_note(session, feedback_id, author, "Called her:\r\n\t- no answer", T0)
    assert kept is not None and kept.note.text == "Called her:\r\n\t- no answer"
    with any_db.session() as session:
        assert session.execute(select(FeedbackNote.text)).scalars().all() == ["Called her:\r\n\t- no answer"]


def test_two_identical_notes_submitted_at_once_are_stored_once(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        feedback_id = add_feedback(session).id
        author_id = merchant(session).id
    with any_db.session() as session:
        author = session.get(Merchant, author_id)
    workers = 4
    barrier = Barrier(workers, timeout=30)

    def submit(_: int) -> int:
        barrier.wait()
        with any_db.session(write=True) as session:
            return add_note(session, feedback_id, author, "Offered a replacement", T0).note.id

    with ThreadPoolExecutor(workers) as pool:
        ids = set(pool.map(submit, range(workers)))
    with any_db.session() as session:
        assert session.execute(select(func.count()).select_from(FeedbackNote)).scalar_one() == 1
    assert len(ids) == 1


# -- export --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_order_threshold", [0, 10**9], ids=["along-the-order-index", "filter-then-sort"])
def test_export_rows_come_in_batches_newest_first_with_transcripts_and_notes(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, in_order_threshold: int,
) -> None:
    monkeypatch.setattr(inbox, "IN_ORDER_THRESHOLD", in_order_threshold)
    with sqlite_db.session(write=True) as session:
        author = merchant(session)
        ids = []
        for index in range(8):
            feedback = add_feedback(session, at=T0 + timedelta(minutes=index), status="done" if index % 4 else "new",
                                    comment=f"comment {index}")
            ids.append(feedback.id)
        add_note(session, ids[5], author, "checked", T0)
    statements: List[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("SELECT feedback.id"):
            statements.append(statement)

    event.listen(sqlite_db.engine, "before_cursor_execute", seen)
    try:
        with sqlite_db.session() as session:
            rows = list(export_rows(session, InboxFilter(), batch_size=3))
            done = list(export_rows(session, InboxFilter(status="done"), batch_size=3))
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", seen)
    assert [row.id for row in rows] == list(reversed(ids))
    assert [row.id for row in done] == [i for n, i in reversed(list(enumerate(ids))) if n % 4]
    assert len(statements) == 3 + 3 and all("LIMIT" in statement for statement in statements), \
        "8 rows: batches of 3, 3 and 2; 6 rows: 3, 3 and an empty one"
    by_id = {row.id: row for row in rows}
    assert [note.text for note in by_id[ids[5]].notes] == ["checked"]
    assert by_id[ids[2]].turns[-1].text == "comment 2"
    with sqlite_db.session() as session:
        after = Cursor(rows[2].created_at, rows[2].id)
        assert [row.id for row in export_batch(session, InboxFilter(), after, 2)] == [rows[3].id, rows[4].id]
        with pytest.raises(ValueError):
            next(export_rows(session, InboxFilter(), batch_size=0))


@pytest.mark.parametrize("inbox_filter", [
    InboxFilter(kind="csat"), InboxFilter(band="high"), InboxFilter(query="delivery"), InboxFilter(status="new"),
    InboxFilter(topic="shipping", channel="widget", with_comment=True),
], ids=["kind", "band", "search", "status", "topic-channel-comment"])
def test_an_export_batch_of_a_broad_filter_continues_along_the_order_index_on_sqlite(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, inbox_filter: InboxFilter,
) -> None:
    """What keeps a whole export linear at 100,000 rows: when many match, each batch walks
    ix_feedback_created_at_id on from the previous batch's last row and stops at a batch's worth, like a page
    of the inbox, instead of collecting every match older than it and sorting them again (USE TEMP B-TREE FOR
    ORDER BY: every batch as slow as the whole set, so the export quadratic)."""
    monkeypatch.setattr(inbox, "IN_ORDER_THRESHOLD", 4)
    with sqlite_db.session(write=True) as session:
        expected = []
        for index in range(9):
            at = T0 + timedelta(minutes=index)
            if index % 3 == 2:  # matches none of the filters
                add_feedback(session, at=at, channel="telegram", kind="nps", score=7, comment="", status="done")
            else:
                expected.append(add_feedback(session, at=at, kind="csat", score=5, comment="Fast delivery",
                                             topics=["shipping"]).id)
    statements: List[tuple] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("SELECT feedback.id, feedback.created_at"):
            statements.append((statement, parameters))

    event.listen(sqlite_db.engine, "before_cursor_execute", seen)
    try:
        with sqlite_db.session() as session:
            rows = list(export_rows(session, inbox_filter, batch_size=2))
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", seen)
    assert [row.id for row in rows] == list(reversed(expected))
    assert len(statements) == 4, "6 matches in batches of 2, and the empty one that ends it"
    with sqlite_db.session() as session:
        for number, (statement, parameters) in enumerate(statements):
            plan = [row[3] for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                            parameters)]
            # The first batch from the newest; the others from where the one before ended, on the index itself.
            walk = "SEARCH feedback USING INDEX ix_feedback_created_at_id (created_at<?)" if number else \
                "SCAN feedback USING INDEX ix_feedback_created_at_id"
            assert plan[0] == walk, (number, plan)
            assert not any("TEMP B-TREE" in step for step in plan), (number, plan)


@pytest.mark.parametrize("text", ["=1+1", "+44 20 7946 0000", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_cells_a_spreadsheet_would_run_get_an_apostrophe(text: str) -> None:
    assert export.safe_cell(text) == "'" + text


def test_plain_cells_are_left_as_they_are() -> None:
    assert [export.safe_cell(value) for value in ("late parcel", "a=b", " =1", 7, None, "")] == \
        ["late parcel", "a=b", " =1", "7", "", ""]


def test_a_csv_row_has_every_column_in_order_and_reads_back() -> None:
    turn_at = datetime(2026, 6, 1, 9, 0, 5, tzinfo=timezone.utc)
    row = inbox.ExportRow(
        id=7, created_at=T0, channel="telegram", customer_email="ann@example.com", order="1042", kind="nps",
        score=3, sentiment="negative", topics=["shipping", "support"], status="in_progress",
        comment='=HYPERLINK("http://evil.example","click"), said "hi"\nsecond line',
        turns=[inbox.Turn("bot", "How likely…?", turn_at), inbox.Turn("shopper", "-3 stars", turn_at)],
        notes=[inbox.Note(1, "olive@shop.example", "Called, \"sorry\"", T0)],
    )
    text = export.header() + export.rows_csv([row])
    assert text.startswith(export.BOM)
    header, line = list(csv.reader(io.StringIO(text[1:])))
    assert header == list(export.COLUMNS)
    assert line == [
        "7", "2026-06-01T09:00:00Z", "telegram", "ann@example.com", "1042", "nps", "3", "negative", "shipping; support",
        "in_progress", '\'=HYPERLINK("http://evil.example","click"), said "hi"\nsecond line',
        "bot [2026-06-01T09:00:05Z]: How likely…?\nshopper [2026-06-01T09:00:05Z]: -3 stars",
        'olive@shop.example [2026-06-01T09:00:00Z]: Called, "sorry"',
    ]
    assert export.filename(date(2026, 6, 15)) == "feedback-2026-06-15.csv"

