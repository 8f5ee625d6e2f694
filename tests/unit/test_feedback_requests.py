"""Asking "How was your order #…?" after fulfilment (bot/feedback/requests.py): which orders are asked
about and when, once per order, the buttons' payloads (Telegram's 64 bytes), the notice shown in chat and
pushed to Telegram with its buttons, and the web app's job that queues them."""
from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional, Tuple

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.feedback.requests import (
    MAX_PAYLOAD_BYTES, NOTICE_KIND, dedupe_key, due_feedback_requests, run_feedback_requests, score_buttons,
    score_payload,
)
from bot.feedback.service import record_feedback
from bot.identity import create_customer, link_identity
from bot.loyalty.program import Program
from bot.models import OutboundMessage, Order
from bot.notices import CHAT_NOTICE_KINDS, ChatNotice, claim_chat_messages, claim_chat_notices, claim_for_channel

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def shopper(db: Database, email: str, chat: Optional[Tuple[str, str]] = ("telegram", "1111")) -> int:
    with db.session(write=True) as session:
        customer = create_customer(session, email, first_name="Ann")
        if chat is not None:
            link_identity(session, customer.id, *chat)
        return customer.id


def order(db: Database, customer_id: int, external_id: str, fulfilled_days_ago: Optional[float],
          status: str = "paid") -> int:
    with db.session(write=True) as session:
        row = Order(external_id=external_id, customer_id=customer_id, total=Decimal("80"), currency="USD",
                    status=status, placed_at=NOW - timedelta(days=30),
                    fulfilled_at=None if fulfilled_days_ago is None else NOW - timedelta(days=fulfilled_days_ago))
        session.add(row)
        session.flush()
        return row.id


def notices(db: Database) -> list:
    with db.session() as session:
        return session.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars().all()


def test_a_fulfilled_order_is_asked_about_once_with_score_buttons(any_db: Database, program: Program) -> None:
    customer_id = shopper(any_db, "ann@example.com")
    order_id = order(any_db, customer_id, "1042", fulfilled_days_ago=3.5)

    assert run_feedback_requests(any_db, program, NOW) == {"feedback_requests_queued": 1}
    [notice] = notices(any_db)
    assert (notice.customer_id, notice.kind, notice.status, notice.dedupe_key) == (
        customer_id, NOTICE_KIND, "queued", dedupe_key(order_id))
    assert notice.text == "How was your order #1042? Tap a number: 5 = loved it, 1 = not happy at all."
    buttons = notice.payload["buttons"]
    assert [button["title"] for button in buttons] == ["5 😍", "4 🙂", "3 😐", "2 🙁", "1 😞"]
    assert json.loads(buttons[0]["payload"][len("/give_feedback"):]) == {"feedback_order": order_id, "feedback_score": 5}
    assert all(len(button["payload"].encode()) <= MAX_PAYLOAD_BYTES for button in buttons)

    # Asked once: later runs (another web process, the next interval) add nothing.
    assert run_feedback_requests(any_db, program, NOW + timedelta(hours=1)) == {"feedback_requests_queued": 0}
    assert len(notices(any_db)) == 1


def test_which_orders_are_asked_about(sqlite_db: Database, program: Program) -> None:
    ann = shopper(sqlite_db, "ann@example.com")
    order(sqlite_db, ann, "too-soon", fulfilled_days_ago=2)  # ask_after_fulfilment_days is 3
    order(sqlite_db, ann, "not-fulfilled", fulfilled_days_ago=None)
    order(sqlite_db, ann, "refunded", fulfilled_days_ago=5, status="refunded")
    order(sqlite_db, ann, "long-ago", fulfilled_days_ago=3 + 15)  # imported history: never asked
    answered = order(sqlite_db, ann, "answered", fulfilled_days_ago=6)
    with sqlite_db.session(write=True) as session:  # the shopper told us already, unprompted
        record_feedback(session, program, channel="telegram", sender_id="1111", customer_id=ann, order_id=answered,
                        kind="csat", score=5, comment=None, turns=[], now=NOW)
    unlinked = shopper(sqlite_db, "ben@example.com", chat=None)  # no chat: nowhere to ask
    order(sqlite_db, unlinked, "no-chat", fulfilled_days_ago=5)
    with sqlite_db.session() as session:
        assert due_feedback_requests(session, program, NOW) == []

    web = shopper(sqlite_db, "cleo@example.com", chat=("web", "widget-session-1"))
    partly = order(sqlite_db, web, "kept", fulfilled_days_ago=4, status="partially_refunded")
    with sqlite_db.session() as session:
        assert [due.order_id for due in due_feedback_requests(session, program, NOW)] == [partly]
        off = dataclasses.replace(program, feedback=dataclasses.replace(program.feedback, ask_after_orders=False))
        assert due_feedback_requests(session, off, NOW) == []


def test_one_request_per_customer_per_run_oldest_order_first(sqlite_db: Database, program: Program) -> None:
    ann = shopper(sqlite_db, "ann@example.com")
    older = order(sqlite_db, ann, "A-1", fulfilled_days_ago=6)
    newer = order(sqlite_db, ann, "A-2", fulfilled_days_ago=4)
    ben = order(sqlite_db, shopper(sqlite_db, "ben@example.com", chat=("instagram", "ig-9")), "B-1", 5)

    assert run_feedback_requests(sqlite_db, program, NOW) == {"feedback_requests_queued": 2}
    assert sorted(notice.payload["order_id"] for notice in notices(sqlite_db)) == sorted([older, ben])
    assert run_feedback_requests(sqlite_db, program, NOW + timedelta(hours=1)) == {"feedback_requests_queued": 1}
    assert notices(sqlite_db)[-1].payload["order_id"] == newer


