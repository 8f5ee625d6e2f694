"""What a customer has and what is next: the facts the bot's points answer is built from."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Tuple

from sqlalchemy.orm import Session

from bot.loyalty.ledger import balance
from bot.loyalty.program import Program, Reward
from bot.loyalty.tiers import TierStatus, tier_status


@dataclass(frozen=True)
class PointsSummary:
    balance: int
    tier: TierStatus
    redeemable: Tuple[Reward, ...]
    next_reward: Optional[Reward]

    @property
    def points_to_next_reward(self) -> Optional[int]:
        return self.next_reward.points - self.balance if self.next_reward else None


def points_summary(session: Session, customer_id: int, program: Program, now: datetime) -> PointsSummary:
    points = balance(session, customer_id)
    redeemable = tuple(reward for reward in program.rewards if reward.points <= points)
    upcoming = next((reward for reward in program.rewards if reward.points > points), None)
    return PointsSummary(
        balance=points,
        tier=tier_status(session, customer_id, program, now),
        redeemable=redeemable,
        next_reward=upcoming,
    )
