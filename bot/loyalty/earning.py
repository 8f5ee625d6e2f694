"""Points for what shoppers do besides buying: each rule pays once per occasion (its idempotency key)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import clock
from bot.loyalty.ledger import LedgerError, PostedEntry, post_entry
from bot.loyalty.program import Program, Tier
from bot.models import LedgerEntry

# The non-order earning rules and what identifies one occasion of each.
ACTIONS = ("signup", "birthday", "social_follow", "review_text", "review_photo", "review_video", "quiz_completion",
           "custom")


@dataclass(frozen=True)
class Credit:
    action: str
    points: int
    reason: str
    key: str


def points_expiry(program: Program, at: datetime) -> datetime:
    """When points earned at `at` expire if nothing else happens on the account."""
    return at + relativedelta(months=program.expiry_inactive_months)


def credit_for(program: Program, customer_id: int, action: str, reference: Optional[str], at: datetime) -> Credit:
    """The points and idempotency key of one earning occasion; LedgerError when it does not exist."""
    earning = program.earning
    if action == "signup":
        return Credit(action, earning.signup, "Welcome bonus for joining", f"signup:{customer_id}")
    if action == "birthday":
        return Credit(action, earning.birthday, f"Birthday bonus {at.year}", f"birthday:{customer_id}:{at.year}")
    if action == "social_follow":
        network = (reference or "").strip().lower()
        if network not in earning.social_networks:
            raise LedgerError(
                f"social_follow needs a network, one of {', '.join(earning.social_networks) or 'none configured'}"
            )
        return Credit(action, earning.social_follow, f"Followed us on {network}", f"social:{customer_id}:{network}")
    if action in ("review_text", "review_photo", "review_video"):
        if not reference:
            raise LedgerError(f"{action} needs the review's id as reference")
        points = getattr(earning, action)
        kind = action.split("_", 1)[1]
        # One source for the three kinds: a review earns once, at the kind it had when credited.
        return Credit("review", points, f"Review ({kind})", f"review:{reference}")
    if action == "quiz_completion":
        if not reference:
            raise LedgerError("quiz_completion needs the quiz id as reference")
        return Credit(action, earning.quiz_completion, f"Completed the {reference} quiz", f"quiz:{customer_id}:{reference}")
    if action == "user_content":
        # Not in ACTIONS (the store API's list): only the merchant's approval of a chat submission pays it.
        if not reference:
            raise LedgerError("user_content needs the submission's id as reference")
        return Credit(action, earning.user_content, "Shared a photo or video", f"content:{reference}")
    raise LedgerError(f"unknown earning action {action!r}; expected one of {', '.join(ACTIONS)}")


def custom_credit(program: Program, customer_id: int, name: str, idempotency_key: str) -> Credit:
    """A merchant-defined action (program earning.custom_actions), credited through the API."""
    points = program.earning.custom_actions.get(name)
    if points is None:
        known = ", ".join(sorted(program.earning.custom_actions)) or "none configured"
        raise LedgerError(f"unknown custom action {name!r} (configured: {known})")
    if not idempotency_key or len(idempotency_key) > 200:
        raise LedgerError("a custom action needs an idempotency key of 1-200 characters")
    return Credit("custom", points, name.replace("_", " ").capitalize(), f"custom:{customer_id}:{name}:{idempotency_key}")


def award(
    session: Session, program: Program, customer_id: int, credit: Credit, at: Optional[datetime] = None
) -> PostedEntry:
    """Post a credit once; a rule switched off (0 points) is refused rather than silently skipped."""
    if credit.points <= 0:
        raise LedgerError(f"{credit.action} earns no points in this program")
    when = at or clock.now()
    return post_entry(
        session,
        customer_id,
        credit.points,
        kind="earn",
        reason=credit.reason,
        source=credit.action,
        idempotency_key=credit.key,
        expires_at=points_expiry(program, when),
        at=when,
    )


def award_tier_entry(session: Session, program: Program, customer_id: int, tier: Tier, at: datetime) -> None:
    """A tier's entry reward, once per customer per tier however often they move in and out of it
    (and whatever the amount is configured to later: a changed amount must not block orders)."""
    key = f"tier:{customer_id}:{tier.name}"
    already = session.execute(
        select(LedgerEntry.id).where(LedgerEntry.source == "tier_entry", LedgerEntry.idempotency_key == key)
    ).first()
    if already is not None:
        return
    post_entry(
        session,
        customer_id,
        tier.entry_reward_points,
        kind="earn",
        reason=f"Welcome to {tier.name}",
        source="tier_entry",
        idempotency_key=key,
        expires_at=points_expiry(program, at),
        at=at,
    )
