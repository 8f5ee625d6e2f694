"""Consent to proactive messages, per chat: recorded when a shopper says subscribe or unsubscribe, and
honoured by every sender of messages the shopper did not ask for (bot/notices.py's channel deliveries, the
greeting's news). A chat with no recorded choice keeps the channel's default: the shopper started it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.identity.customers import identity_channel
from bot.models import MessageConsent

SUBSCRIBED, UNSUBSCRIBED = "subscribed", "unsubscribed"
MAX_WORDS = 500


@dataclass(frozen=True)
class ConsentChange:
    status: str
    changed: bool  # False: the chat had already said so
    recorded_at: datetime


def consent_status(session: Session, channel: str, sender_id: str) -> Optional[str]:
    """The chat's latest choice (subscribed | unsubscribed), None when it never said."""
    return session.execute(
        select(MessageConsent.status)
        .where(MessageConsent.channel == identity_channel(channel), MessageConsent.sender_id == sender_id)
        .order_by(MessageConsent.id.desc()).limit(1)
    ).scalar_one_or_none()


def may_message(session: Session, channel: str, sender_id: str) -> bool:
    """Whether the shop may send this chat a message it did not ask for."""
    return consent_status(session, channel, sender_id) != UNSUBSCRIBED


def record_consent(session: Session, channel: str, sender_id: str, status: str, *, now: datetime,
                   customer_id: Optional[int] = None, source: str = "chat", words: Optional[str] = None) -> ConsentChange:
    """Record the chat's choice with its time, source and the shopper's words; saying the same again adds no row."""
    if status not in (SUBSCRIBED, UNSUBSCRIBED):
        raise ValueError(f"consent status must be {SUBSCRIBED} or {UNSUBSCRIBED}, not {status!r}")
    channel = identity_channel(channel)
    latest = session.execute(
        select(MessageConsent)
        .where(MessageConsent.channel == channel, MessageConsent.sender_id == sender_id)
        .order_by(MessageConsent.id.desc()).limit(1)
    ).scalar_one_or_none()
    if latest is not None and latest.status == status:
        return ConsentChange(status, changed=False, recorded_at=latest.recorded_at)
    session.add(MessageConsent(channel=channel, sender_id=sender_id, customer_id=customer_id, status=status,
                               source=source, words=(words or "")[:MAX_WORDS] or None, recorded_at=now))
    session.flush()
    return ConsentChange(status, changed=True, recorded_at=now)


def latest_status(channel_column: Any, sender_column: Any) -> Any:
    """SQL: the latest choice (subscribed | unsubscribed | NULL) of the chat named by a row's columns, e.g.
    channel_identities' (channel, external_id) — for queries over many chats (segments)."""
    return (
        select(MessageConsent.status)
        .where(MessageConsent.channel == channel_column, MessageConsent.sender_id == sender_column)
        .order_by(MessageConsent.id.desc()).limit(1)
        .scalar_subquery()
    )


def chats_whose_latest_choice_is(status: str) -> Any:
    """SQL: (channel, sender_id) of every chat whose latest choice is `status` — set-based, for queries over
    a whole store (segments), where a latest-row lookup per chat would be a million index probes."""
    later = MessageConsent.__table__.alias("later_consent")
    return select(MessageConsent.channel, MessageConsent.sender_id).where(
        MessageConsent.status == status,
        ~exists().where(later.c.channel == MessageConsent.channel, later.c.sender_id == MessageConsent.sender_id,
                        later.c.id > MessageConsent.id))


def unsubscribed(channel: str, sender_column: Any) -> ColumnElement:
    """SQL: the chat (`channel`, the row's `sender_column`) has withdrawn its consent — for senders that pick
    recipients in one query."""
    latest = latest_status(identity_channel(channel), sender_column)
    return and_(latest.is_not(None), latest == UNSUBSCRIBED)
