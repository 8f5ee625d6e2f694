"""Redeeming rewards for points, and what every code honoured at checkout shares: its refusals and its use
(checking and using one, reward code or friend offer, is bot/checkout.py)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import List, Optional, Protocol

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import clock
from bot.loyalty.ledger import Conflict, LedgerError, NotFound, Overdraft, post_entry
from bot.loyalty.program import Program, Reward
from bot.models import Customer, RewardCode

# Crockford's base32 without look-alikes (no I, L, O, U): easy to read out and type at checkout.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 3
CODE_GROUP_LENGTH = 4  # 12 random symbols = 60 bits: unguessable, and still short enough to type
CODE_PREFIX = "RW"


class RedemptionError(LedgerError):
    """A redemption that cannot happen (not enough points)."""


class UnknownReward(RedemptionError, NotFound):
    """The reward or the customer does not exist."""


class CodeRefused(ValueError):
    """A code the store must not honour at checkout; `reason` is one of REFUSALS, `found` the code's row
    when it exists (bot/checkout.py sets it)."""

    def __init__(self, code: str, reason: str, detail: str, found: Optional[object] = None) -> None:
        self.code, self.reason, self.found = code, reason, found
        super().__init__(detail)


# not_first_order and own_code refuse a friend's referral offer (bot/advocacy/friend_offers.py).
REFUSALS = ("unknown", "used", "expired", "cancelled", "below_minimum", "wrong_currency", "invalid_order",
            "not_first_order", "own_code")


@dataclass(frozen=True)
class Redemption:
    code: RewardCode
    created: bool  # False when the same request (idempotency key) had already redeemed


def new_code() -> str:
    symbols = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LENGTH))
    groups = [symbols[i:i + CODE_GROUP_LENGTH] for i in range(0, len(symbols), CODE_GROUP_LENGTH)]
    return "-".join([CODE_PREFIX, *groups])


def normalize_code(code: str) -> str:
    """What a person typed → the stored form (case, spaces, look-alike letters)."""
    cleaned = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    if cleaned.startswith(CODE_PREFIX):
        body = cleaned[len(CODE_PREFIX):].replace("O", "0").replace("I", "1").replace("L", "1")
        if len(body) == CODE_GROUPS * CODE_GROUP_LENGTH:
            groups = [body[i:i + CODE_GROUP_LENGTH] for i in range(0, len(body), CODE_GROUP_LENGTH)]
            return "-".join([CODE_PREFIX, *groups])
    return cleaned[:32]


def affordable_rewards(program: Program, balance: int) -> List[Reward]:
    return [reward for reward in program.rewards if reward.points <= balance]


def redeem(
    session: Session,
    program: Program,
    customer_id: int,
    reward_id: str,
    *,
    idempotency_key: Optional[str] = None,
    now: Optional[datetime] = None,
) -> Redemption:
    """Spend the reward's points and issue its code, in the caller's transaction.

    The deduction is a conditional UPDATE (balance ≥ cost), so concurrent redemptions against one
    balance can never spend more than it holds. The same idempotency key (a double-submitted
    button) returns the first redemption's code instead of redeeming twice.
    """
    reward = program.reward(reward_id)
    if reward is None:
        raise UnknownReward(f"no reward with id {reward_id!r}")
    key = idempotency_key or secrets.token_hex(16)
    if len(key) > 200:
        raise RedemptionError("idempotency key is longer than 200 characters")
    when = now or clock.now()
    # Kept in a local: the session holds loaded objects weakly, and post_entry reads the same customer.
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownReward(f"no customer with id {customer_id}")
    try:
        posted = post_entry(
            session,
            customer_id,
            -reward.points,
            kind="redeem",
            reason=f"Redeemed: {reward.title}",
            source="redemption",
            source_ref=reward.id,
            idempotency_key=f"{customer_id}:{key}",
            at=when,
        )
    except Overdraft:
        raise RedemptionError(
            f"customer {customer_id} does not have the {reward.points} points {reward.title} costs"
        ) from None
    if not posted.created:
        if posted.entry.source_ref != reward.id:
            raise Conflict(f"idempotency key {key!r} was already used to redeem {posted.entry.source_ref!r}")
        existing = session.execute(
            select(RewardCode).where(RewardCode.ledger_entry_id == posted.entry.id)
        ).scalar_one()
        return Redemption(existing, created=False)
    code = RewardCode(
        code=new_code(),
        customer_id=customer_id,
        reward_id=reward.id,
        title=reward.title,
        kind=reward.kind,
        value=reward.value,
        product_sku=reward.product_sku,
        currency=program.currency,
        points_spent=reward.points,
        min_order=reward.min_order,
        ledger_entry_id=posted.entry.id,
        status="issued",
        issued_at=when,
        expires_at=when + relativedelta(months=reward.valid_months),
    )
    session.add(code)
    session.flush()
    return Redemption(code, created=True)


def find_code(session: Session, code: str) -> Optional[RewardCode]:
    return session.execute(select(RewardCode).where(RewardCode.code == normalize_code(code))).scalar_one_or_none()


class CheckoutCode(Protocol):
    """What a code honoured at checkout has (a RewardCode, a FriendOffer), enough to tell whether it may be used."""

    id: int
    code: str
    status: str  # issued | used | cancelled
    expires_at: datetime
    min_order: Optional[Decimal]
    used_order_ref: Optional[str]


def refusal_for(
    found: CheckoutCode, *, now: datetime, order_total: Optional[Decimal] = None,
    order_currency: Optional[str] = None, code_currency: Optional[str] = None,
) -> Optional[CodeRefused]:
    """Why the store must not honour a code now (used, cancelled, expired, another currency, an order below
    its minimum), or None. The one check of reward codes and friend offers; a friend offer has no currency
    (code_currency None), so the currencies are compared only when both are given."""
    if found.status == "used":
        return CodeRefused(found.code, "used", f"code {found.code} was already used on order {found.used_order_ref}")
    if found.status == "cancelled":
        return CodeRefused(found.code, "cancelled", f"code {found.code} was cancelled")
    if found.expires_at <= now:
        return CodeRefused(found.code, "expired", f"code {found.code} expired on {found.expires_at:%Y-%m-%d}")
    if order_currency is not None and code_currency is not None and order_currency.strip().upper() != code_currency:
        return CodeRefused(found.code, "wrong_currency", f"code {found.code} is for {code_currency} orders")
    if order_total is not None and found.min_order is not None and Decimal(order_total) < found.min_order:
        return CodeRefused(
            found.code, "below_minimum",
            f"code {found.code} needs an order of at least {found.min_order} (this one is {order_total})",
        )
    return None


def mark_used(session: Session, found: CheckoutCode, order_ref: str, now: datetime, **also: object) -> bool:
    """Mark an issued code (a RewardCode or a FriendOffer) used for an order; False when it was not issued
    (any more). Conditional: of two checkouts racing for one code, exactly one sees it change."""
    model = type(found)
    result = session.execute(
        update(model).where(model.id == found.id, model.status == "issued")  # type: ignore[attr-defined]
        .values(status="used", used_at=now, used_order_ref=order_ref, **also)
        .execution_options(synchronize_session=False)
    )
    session.expire(found)
    return result.rowcount == 1


def codes_of(session: Session, customer_id: int, limit: int = 10) -> List[RewardCode]:
    return list(
        session.execute(
            select(RewardCode).where(RewardCode.customer_id == customer_id)
            .order_by(RewardCode.issued_at.desc(), RewardCode.id.desc()).limit(limit)
        ).scalars()
    )
