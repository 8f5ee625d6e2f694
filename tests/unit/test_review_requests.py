"""The review-request policy (program review_requests) as the proactive messages will use it: when a request
and its one reminder are due, which products they cover, and the caps on messages and on asking again."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import List, Sequence

import pytest
from sqlalchemy import func, select

from bot.advocacy import review_requests
from bot.advocacy.review_requests import DueReviewRequest, due_review_requests, record_review_request
from bot.advocacy.reviews import ReviewableProduct, ReviewDraft, submit_review
from bot.catalog import load_catalog, upsert_product
from bot.db import Database
from bot.demo import CATALOG_FILE
from bot.identity import create_customer
from bot.loyalty.orders import LineInput, cancel_order, record_paid_order, refund_order
from bot.models import Order, ReviewRequest

LAMP = ReviewableProduct("OE-LT-002", "Pebble table lamp")
CHAIRS = ReviewableProduct("OE-CH-002", "Ash dining chair (set of 2)")
TABLE = ReviewableProduct("OE-TB-001", "Fold oak side table")


def _with_catalog(db: Database, program, clock) -> Database:
    with db.session(write=True) as session:
        for product in load_catalog(CATALOG_FILE, program.currency):
            upsert_product(session, product, "https://shop.example", clock.current)
    return db


@pytest.fixture()
def store(sqlite_db: Database, program, clock) -> Database:
    return _with_catalog(sqlite_db, program, clock)


def _customer(db: Database, email: str = "ann@example.com") -> int:
    with db.session(write=True) as session:
        return create_customer(session, email, "Ann").id


def _order(db: Database, program, customer_id: int, external_id: str, skus: Sequence[str],
           fulfilled_at: datetime, clock) -> int:
    """A paid order fulfilled at `fulfilled_at`, recorded then (the clock moves there)."""
    clock.at(fulfilled_at)
    lines = [LineInput(f"Item {sku}", 1, Decimal("10"), sku) for sku in skus]
    with db.session(write=True) as session:
        order = record_paid_order(session, program, customer_id, external_id, Decimal(10 * len(skus)),
                                  fulfilled_at - timedelta(days=2), lines=lines).order
        order.fulfilled_at = fulfilled_at
        return order.id


def _due(db: Database, program, now: datetime, **limit: int) -> List[DueReviewRequest]:
    with db.session() as session:
        return due_review_requests(session, program, now, **limit)


def _send(db: Database, program, now: datetime) -> List[DueReviewRequest]:
    """What the proactive messages will do: send what is due and record it."""
    due = _due(db, program, now)
    with db.session(write=True) as session:
        for item in due:
            record_review_request(session, item, now)
    return due


def _products(due: DueReviewRequest) -> List[str]:
    return [product.sku for product in due.products]


def _policy(program, **changes: int):
    return dataclasses.replace(program, review_requests=dataclasses.replace(program.review_requests, **changes))


def test_a_request_is_due_fourteen_days_after_fulfilment_and_sent_once(any_db: Database, program, clock) -> None:
    _with_catalog(any_db, program, clock)
    ann = _customer(any_db)
    fulfilled = clock.current
    order_id = _order(any_db, program, ann, "1001", ["OE-LT-002-SND", "OE-CH-002", "OE-LT-002-MOS", "GIFT"], fulfilled, clock)
    assert _due(any_db, program, fulfilled + timedelta(days=14, seconds=-1)) == []
    [due] = _due(any_db, program, fulfilled + timedelta(days=14))
    assert due == DueReviewRequest(ann, order_id, "1001", "request", (
        ReviewableProduct("OE-LT-002", "Pebble table lamp", "1001"),  # two variants: one product, the catalog's title
        ReviewableProduct("OE-CH-002", "Ash dining chair (set of 2)", "1001"),
        ReviewableProduct("GIFT", "Item GIFT", "1001"),  # not in the catalog: the line's title
    ))
    sent = _send(any_db, program, fulfilled + timedelta(days=15))
    assert sent == [due]
    with any_db.session(write=True) as session:
        record_review_request(session, due, fulfilled + timedelta(days=15, hours=1))  # recorded twice: no new rows
        assert session.execute(select(func.count(ReviewRequest.id))).scalar_one() == 3
    assert _due(any_db, program, fulfilled + timedelta(days=16)) == []


def test_one_reminder_seven_days_later_about_what_is_still_not_reviewed(store: Database, program, clock) -> None:
    ann = _customer(store)
    fulfilled = clock.current
    _order(store, program, ann, "1001", ["OE-LT-002", "OE-CH-002"], fulfilled, clock)
    asked = fulfilled + timedelta(days=14)
    _send(store, program, asked)
    assert _due(store, program, asked + timedelta(days=7, seconds=-1)) == []
    with store.session(write=True) as session:
        submit_review(session, ReviewDraft("telegram", "5001", ann, LAMP, 4, "Lovely."), asked + timedelta(days=2))
    [reminder] = _send(store, program, asked + timedelta(days=7))
    assert (reminder.kind, _products(reminder)) == ("reminder", ["OE-CH-002"])
    assert _due(store, program, asked + timedelta(days=20)) == []  # one reminder only


def test_no_reminder_once_everything_is_reviewed_or_when_reminders_are_off(store: Database, program, clock) -> None:
    ann, bo = _customer(store), _customer(store, "bo@example.com")
    fulfilled = clock.current
    _order(store, program, ann, "1001", ["OE-LT-002"], fulfilled, clock)
    _order(store, program, bo, "2001", ["OE-LT-002"], fulfilled, clock)
    asked = fulfilled + timedelta(days=14)
    assert len(_send(store, program, asked)) == 2
    with store.session(write=True) as session:
        submit_review(session, ReviewDraft("telegram", "5001", ann, LAMP, 1, "Too dim."), asked)
    assert [(due.customer_id, due.kind) for due in _due(store, program, asked + timedelta(days=7))] == [(bo, "reminder")]
    assert _due(store, _policy(program, reminder_after_days=0), asked + timedelta(days=7)) == []


def test_at_most_five_messages_per_shopper_in_thirty_days(store: Database, program, clock) -> None:
    no_reminders = _policy(program, reminder_after_days=0)
    ann = _customer(store)
    start = clock.current
    pairs = [("OE-CH-001", "OE-CH-002"), ("OE-SO-001", "OE-TB-001"), ("OE-TB-002", "OE-DK-001"),
             ("OE-DK-002", "OE-OC-001"), ("OE-LT-001", "OE-LT-002"), ("OE-TX-001", "OE-ST-001"),
             ("OE-RG-001", "OE-SO-002")]
    for day, skus in enumerate(pairs):
        _order(store, program, ann, f"10{day}", skus, start + timedelta(days=day), clock)
    sent_days = []
    for day in range(14, 45):  # the job runs daily; one message per shopper per run
        if _send(store, no_reminders, start + timedelta(days=day)):
            sent_days.append(day)
    # Five messages (ten products: the cap counts messages, not rows), then nothing until the first one is
    # 30 days old; order 5 is then 25 days past due and still asked about.
    assert sent_days == [14, 15, 16, 17, 18, 44]
    assert _due(store, no_reminders, start + timedelta(days=45, seconds=-1)) == []  # day 15's is not 30 days old yet
    assert [_products(due) for due in _send(store, no_reminders, start + timedelta(days=45))] == [
        ["OE-RG-001", "OE-SO-002"]]


def test_reminders_count_towards_the_cap_and_go_first(store: Database, program, clock) -> None:
    ann = _customer(store)
    start = clock.current
    _order(store, program, ann, "1001", ["OE-LT-002"], start, clock)
    _order(store, program, ann, "1002", ["OE-CH-002"], start + timedelta(days=7), clock)
    assert [due.order_external_id for due in _send(store, program, start + timedelta(days=14))] == ["1001"]
    # Day 21: the reminder for 1001 and the request for 1002 are both due; one message, the reminder.
    assert [(due.order_external_id, due.kind) for due in _send(store, program, start + timedelta(days=21))] == [
        ("1001", "reminder")]
    assert [(due.order_external_id, due.kind) for due in _send(store, program, start + timedelta(days=22))] == [
        ("1002", "request")]
    capped = _policy(program, max_messages_per_30_days=3)
    assert _due(store, capped, start + timedelta(days=29)) == []  # 1002's reminder: three messages already
    assert [due.kind for due in _due(store, program, start + timedelta(days=29))] == ["reminder"]


def test_a_product_is_asked_about_at_most_once_a_year_across_orders(store: Database, program, clock) -> None:
    no_reminders = _policy(program, reminder_after_days=0)
    ann = _customer(store)
    start = clock.current
    _order(store, program, ann, "1001", ["OE-LT-002", "OE-CH-002"], start, clock)
    _order(store, program, ann, "1002", ["OE-LT-002-MOS", "OE-TB-001"], start + timedelta(days=10), clock)
    _order(store, program, ann, "1003", ["OE-LT-002"], start + timedelta(days=20), clock)
    assert [_products(due) for due in _send(store, no_reminders, start + timedelta(days=14))] == [["OE-LT-002", "OE-CH-002"]]
    assert [_products(due) for due in _send(store, no_reminders, start + timedelta(days=24))] == [["OE-TB-001"]]
    assert _send(store, no_reminders, start + timedelta(days=34)) == []  # only the lamp again: nothing to ask
    _order(store, program, ann, "1004", ["OE-LT-002"], start + timedelta(days=366), clock)
    assert [_products(due) for due in _send(store, no_reminders, start + timedelta(days=380))] == [["OE-LT-002"]]


def test_reviewed_products_and_refunded_or_cancelled_orders_are_left_out(store: Database, program, clock) -> None:
    ann, bo = _customer(store), _customer(store, "bo@example.com")
    start = clock.current
    with store.session(write=True) as session:
        submit_review(session, ReviewDraft("web", "s1", ann, LAMP, 5, "Love it."), start)
    _order(store, program, ann, "1001", ["OE-LT-002-SND"], start, clock)  # only a reviewed product
    _order(store, program, ann, "1002", ["OE-CH-002"], start, clock)
    _order(store, program, ann, "1003", ["OE-TB-001", "OE-LT-002"], start, clock)
    _order(store, program, bo, "2001", ["OE-LT-002"], start, clock)
    _order(store, program, bo, "2002", ["OE-CH-002"], start, clock)
    _order(store, program, bo, "2003", ["OE-TB-001"], start, clock)
    with store.session(write=True) as session:
        cancel_order(session, program, "1002")
        refund_order(session, program, "2001", "r1", Decimal("10"))  # refunded in full
        refund_order(session, program, "2002", "r1", Decimal("5"))  # partly: the product was kept
        cancel_order(session, program, "2003")
    due = _due(store, program, start + timedelta(days=14))
    assert [(item.order_external_id, _products(item)) for item in due] == [("1003", ["OE-TB-001"]), ("2002", ["OE-CH-002"])]
    with store.session() as session:
        assert session.execute(select(Order.status).where(Order.external_id == "2001")).scalar_one() == "refunded"


def test_a_reminder_is_not_sent_for_an_order_cancelled_since_the_request(store: Database, program, clock) -> None:
    ann = _customer(store)
    fulfilled = clock.current
    _order(store, program, ann, "1001", ["OE-LT-002"], fulfilled, clock)
    _send(store, program, fulfilled + timedelta(days=14))
    with store.session(write=True) as session:
        cancel_order(session, program, "1001")
    assert _due(store, program, fulfilled + timedelta(days=21)) == []


def test_long_overdue_requests_are_dropped(store: Database, program, clock) -> None:
    ann = _customer(store)
    now = clock.current
    _order(store, program, ann, "1001", ["OE-LT-002"], now - timedelta(days=400), clock)  # imported history
    _order(store, program, ann, "1002", ["OE-CH-002"], now - timedelta(days=14 + 29), clock)
    assert [due.order_external_id for due in _due(store, program, now)] == ["1002"]


def test_many_due_messages_are_read_in_pages_and_limited(any_db: Database, program, clock, monkeypatch) -> None:
    monkeypatch.setattr(review_requests, "PAGE_SIZE", 2)
    store = _with_catalog(any_db, program, clock)
    start = clock.current
    customers = [_customer(store, f"c{index}@example.com") for index in range(5)]
    for index, customer in enumerate(customers):
        _order(store, program, customer, f"{index}", ["OE-LT-002"], start + timedelta(hours=index), clock)
    requests = _send(store, program, start + timedelta(days=15))
    assert [due.customer_id for due in requests] == customers  # oldest fulfilment first
    reminders = _due(store, program, start + timedelta(days=22))
    assert [(due.customer_id, due.kind) for due in reminders] == [(customer, "reminder") for customer in customers]
    assert len(_due(store, program, start + timedelta(days=22), limit=3)) == 3


def test_recording_refuses_an_unknown_kind(store: Database, program, clock) -> None:
    with store.session(write=True) as session:
        with pytest.raises(ValueError, match="unknown review request kind"):
            record_review_request(session, DueReviewRequest(1, 1, "1", "nudge", (LAMP,)), clock.current)


def test_the_scheduled_run_queues_each_due_request_in_the_outbox_once(store: Database, program, clock) -> None:
    from bot.advocacy.review_requests import run_review_requests
    from bot.models import OutboundMessage

    customer_id = _customer(store)
    fulfilled = datetime(2026, 5, 1, 12)
    order_id = _order(store, program, customer_id, "1042", [LAMP.sku], fulfilled.replace(tzinfo=clock.current.tzinfo),
                      clock)
    now = clock.current + timedelta(days=program.review_requests.delay_days)
    assert run_review_requests(store, program, now) == {"review_requests_queued": 1}
    assert run_review_requests(store, program, now) == {"review_requests_queued": 0}  # recorded: not again
    with store.session() as session:
        [message] = session.execute(select(OutboundMessage)).scalars().all()
        assert (message.kind, message.dedupe_key, message.status) == (
            "review_request", f"review-request:{order_id}:request", "queued")
        assert message.text == ("How are you getting on with your Pebble table lamp? Tell others in a review and "
                                "earn 100 points.")
        assert message.payload["buttons"] == [{"title": "Leave a review", "payload": "/leave_review"}]
        assert session.execute(select(func.count()).select_from(ReviewRequest)).scalar_one() == 1
