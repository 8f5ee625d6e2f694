"""Requests from shoppers to talk to a person, kept for the merchant's queue."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Optional

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.models import Customer, HandoffRequest, Transcript

MAX_CONTEXT_MESSAGES = 10


def request_handoff(
    session: Session,
    channel: str,
    sender_id: str,
    customer_id: Optional[int],
    last_messages: List[Dict[str, str]],
    language: Optional[str] = None,
) -> HandoffRequest:
    """Open a handoff request, or refresh the one this sender already has open.

    `language`: the language the shopper wrote in when it was not English ("fr"), for the team.
    """
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
            language=language or None,
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
    if language:
        existing.language = language
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


# --- the merchant's queue (console) ------------------------------------------------------------------

HANDOFF_STATUSES = ("open", "closed")


class UnknownHandoff(LookupError):
    """No handoff request with that id."""


@dataclass(frozen=True)
class HandoffRow:
    """A request as the queue lists it, with the customer it belongs to (None for a guest)."""

    request: HandoffRequest
    customer: Optional[Customer]


@dataclass(frozen=True)
class HandoffDetail:
    request: HandoffRequest
    customer: Optional[Customer]
    transcript: Optional[Transcript]  # the whole conversation when it was kept, else only last_messages

    @property
    def turns(self) -> List[Dict[str, Any]]:
        """The conversation to show: the stored transcript, or the request's last messages."""
        return list(self.transcript.turns if self.transcript is not None else self.request.last_messages or [])


def handoff_counts(session: Session) -> Dict[str, int]:
    """Requests by status (every status present, zero when none)."""
    found = dict(session.execute(
        select(HandoffRequest.status, func.count()).group_by(HandoffRequest.status)
    ).all())
    return {status: int(found.get(status, 0)) for status in HANDOFF_STATUSES}


def list_handoffs(session: Session, status: str = "open", limit: int = 50, offset: int = 0) -> List[HandoffRow]:
    """Open requests oldest first (who has waited longest comes first); closed ones most recently closed first."""
    if status not in HANDOFF_STATUSES:
        raise ValueError(f"status must be one of {', '.join(HANDOFF_STATUSES)}")
    order = ((HandoffRequest.requested_at, HandoffRequest.id) if status == "open"
             else (HandoffRequest.closed_at.desc(), HandoffRequest.id.desc()))
    rows = session.execute(
        select(HandoffRequest, Customer).outerjoin(Customer, Customer.id == HandoffRequest.customer_id)
        .where(HandoffRequest.status == status).order_by(*order).limit(limit).offset(offset)
    ).all()
    return [HandoffRow(request, customer) for request, customer in rows]


def handoff_detail(session: Session, request_id: int) -> HandoffDetail:
    request = session.get(HandoffRequest, request_id)
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    customer = session.get(Customer, request.customer_id) if request.customer_id is not None else None
    transcript = session.get(Transcript, request.transcript_id) if request.transcript_id is not None else None
    return HandoffDetail(request, customer, transcript)


def close_handoff(session: Session, request_id: int, closed_by: str, now: datetime) -> HandoffRequest:
    """Close an open request (who, when). Closing a closed request changes nothing: its first closing
    stands, so a double-submitted form or two merchants at once leave one record. A closed request leaves
    the "one open request per sender" index, so the shopper can ask for a person again."""
    session.execute(
        update(HandoffRequest)
        .where(HandoffRequest.id == request_id, HandoffRequest.status == "open")
        .values(status="closed", closed_at=now, closed_by=closed_by[:320])
        .execution_options(synchronize_session=False)
    )
    request = session.get(HandoffRequest, request_id, populate_existing=True)
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    return request
