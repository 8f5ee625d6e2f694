"""The audit log: every merchant action in the console (points adjustments, moderation and referral
decisions, erasures, exports, handoff replies and changes) with who, when and what, written in the same
transaction as the action itself, so the log never claims what did not happen or misses what did."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, List, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import AuditEvent, Merchant

ACTIONS: Dict[str, str] = {
    "points_adjusted": "Points adjusted",
    "review_decided": "Review moderated",
    "content_decided": "Photo or video moderated",
    "social_decided": "Follow claim moderated",
    "referral_decided": "Referral decided",
    "campaign_created": "Campaign created",
    "campaign_sent": "Campaign sent",
    "customer_erased": "Personal data erased",
    "feedback_exported": "Feedback exported",
    "customers_exported": "Customers exported",
    "segment_saved": "Segment saved",
    "segment_deleted": "Segment deleted",
    "segment_exported": "Segment exported",
    "handoff_reply": "Handoff reply",
    "handoff_note": "Handoff note",
    "handoff_assigned": "Handoff assigned",
    "handoff_status": "Handoff status",
    "handoff_returned": "Handoff returned to the bot",
    "store_event_retried": "Store event retried",
    "data_request_downloaded": "Customer data request downloaded",
}
MAX_DETAIL_CHARS = 2000


def record(session: Session, merchant: Optional[Merchant], action: str, subject: str, detail: str,
           now: datetime) -> AuditEvent:
    """Log one action of `merchant` (None: the system, e.g. a CLI run)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    actor = f"{merchant.name} <{merchant.email}>" if merchant is not None else "system"
    event = AuditEvent(merchant_id=merchant.id if merchant is not None else None, actor=actor[:320], action=action,
                       subject=subject[:64], detail=(detail or "")[:MAX_DETAIL_CHARS], created_at=now)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class AuditPage:
    events: List[AuditEvent]
    total: int


def list_events(session: Session, action: str = "", limit: int = 50, offset: int = 0) -> AuditPage:
    """Newest first; `action` narrows to one kind."""
    query = select(AuditEvent)
    counting = select(func.count()).select_from(AuditEvent)
    if action:
        query, counting = query.where(AuditEvent.action == action), counting.where(AuditEvent.action == action)
    events = list(session.execute(query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
                                  .limit(limit).offset(offset)).scalars())
    return AuditPage(events, int(session.execute(counting).scalar_one()))
