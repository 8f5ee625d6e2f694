"""When the bot may ask a customer for a review (program review_requests), for the proactive messages.

`due_review_requests` says which messages are due now; `run_review_requests` (the web app's scheduler runs it
with the loyalty jobs) queues each in the outbox (bot/outbox/, kind "review_request", once per order and kind)
and records it with `record_review_request`. The rules:
- a request is due delay_days after the order was fulfilled (a kept order: paid or partially refunded);
- one reminder reminder_after_days after the request, about the request's products not reviewed since
  (0 = no reminders);
- products the customer already reviewed are left out, and so is a product they were asked about (any
  order) within product_once_per_days;
- at most max_messages_per_30_days messages (requests and reminders) per customer in any 30 days;
- a message covers the products of one order; nothing is sent when no product is left.
Beyond the policy: at most one message per customer per run (two orders fulfilled the same week are asked
about on two days, not in two messages at once; reminders go first, as they finish what was started), and
nothing is sent more than LATE_AFTER_DAYS after it became due (imported order history or a long outage
must not turn into requests about purchases from long ago).

Queries are bounded: candidates are read in pages in due order, each page checked with a few IN queries.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Dict, FrozenSet, Iterator, List, Optional, Sequence, Set, Tuple

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bot.advocacy.reviews import (
    PURCHASED_STATUSES, ReviewableProduct, catalog_products, resolve_products, reviewed_skus,
)
from bot.loyalty.program import Program, ReviewRequestPolicy
from bot.models import Order, OrderLine, ReviewRequest
from bot.outbox.service import enqueue

if TYPE_CHECKING:
    from bot.db import Database

REQUEST_KINDS = ("request", "reminder")
MESSAGE_WINDOW = timedelta(days=30)  # max_messages_per_30_days counts messages in this window
LATE_AFTER_DAYS = 30  # a message not sent within this many days of becoming due is dropped
PAGE_SIZE = 200  # candidate orders read and checked at a time


@dataclass(frozen=True)
class DueReviewRequest:
    customer_id: int
    order_id: int
    order_external_id: str
    kind: str  # request | reminder
    products: Tuple[ReviewableProduct, ...]


@dataclass(frozen=True)
class _Candidate:
    customer_id: int
    order_id: int
    order_external_id: str
    kind: str
    asked_skus: FrozenSet[str] = frozenset()  # a reminder's: the products its request asked about


def due_review_requests(session: Session, program: Program, now: datetime, limit: int = 100) -> List[DueReviewRequest]:
    """The review requests and reminders that may be sent now, oldest due first (reminders before requests)."""
    policy = program.review_requests
    due: List[DueReviewRequest] = []
    messaged: Set[int] = set()  # customers given a message in this run
    pages = [_reminder_pages(session, policy, now), _request_pages(session, policy, now)]
    for stream in pages:
        for page in stream:
            for item in _check_page(session, policy, now, page, messaged):
                due.append(item)
                if len(due) >= limit:
                    return due
    return due


def record_review_request(session: Session, due: DueReviewRequest, now: datetime) -> None:
    """Store that the message was sent: one row per product, all with the same sent_at (a message is one
    (order, kind)). Recording the same message again adds nothing."""
    if due.kind not in REQUEST_KINDS:
        raise ValueError(f"unknown review request kind {due.kind!r}; expected one of {', '.join(REQUEST_KINDS)}")
    recorded = set(session.execute(
        select(ReviewRequest.product_sku).where(ReviewRequest.order_id == due.order_id, ReviewRequest.kind == due.kind)
    ).scalars())
    for product in due.products:
        if product.sku in recorded:
            continue
        recorded.add(product.sku)
        try:
            with session.begin_nested():
                session.add(ReviewRequest(customer_id=due.customer_id, order_id=due.order_id,
                                          product_sku=product.sku, kind=due.kind, sent_at=now))
                session.flush()
        except IntegrityError:  # the same message recorded concurrently
            pass


OUTBOX_KIND = "review_request"
REVIEW_BUTTON = {"title": "Leave a review", "payload": "/leave_review"}
MAX_PER_RUN = 1000


def request_text(due: DueReviewRequest, points: int) -> str:
    """What the shopper reads: the products by name, and what a review earns."""
    names = [product.title for product in due.products[:3]]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    if due.kind == "reminder":
        return f"A quick reminder: how do you like your {listed}? A review earns you {points} points."
    return f"How are you getting on with your {listed}? Tell others in a review and earn {points} points."


def queue_review_request(session: Session, program: Program, due: DueReviewRequest, now: datetime) -> None:
    """Queue the message in the outbox (once per order and kind) and record it as asked."""
    enqueue(session, due.customer_id, OUTBOX_KIND, request_text(due, program.earning.review_text),
            f"review-request:{due.order_id}:{due.kind}", now,
            payload={"order_id": due.order_id, "kind": due.kind, "skus": [p.sku for p in due.products],
                     "buttons": [REVIEW_BUTTON]},
            expires_at=now + timedelta(days=LATE_AFTER_DAYS))
    record_review_request(session, due, now)


def run_review_requests(database: "Database", program: Program, now: datetime) -> Dict[str, int]:
    """Queue every due review request and reminder, one write transaction per batch; how many were queued."""
    queued = 0
    while queued < MAX_PER_RUN:
        with database.session(write=True) as session:
            batch = due_review_requests(session, program, now, limit=min(PAGE_SIZE, MAX_PER_RUN - queued))
            for due in batch:
                queue_review_request(session, program, due, now)
        queued += len(batch)
        if len(batch) < PAGE_SIZE:
            break
    return {"review_requests_queued": queued}


# ---------------------------------------------------------------------------------------------
# Candidates, in pages


def _request_pages(session: Session, policy: ReviewRequestPolicy, now: datetime) -> Iterator[List[_Candidate]]:
    """Kept, fulfilled orders whose request is due and was not sent, by fulfilment time."""
    latest = now - timedelta(days=policy.delay_days)
    asked = exists().where(ReviewRequest.order_id == Order.id, ReviewRequest.kind == "request")
    query = (
        select(Order.id, Order.customer_id, Order.external_id, Order.fulfilled_at)
        .where(
            Order.status.in_(PURCHASED_STATUSES),
            Order.fulfilled_at <= latest,
            Order.fulfilled_at > latest - timedelta(days=LATE_AFTER_DAYS),
            ~asked,
        )
        .order_by(Order.fulfilled_at, Order.id)
        .limit(PAGE_SIZE)
    )
    after: Optional[Tuple[datetime, int]] = None
    while True:
        page = query
        if after is not None:  # keyset paging: no OFFSET rescans
            page = page.where(or_(Order.fulfilled_at > after[0], and_(Order.fulfilled_at == after[0], Order.id > after[1])))
        rows = session.execute(page).all()
        yield [_Candidate(customer_id, order_id, external_id, "request") for order_id, customer_id, external_id, _ in rows]
        if len(rows) < PAGE_SIZE:
            return
        after = (rows[-1].fulfilled_at, rows[-1].id)


def _reminder_pages(session: Session, policy: ReviewRequestPolicy, now: datetime) -> Iterator[List[_Candidate]]:
    """Requests sent reminder_after_days ago or more, with no reminder yet, for orders still kept."""
    if policy.reminder_after_days <= 0:
        return
    latest = now - timedelta(days=policy.reminder_after_days)
    reminder = aliased(ReviewRequest)
    reminded = exists().where(reminder.order_id == ReviewRequest.order_id, reminder.kind == "reminder")
    sent_at = func.min(ReviewRequest.sent_at)
    query = (
        select(ReviewRequest.order_id, ReviewRequest.customer_id, Order.external_id, sent_at.label("sent_at"))
        .join(Order, Order.id == ReviewRequest.order_id)
        .where(
            ReviewRequest.kind == "request",
            ReviewRequest.sent_at <= latest,
            ReviewRequest.sent_at > latest - timedelta(days=LATE_AFTER_DAYS),
            Order.status.in_(PURCHASED_STATUSES),
            ~reminded,
        )
        .group_by(ReviewRequest.order_id, ReviewRequest.customer_id, Order.external_id)
        .order_by(sent_at, ReviewRequest.order_id)
        .limit(PAGE_SIZE)
    )
    after: Optional[Tuple[datetime, int]] = None
    while True:
        page = query
        if after is not None:
            page = page.having(or_(sent_at > after[0], and_(sent_at == after[0], ReviewRequest.order_id > after[1])))
        rows = session.execute(page).all()
        asked = _request_skus(session, [row.order_id for row in rows])
        yield [_Candidate(customer_id, order_id, external_id, "reminder", frozenset(asked[order_id]))
               for order_id, customer_id, external_id, _ in rows]
        if len(rows) < PAGE_SIZE:
            return
        after = (rows[-1].sent_at, rows[-1].order_id)


# ---------------------------------------------------------------------------------------------
# Checking a page against the policy


def _check_page(
    session: Session, policy: ReviewRequestPolicy, now: datetime, page: Sequence[_Candidate], messaged: Set[int]
) -> Iterator[DueReviewRequest]:
    page = [candidate for candidate in page if candidate.customer_id not in messaged]
    if not page:
        return
    customers = {candidate.customer_id for candidate in page}
    products = _order_products(session, [candidate.order_id for candidate in page])
    skus = {product.sku for order in products.values() for product in order}
    reviewed = reviewed_skus(session, customers, skus)
    asked_lately = _asked_since(session, customers, skus, now - timedelta(days=policy.product_once_per_days))
    sent = _messages_since(session, customers, now - MESSAGE_WINDOW)
    for candidate in page:
        customer = candidate.customer_id
        if customer in messaged or sent.get(customer, 0) >= policy.max_messages_per_30_days:
            continue
        left = [product for product in products.get(candidate.order_id, ()) if (customer, product.sku) not in reviewed]
        if candidate.kind == "reminder":
            left = [product for product in left if product.sku in candidate.asked_skus]
        else:
            left = [product for product in left if (customer, product.sku) not in asked_lately]
        if not left:
            continue
        messaged.add(customer)
        yield DueReviewRequest(customer, candidate.order_id, candidate.order_external_id, candidate.kind, tuple(left))


def _order_products(session: Session, order_ids: Sequence[int]) -> Dict[int, List[ReviewableProduct]]:
    """Each order's products (variants as their product, each once), in line order."""
    lines: Dict[int, List[Tuple[str, str, Optional[str]]]] = defaultdict(list)
    for order_id, sku, title, external_id in session.execute(
        select(OrderLine.order_id, OrderLine.sku, OrderLine.title, Order.external_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(OrderLine.order_id.in_(order_ids), OrderLine.sku.isnot(None), OrderLine.sku != "")
        .order_by(OrderLine.order_id, OrderLine.id)
    ):
        lines[order_id].append((sku, title, external_id))
    catalog = catalog_products(session, {sku for order in lines.values() for sku, _, _ in order})
    return {order_id: resolve_products(order, catalog) for order_id, order in lines.items()}


def _request_skus(session: Session, order_ids: Sequence[int]) -> Dict[int, Set[str]]:
    asked: Dict[int, Set[str]] = defaultdict(set)
    if order_ids:
        for order_id, sku in session.execute(
            select(ReviewRequest.order_id, ReviewRequest.product_sku)
            .where(ReviewRequest.order_id.in_(order_ids), ReviewRequest.kind == "request")
        ):
            asked[order_id].add(sku)
    return asked


def _asked_since(session: Session, customer_ids: Set[int], skus: Set[str], since: datetime) -> Set[Tuple[int, str]]:
    """(customer, product) pairs a request asked about after `since`, on any order."""
    if not customer_ids or not skus:
        return set()
    return {(customer_id, sku) for customer_id, sku in session.execute(
        select(ReviewRequest.customer_id, ReviewRequest.product_sku).distinct()
        .where(
            ReviewRequest.kind == "request",
            ReviewRequest.customer_id.in_(sorted(customer_ids)),
            ReviewRequest.product_sku.in_(sorted(skus)),
            ReviewRequest.sent_at > since,
        )
    )}


def _messages_since(session: Session, customer_ids: Set[int], since: datetime) -> Dict[int, int]:
    """Messages sent to each customer after `since`. Rows are per product; a message is one (order, kind)."""
    messages = (
        select(ReviewRequest.customer_id, ReviewRequest.order_id, ReviewRequest.kind).distinct()
        .where(ReviewRequest.customer_id.in_(sorted(customer_ids)), ReviewRequest.sent_at > since)
        .subquery()
    )
    return {customer_id: count for customer_id, count in session.execute(
        select(messages.c.customer_id, func.count()).group_by(messages.c.customer_id)
    )}
