"""Messages the bot owes a shopper outside a conversation (a review approved, a referral rewarded, …).

They are queued as OutboundMessage rows, one per occasion (dedupe_key); the channels deliver them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import not_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.consent import unsubscribed
from bot.db import Database, transaction
from bot.identity.customers import identity_channel
from bot.models import ChannelIdentity, OutboundMessage


def queue_notice(
    session: Session,
    customer_id: int,
    kind: str,
    text: str,
    dedupe_key: str,
    now: datetime,
    payload: Optional[Dict[str, Any]] = None,
) -> OutboundMessage:
    """Queue a message for the customer once per `dedupe_key`; the queued (or earlier) row."""
    existing = _find(session, dedupe_key)
    if existing is not None:
        return existing
    message = OutboundMessage(
        customer_id=customer_id, kind=kind, text=text, payload=payload or {}, dedupe_key=dedupe_key,
        status="queued", created_at=now, send_after=now,
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:  # the same occasion queued concurrently
        found = _find(session, dedupe_key)
        assert found is not None
        return found
    return message


def _find(session: Session, dedupe_key: str) -> Optional[OutboundMessage]:
    return session.execute(select(OutboundMessage).where(OutboundMessage.dedupe_key == dedupe_key)).scalar_one_or_none()


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
    for notice in notices:
        notice.status, notice.sent_at = "sent", now
    return [ChatNotice(notice.text, notice_buttons(notice)) for notice in notices]


def _queued_chat_notices(customer_id: int) -> tuple:
    # A notice a channel failed to push (the shopper blocked the Telegram bot) is still told in chat.
    return (OutboundMessage.customer_id == customer_id, OutboundMessage.status.in_(("queued", "failed")),
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
    """Queued chat notices due by `now` of customers linked on `channel`, oldest first, marked sent.

    At most once: they are marked sent (sent_at=now) in the caller's transaction, before anything is sent,
    so a crash after the commit loses a notice rather than sending it twice. Rows another transaction has
    claimed but not committed are skipped (PostgreSQL FOR UPDATE SKIP LOCKED); on SQLite a write transaction
    (claim_deliveries) serialises claimers. A customer with several
    identities on the channel is sent to the most recently created one that takes messages; customers with
    none, or whose chats there all blocked the bot, are untouched (they are told in the conversation,
    claim_chat_notices).
    """
    channel = identity_channel(channel)
    # A chat that blocked the bot, or said "unsubscribe" (bot/consent.py), gets nothing pushed; its notices wait to
    # be told in the conversation when the shopper next asks about their points.
    reachable = (ChannelIdentity.channel == channel, ChannelIdentity.unreachable_since.is_(None),
                 not_(unsubscribed(channel, ChannelIdentity.external_id)))
    linked = select(ChannelIdentity.id).where(
        ChannelIdentity.customer_id == OutboundMessage.customer_id, *reachable
    ).exists()
    notices = session.execute(
        select(OutboundMessage)
        .where(OutboundMessage.status == "queued", OutboundMessage.kind.in_(CHAT_NOTICE_KINDS),
               OutboundMessage.send_after <= now, linked)
        .order_by(OutboundMessage.id)
        .limit(limit)
        .with_for_update(of=OutboundMessage, skip_locked=True)
    ).scalars().all()
    if not notices:
        return []
    recipients: Dict[int, str] = {}
    for customer_id, external_id in session.execute(
        select(ChannelIdentity.customer_id, ChannelIdentity.external_id)
        .where(*reachable, ChannelIdentity.customer_id.in_({notice.customer_id for notice in notices}))
        .order_by(ChannelIdentity.created_at, ChannelIdentity.id)
    ):
        recipients[customer_id] = external_id  # the latest identity wins
    claimed = []
    for notice in notices:
        external_id = recipients.get(notice.customer_id)
        if external_id is None:  # unlinked since the first query: left for the conversation
            continue
        notice.status, notice.sent_at = "sent", now
        claimed.append(PendingDelivery(notice.id, notice.customer_id, external_id, notice.text, notice_buttons(notice)))
    session.flush()
    return claimed


def claim_deliveries(channel: str, now: datetime, limit: int = 20, *,
                     database: Optional[Database] = None) -> List[PendingDelivery]:
    """claim_for_channel in its own write transaction: what a channel's delivery loop calls (channels open
    no sessions)."""
    return transaction(lambda session: claim_for_channel(session, channel, now, limit), write=True, database=database)


def delivery_failed(notice_id: int, reason: str, *, database: Optional[Database] = None) -> bool:
    """mark_failed in its own write transaction, for a channel's delivery loop."""
    return transaction(lambda session: mark_failed(session, notice_id, reason), write=True, database=database)


def mark_failed(session: Session, notice_id: int, reason: str) -> bool:
    """A claimed notice could not be delivered: status "failed", payload["error"] = the reason (≤ 200
    characters; the caller keeps secrets out of it). False when there is no such notice."""
    notice = session.get(OutboundMessage, notice_id)
    if notice is None:
        return False
    notice.status = "failed"
    notice.payload = {**(notice.payload or {}), "error": reason[:MAX_ERROR_CHARS]}
    session.flush()
    return True