def test_many_customers_are_queued_in_batches(sqlite_db: Database, program: Program) -> None:
    for number in range(7):
        order(sqlite_db, shopper(sqlite_db, f"s{number}@example.com", chat=("telegram", f"c{number}")), f"O-{number}", 5)
    assert run_feedback_requests(sqlite_db, program, NOW, batch_size=3) == {"feedback_requests_queued": 7}
    assert len({notice.customer_id for notice in notices(sqlite_db)}) == 7


def test_with_nps_the_question_is_nps_with_eleven_buttons(sqlite_db: Database, program: Program) -> None:
    nps = dataclasses.replace(program, feedback=dataclasses.replace(program.feedback, kind="nps"))
    order_id = order(sqlite_db, shopper(sqlite_db, "ann@example.com"), "1042", 4)
    run_feedback_requests(sqlite_db, nps, NOW)
    [notice] = notices(sqlite_db)
    assert "recommend us to a friend" in notice.text and notice.payload["question"] == "nps"
    assert [button["title"] for button in notice.payload["buttons"]] == [str(n) for n in range(11)]
    assert notice.payload["buttons"][-1]["payload"] == f'/give_feedback{{"feedback_order":{order_id},"feedback_score":10}}'


def _route(database: Database) -> None:
    """What the web app's scheduler does: the outbox gives the due questions a chat (bot/outbox/)."""
    from bot.outbox.service import route_due
    from tests.unit.test_telegram_notices import ANY_TIME

    with database.session(write=True) as session:
        route_due(session, ANY_TIME, NOW)


def test_payloads_fit_telegram_callback_data() -> None:
    assert score_payload(5) == '/give_feedback{"feedback_score":5}'
    longest = score_payload(10, order_id=99_999_999_999)  # 11 digits: far beyond any store's order count
    assert len(longest.encode()) <= 64
    with pytest.raises(ValueError, match="at most 64"):
        score_payload(10, order_id=10 ** 14)
    assert [button["payload"] for button in score_buttons("csat")][-1] == '/give_feedback{"feedback_score":1}'


def test_the_request_is_told_in_chat_with_its_buttons_and_pushed_with_them_to_telegram(
    sqlite_db: Database, program: Program
) -> None:
    assert NOTICE_KIND in CHAT_NOTICE_KINDS
    on_web = shopper(sqlite_db, "web@example.com", chat=("web", "w-1"))
    on_telegram = shopper(sqlite_db, "tg@example.com", chat=("telegram", "2222"))
    order(sqlite_db, on_web, "W-1", 4)
    telegram_order = order(sqlite_db, on_telegram, "T-1", 4)
    run_feedback_requests(sqlite_db, program, NOW)
    _route(sqlite_db)

    with sqlite_db.session(write=True) as session:
        [pushed] = claim_for_channel(session, "telegram", NOW)
        assert (pushed.external_id, pushed.text) == ("2222", "How was your order #T-1? Tap a number: 5 = loved it, "
                                                             "1 = not happy at all.")
        assert pushed.buttons[0] == {"title": "5 😍",
                                     "payload": f'/give_feedback{{"feedback_order":{telegram_order},"feedback_score":5}}'}
        [told] = claim_chat_messages(session, on_web, NOW)
        assert isinstance(told, ChatNotice) and told.text.startswith("How was your order #W-1?")
        assert len(told.buttons) == 5
        assert claim_chat_notices(session, on_web, NOW) == []  # told once


async def test_telegram_sends_the_question_with_an_inline_keyboard_of_the_payloads(
    tmp_path: Path, sqlite_db: Database, program: Program, clock: Any
) -> None:
    from tests.unit.test_telegram_notices import _shut, _start

    clock.at(NOW)
    order_id = order(sqlite_db, shopper(sqlite_db, "tg@example.com", chat=("telegram", "3333")), "T-9", 4)
    run_feedback_requests(sqlite_db, program, NOW)
    _route(sqlite_db)
    running = await _start(tmp_path, sqlite_db, notice_interval=3600)
    try:
        assert await running.channel.notices.run_once() == 1
        [sent] = running.api.called("sendMessage")
        assert str(sent["chat_id"]) == "3333" and sent["text"].startswith("How was your order #T-9?")
        markup = sent["reply_markup"]
        markup = json.loads(markup) if isinstance(markup, str) else markup
        data = [row[0]["callback_data"] for row in markup["inline_keyboard"]]
        # Each payload is the callback data itself (no short key kept in memory that a restart would lose).
        assert data == [f'/give_feedback{{"feedback_order":{order_id},"feedback_score":{n}}}' for n in (5, 4, 3, 2, 1)]
    finally:
        await _shut(running)


async def test_the_web_app_runs_the_feedback_requests_on_its_timer(
    sqlite_db: Database, program: Program, clock: Any, tmp_path: Path
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web import create_app
    from bot.web.scheduler import FEEDBACK_JOB_ID, SCHEDULER, run_feedback_requests_now, setup_scheduler
    from tests.web.conftest import web_settings

    clock.at(NOW)
    order(sqlite_db, shopper(sqlite_db, "ann@example.com"), "1042", 4)
    app = create_app(web_settings(tmp_path), sqlite_db, program=program)
    setup_scheduler(app, 1, first_run_delay=timedelta(0))
    async with TestClient(TestServer(app)):
        job = app[SCHEDULER].get_job(FEEDBACK_JOB_ID)
        assert job is not None and job.trigger.interval == timedelta(minutes=1)
        for _ in range(100):
            if notices(sqlite_db):
                break
            await asyncio.sleep(0.1)
        assert [notice.kind for notice in notices(sqlite_db)] == [NOTICE_KIND]
        assert await run_feedback_requests_now(app) == {"feedback_requests_queued": 0}
