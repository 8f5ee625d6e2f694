"""Asking for feedback after an order: "How was your order #1042?" with the score buttons.

`run_feedback_requests` (the web app's scheduler runs it with the loyalty jobs; bot/web/scheduler.py)
queues one chat notice (bot/notices.py, kind "feedback_request") for each order that:
- is kept (paid or partially refunded) and was fulfilled feedback.ask_after_fulfilment_days ago or more,
  but not more than LATE_AFTER_DAYS after that (imported order history must not turn into questions about
  purchases from long ago);
- belongs to a customer linked to a chat (a channel identity: the bot has somewhere to ask);
- has no feedback from its customer yet, and was not asked about before (the notice's dedupe key
  "feedback-request:<order id>": at most one request per order, whatever happens to it).
At most one request per customer per run (two orders fulfilled the same week are asked about on two runs).
Nothing is queued when feedback.ask_after_orders is false.

The outbox (bot/outbox/) sends it with its buttons on the shopper's best chat (Telegram, Instagram inside its
24 hours, the widget when it is opened); any channel also tells it at the shopper's next points or tier check
if no channel delivered it before (actions/loyalty.py announce_news). Each button's payload names the order and the
score — `/give_feedback{"feedback_order":<order id>,"feedback_score":<n>}`, at most 64 bytes so it fits
Telegram's callback_data as it is — so a tap answers at once and the bot only asks "why".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Dict, List, Optional, Set

from sqlalchemy import String, and_, cast, exists, literal, or_, select
from sqlalchemy.orm import Session

from bot.feedback.service import PURCHASED_STATUSES, SCALES
from bot.loyalty.program import Program
from bot.models import ChannelIdentity, Feedback, Order, OutboundMessage
from bot.notices import queue_notice

if TYPE_CHECKING:
    from bot.db import Database

NOTICE_KIND = "feedback_request"
LATE_AFTER_DAYS = 14
PAGE_SIZE = 200
MAX_PER_RUN = 1000
MAX_PAYLOAD_BYTES = 64  # Telegram's callback_data
SCORE_INTENT = "give_feedback"
ORDER_ENTITY, SCORE_ENTITY = "feedback_order", "feedback_score"
_CSAT_FACES = {5: "😍", 4: "🙂", 3: "😐", 2: "🙁", 1: "😞"}


def dedupe_key(order_id: int) -> str:
    return f"feedback-request:{order_id}"


def score_payload(score: int, order_id: Optional[int] = None) -> str:
    """The payload of one score button: the intent with the score (and the order, when there is one)."""
    entities: Dict[str, int] = {}
    if order_id is not None:
        entities[ORDER_ENTITY] = int(order_id)
    entities[SCORE_ENTITY] = int(score)
    payload = f"/{SCORE_INTENT}{json.dumps(entities, separators=(',', ':'))}"
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"score button payload of {len(payload.encode('utf-8'))} bytes: Telegram takes at most "
                         f"{MAX_PAYLOAD_BYTES}")
    return payload


def score_buttons(kind: str, order_id: Optional[int] = None) -> List[Dict[str, str]]:
    """The buttons of a CSAT (5 → 1, with faces) or NPS (0 → 10) question."""
    low, high = SCALES[kind]
    if kind == "csat":
        return [{"title": f"{score} {_CSAT_FACES[score]}", "payload": score_payload(score, order_id)}
                for score in range(high, low - 1, -1)]
    return [{"title": str(score), "payload": score_payload(score, order_id)} for score in range(low, high + 1)]


def request_text(kind: str, order_name: str) -> str:
    """The question the notice asks (CSAT for csat and both; NPS for nps)."""
    if kind == "nps":
        return (f"Thanks again for your order {order_name}! How likely are you to recommend us to a friend? "
                "Tap a number: 0 = not at all, 10 = extremely likely.")
    return f"How was your order {order_name}? Tap a number: 5 = loved it, 1 = not happy at all."


def order_name(external_id: str) -> str:
    return f"#{external_id}"


@dataclass(frozen=True)
class DueFeedbackRequest:
    customer_id: int
    order_id: int
    order_external_id: str


def due_feedback_requests(session: Session, program: Program, now: datetime, limit: int = PAGE_SIZE,
                          skip_customers: Optional[Set[int]] = None) -> List[DueFeedbackRequest]:
    """The orders to ask about now, oldest fulfilment first, one per customer (and none of `skip_customers`)."""
    policy = program.feedback
    if not policy.ask_after_orders:
        return []
    latest = now - timedelta(days=policy.ask_after_fulfilment_days)
    linked = exists().where(ChannelIdentity.customer_id == Order.customer_id)
    answered = exists().where(Feedback.order_id == Order.id, Feedback.customer_id == Order.customer_id)
    asked = exists().where(OutboundMessage.dedupe_key == literal("feedback-request:") + cast(Order.id, String))
    query = (
        select(Order.id, Order.customer_id, Order.external_id, Order.fulfilled_at)
        .where(Order.status.in_(PURCHASED_STATUSES), Order.fulfilled_at <= latest,
               Order.fulfilled_at > latest - timedelta(days=LATE_AFTER_DAYS), linked, ~answered, ~asked)
        .order_by(Order.fulfilled_at, Order.id)
        .limit(PAGE_SIZE)
    )
    seen: Set[int] = set(skip_customers or ())
    due: List[DueFeedbackRequest] = []
    after = None
    while len(due) < limit:
        page = query
        if after is not None:  # keyset paging: no OFFSET rescans
            page = page.where(or_(Order.fulfilled_at > after[0], and_(Order.fulfilled_at == after[0], Order.id > after[1])))
        rows = session.execute(page).all()
        for order_id, customer_id, external_id, _ in rows:
            if customer_id in seen:
                continue
            seen.add(customer_id)
            due.append(DueFeedbackRequest(customer_id, order_id, external_id))
            if len(due) >= limit:
                break
        if len(rows) < PAGE_SIZE:
            break
        after = (rows[-1].fulfilled_at, rows[-1].id)
    return due


def queue_feedback_request(session: Session, program: Program, due: DueFeedbackRequest, now: datetime) -> OutboundMessage:
    """Queue the notice asking about one order (once per order: its dedupe key)."""
    kind = "nps" if program.feedback.kind == "nps" else "csat"
    name = order_name(due.order_external_id)
    return queue_notice(
        session, due.customer_id, NOTICE_KIND, request_text(kind, name), dedupe_key(due.order_id), now,
        payload={"order_id": due.order_id, "order": name, "question": kind,
                 "buttons": score_buttons(kind, due.order_id)},
    )


def run_feedback_requests(database: "Database", program: Program, now: datetime,
                          batch_size: int = PAGE_SIZE) -> Dict[str, int]:
    """Queue the due feedback requests, one short write transaction per batch; how many were queued."""
    queued = 0
    customers: Set[int] = set()
    while queued < MAX_PER_RUN:
        with database.session(write=True) as session:
            batch = due_feedback_requests(session, program, now, min(batch_size, MAX_PER_RUN - queued), customers)
            for due in batch:
                queue_feedback_request(session, program, due, now)
                customers.add(due.customer_id)
        queued += len(batch)
        if len(batch) < batch_size:
            break
    return {"feedback_requests_queued": queued}
