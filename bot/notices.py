"""Messages the bot owes a shopper outside a conversation (a review approved, a referral rewarded, …).

They are queued in the outbox (bot/outbox/), one per occasion (dedupe_key); the scheduler routes them, the
channels deliver them, and the ones no channel pushed are told in the conversation (claim_chat_messages).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from bot.db import Database, transaction
from bot.models import OutboundMessage
from bot.outbox.service import UNSUBSCRIBED, claim_routed, enqueue
from bot.outbox.service import mark_failed as outbox_mark_failed


def queue_notice(
    session: Session,
    customer_id: int,
    kind: str,
    text: str,
    dedupe_key: str,
    now: datetime,
    payload: Optional[Dict[str, Any]] = None,
) -> OutboundMessage:
    """Queue a message for the customer once per `dedupe_key` in the outbox (bot.outbox.service.enqueue)."""
    return enqueue(session, customer_id, kind, text, dedupe_key, now, payload=payload)


# Notices about something the shopper did in chat (a review, a photo, a follow, a friend's order) and the
# question about an order they received (bot/feedback/requests.py): told in the conversation at the
# shopper's next points or tier check, if no channel delivered them before.
CHAT_NOTICE_KINDS = ("review_approved", "review_rejected", "content_approved", "content_rejected",
                     "social_approved", "social_rejected", "referral_rewarded", "referral_reversed",
                     "feedback_request")


@dataclass(frozen=True)
class ChatNotice:
    """A notice as the shopper sees it: its text and the buttons it comes with (payload["buttons"])."""

    text: str
    buttons: Tuple[Dict[str, str], ...] = ()


def notice_buttons(notice: OutboundMessage) -> Tuple[Dict[str, str], ...]:
    """The buttons a notice's payload carries ([{"title", "payload"}]); none for most kinds."""
    buttons = (notice.payload or {}).get("buttons") or ()
    return tuple({"title": str(button["title"]), "payload": str(button["payload"])}
                 for button in buttons if isinstance(button, dict) and button.get("title") and button.get("payload"))


def has_chat_notices(session: Session, customer_id: int) -> bool:
    return session.execute(
        select(OutboundMessage.id).where(*_queued_chat_notices(customer_id)).limit(1)
    ).first() is not None


def claim_chat_notices(session: Session, customer_id: int, now: datetime, limit: int = 5) -> List[str]:
    """The texts of the customer's queued chat notices, oldest first, marked sent (so told once)."""
    return [notice.text for notice in claim_chat_messages(session, customer_id, now, limit)]


def claim_chat_messages(session: Session, customer_id: int, now: datetime, limit: int = 5) -> List[ChatNotice]:
    """The customer's queued chat notices with their buttons, oldest first, marked sent (so told once)."""
    notices = session.execute(
        select(OutboundMessage).where(*_queued_chat_notices(customer_id)).order_by(OutboundMessage.id).limit(limit)
        # Two turns of one customer at once (PostgreSQL) must not both tell the same news.
        .with_for_update()
    ).scalars().all()
    for notice in notices:  # told in the conversation: delivered there
        notice.status, notice.sent_at, notice.delivered_at, notice.updated_at = "delivered", now, now, now
        notice.channel = notice.channel or "conversation"
    return [ChatNotice(notice.text, notice_buttons(notice)) for notice in notices]


def _queued_chat_notices(customer_id: int) -> tuple:
    # A notice a channel failed to push (the shopper blocked the Telegram bot) is still told in chat.
    # So is one held back from pushing because the chat unsubscribed: the shopper is asking now.
    return (OutboundMessage.customer_id == customer_id,
            or_(OutboundMessage.status.in_(("queued", "failed", "waiting_for_window")),
                and_(OutboundMessage.status == "skipped", OutboundMessage.reason == UNSUBSCRIBED)),
            OutboundMessage.kind.in_(CHAT_NOTICE_KINDS))


# -- delivery by a channel that may message the shopper first (Telegram) ------------------------------

MAX_ERROR_CHARS = 200


@dataclass(frozen=True)
class PendingDelivery:
    """A claimed chat notice to send to `external_id` (the customer's sender id on the channel)."""

    notice_id: int
    customer_id: int
    external_id: str
    text: str
    buttons: Tuple[Dict[str, str], ...] = ()  # sent with the text when there are any


def claim_for_channel(session: Session, channel: str, now: datetime, limit: int = 20) -> List[PendingDelivery]:
    """Due outbox messages the scheduler routed to `channel` (bot.outbox.service.route_due picked the chat:
    consent, reachability, quiet hours, the cap), oldest first, marked sent before anything is sent (at most
    once). Rows another transaction claimed but not committed are skipped (PostgreSQL SKIP LOCKED)."""
    return [PendingDelivery(d.message_id, d.customer_id, d.recipient, d.text, d.buttons)
            for d in claim_routed(session, channel, now, limit)]


def claim_deliveries(channel: str, now: datetime, limit: int = 20, *,
                     database: Optional[Database] = None) -> List[PendingDelivery]:
    """claim_for_channel in its own write transaction: what a channel's delivery loop calls (channels open
    no sessions)."""
    return transaction(lambda session: claim_for_channel(session, channel, now, limit), write=True, database=database)


def delivery_failed(notice_id: int, reason: str, *, database: Optional[Database] = None) -> bool:
    """mark_failed in its own write transaction, for a channel's delivery loop."""
    return transaction(lambda session: mark_failed(session, notice_id, reason), write=True, database=database)


def mark_failed(session: Session, notice_id: int, reason: str) -> bool:
    """A claimed notice could not be delivered: status "failed", the error kept (bot.outbox.service.mark_failed).
    False when there is no such notice."""
    return outbox_mark_failed(session, notice_id, reason)
