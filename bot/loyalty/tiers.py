"""VIP tiers by qualifying spend over the program's term."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.loyalty.program import Program, Tier
from bot.models import Order


@dataclass(frozen=True)
class TierStatus:
    tier: Tier
    next_tier: Optional[Tier]
    qualifying_spend: Decimal
    spend_to_next: Optional[Decimal]
    term_start: Optional[datetime]


def term_start(program: Program, now: datetime) -> Optional[datetime]:
    """First moment whose spend counts; None for a lifetime term."""
    if program.tier_term == "rolling_12_months":
        return now - relativedelta(months=12)
    if program.tier_term == "calendar_year":
        return datetime(now.year, 1, 1, tzinfo=timezone.utc)
    return None


def qualifying_spend(session: Session, customer_id: int, program: Program, now: datetime) -> Decimal:
    query = select(func.coalesce(func.sum(Order.total), 0)).where(
        Order.customer_id == customer_id, Order.status == "paid", Order.placed_at <= now
    )
    start = term_start(program, now)
    if start is not None:
        query = query.where(Order.placed_at >= start)
    return Decimal(str(session.execute(query).scalar_one()))


def tier_for_spend(program: Program, spend: Decimal) -> Tier:
    current = program.tiers[0]
    for tier in program.tiers:
        if spend >= tier.min_spend:
            current = tier
    return current


def next_tier(program: Program, tier: Tier) -> Optional[Tier]:
    index = program.tiers.index(tier)
    return program.tiers[index + 1] if index + 1 < len(program.tiers) else None


def tier_status(session: Session, customer_id: int, program: Program, now: datetime) -> TierStatus:
    spend = qualifying_spend(session, customer_id, program, now)
    tier = tier_for_spend(program, spend)
    upcoming = next_tier(program, tier)
    return TierStatus(
        tier=tier,
        next_tier=upcoming,
        qualifying_spend=spend,
        spend_to_next=(upcoming.min_spend - spend) if upcoming else None,
        term_start=term_start(program, now),
    )
