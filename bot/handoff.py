"""Requests from shoppers to talk to a person, kept for the merchant's queue."""
from __future__ import annotations

from typing import Dict, List, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.models import HandoffRequest

MAX_CONTEXT_MESSAGES = 10


def request_handoff(
    session: Session,
    channel: str,
    sender_id: str,
    customer_id: Optional[int],
    last_messages: List[Dict[str, str]],
) -> HandoffRequest:
    """Open a handoff request, or refresh the one this sender already has open."""
    context = last_messages[-MAX_CONTEXT_MESSAGES:]
    existing = _open_request(session, channel, sender_id)
    if existing is None:
        request = HandoffRequest(
            channel=channel,
            sender_id=sender_id,
            customer_id=customer_id,
            status="open",
            last_messages=context,
            requested_at=clock.now(),
        )
        try:
            with session.begin_nested():
                session.add(request)
                session.flush()
            return request
        except IntegrityError:
            # The same sender's request was opened concurrently; refresh that one instead.
            existing = _open_request(session, channel, sender_id)
            if existing is None:
                raise
    existing.last_messages = context
    return existing


def _open_request(session: Session, channel: str, sender_id: str) -> Optional[HandoffRequest]:
    return session.execute(
        select(HandoffRequest).where(
            HandoffRequest.channel == channel,
            HandoffRequest.sender_id == sender_id,
            HandoffRequest.status == "open",
        )
    ).scalar_one_or_none()


def open_requests(session: Session) -> List[HandoffRequest]:
    return list(
        session.execute(
            select(HandoffRequest).where(HandoffRequest.status == "open").order_by(HandoffRequest.requested_at)
        ).scalars()
    )
