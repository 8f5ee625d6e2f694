"""What the merchant's three approval queues (reviews, photos and videos, social-follow claims) share.

Each item is decided once: pending → approved | rejected. Approval pays the item's earning rule through the
ledger (bot.loyalty.earning) and the shopper is told either way through a queued notice (bot.notices).
Guests — items without a customer — are decided like the others but earn nothing and hear nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Tuple, Type, Union

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.loyalty.earning import Credit, award
from bot.loyalty.program import Program
from bot.models import ContentSubmission, Review, SocialFollowClaim
from bot.notices import queue_notice

MAX_NOTE_CHARS = 255  # the moderation_note columns
MAX_ACTOR_CHARS = 64  # the moderated_by columns

Moderated = Union[Review, ContentSubmission, SocialFollowClaim]
ModeratedModel = Type[Moderated]
# The credit an approved item earns its customer (None: nothing to pay), and what the shopper is told.
CreditOf = Callable[[Any], Optional[Credit]]
MessageOf = Callable[[Any, bool, int, Optional[str]], str]  # (item, approved, points paid, note) → text


@dataclass(frozen=True)
class ModerationResult:
    item_id: int
    status: str  # approved | rejected
    points_awarded: int
    customer_id: Optional[int]


class ModerationError(ValueError):
    """A decision that cannot be taken: unknown item, already decided, missing or too long reason."""


def check_decision(approve: bool, actor: str, note: Optional[str]) -> Tuple[str, Optional[str]]:
    """The moderator's name and note as stored; a rejection must say why, because the shopper is told."""
    actor = (actor or "").strip()
    if not actor or len(actor) > MAX_ACTOR_CHARS:
        raise ModerationError(f"the moderator's name must be 1-{MAX_ACTOR_CHARS} characters")
    note = " ".join(note.split()) if note else None
    if not approve and not note:
        raise ModerationError("a rejection needs a reason (the shopper is told it)")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ModerationError(f"the note has {len(note):,} characters; at most {MAX_NOTE_CHARS} are allowed")
    return actor, note


def moderate(
    session: Session,
    program: Program,
    model: ModeratedModel,
    item_id: int,
    *,
    what: str,
    approve: bool,
    actor: str,
    note: Optional[str],
    now: datetime,
    credit_of: CreditOf,
    message_of: MessageOf,
) -> ModerationResult:
    """Decide one pending item: record the decision, pay an approval once, queue the shopper's notice.

    `what` (review | content | social) names the queue in errors, notice kinds ("review_approved", as
    bot.notices.CHAT_NOTICE_KINDS lists them) and notice keys ("review:12:approved").
    """
    actor, note = check_decision(approve, actor, note)
    item = session.get(model, item_id)
    if item is None:
        raise ModerationError(f"no {_label(what)} #{item_id}")
    if item.status != "pending":
        raise ModerationError(f"{_label(what)} #{item_id} is already {item.status}")
    # Worked out before anything is written: a credit that cannot be computed refuses the approval.
    credit = credit_of(item) if approve and item.customer_id is not None else None
    status = "approved" if approve else "rejected"
    _claim(session, model, item, what, status, actor, note, now)
    points = _pay(session, program, item.customer_id, credit, now)
    item.points_awarded = points
    if item.customer_id is not None:
        queue_notice(session, item.customer_id, f"{what}_{status}", message_of(item, approve, points, note),
                     f"{what}:{item.id}:{status}", now)
    session.flush()
    return ModerationResult(item.id, status, points, item.customer_id)


def reason_sentence(note: Optional[str]) -> str:
    """The moderator's note as the end of a sentence the shopper reads."""
    text = (note or "").strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _claim(session: Session, model: ModeratedModel, item: Moderated, what: str, status: str, actor: str,
           note: Optional[str], now: datetime) -> None:
    """Move the item out of pending in one conditional UPDATE, so two moderators deciding at once (or an
    approve racing a reject) cannot both win: the loser matches no row (on PostgreSQL it waits for the
    winner's commit and then re-checks the condition)."""
    result = session.execute(
        update(model)
        .where(model.id == item.id, model.status == "pending")
        .values(status=status, moderated_by=actor, moderated_at=now, moderation_note=note)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)
    if result.rowcount != 1:
        raise ModerationError(f"{_label(what)} #{item.id} is already {item.status}")


def _pay(session: Session, program: Program, customer_id: Optional[int], credit: Optional[Credit],
         now: datetime) -> int:
    """Points actually paid: 0 for guests, a rule switched off, or an occasion the ledger already paid."""
    if customer_id is None or credit is None or credit.points <= 0:
        return 0
    posted = award(session, program, customer_id, credit, now)
    return credit.points if posted.created else 0


_LABELS = {"content": "submission", "social": "social follow claim"}


def _label(what: str) -> str:
    return _LABELS.get(what, what)
