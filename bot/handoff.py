"""Requests from shoppers to talk to a person, kept for the merchant's queue."""
from __future__ import annotations

from typing import Dict, List, Optional

from sqlalchemy import select
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
    """Open a handoff request, or return the one this sender already has open."""
    existing = session.execute(
        select(HandoffRequest).where(
            HandoffRequest.channel == channel,
            HandoffRequest.sender_id == sender_id,
            HandoffRequest.status == "open",
        )
    ).scalar_one_or_none()
    if existing is not None:
        existing.last_messages = last_messages[-MAX_CONTEXT_MESSAGES:]
        return existing
    request = HandoffRequest(
        channel=channel,
        sender_id=sender_id,
        customer_id=customer_id,
        status="open",
        last_messages=last_messages[-MAX_CONTEXT_MESSAGES:],
        requested_at=clock.now(),
    )
    session.add(request)
    session.flush()
    return request


def open_requests(session: Session) -> List[HandoffRequest]:
    return list(
        session.execute(
            select(HandoffRequest).where(HandoffRequest.status == "open").order_by(HandoffRequest.requested_at)
        ).scalars()
    )
