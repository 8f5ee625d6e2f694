"""What points are worth in money, read off the program's rewards: the rate of the money-off rewards, the
cheapest reward, and the most a balance can take off one order. The program has no cash-out: a point is
worth what the rewards give for it."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Optional, Tuple

from bot.loyalty.program import Program, Reward


@dataclass(frozen=True)
class PointValue:
    """The money a point buys through the amount-off rewards (None when the program has none)."""

    lowest_per_point: Optional[Decimal]
    highest_per_point: Optional[Decimal]
    cheapest: Optional[Reward]  # the reward with the fewest points, whatever its kind
    money_rewards: Tuple[Reward, ...]  # amount-off rewards, fewest points first

    @property
    def flat(self) -> bool:
        """Every amount-off reward gives the same money per point."""
        return self.lowest_per_point is not None and self.lowest_per_point == self.highest_per_point

    def points_per_currency_unit(self) -> Optional[Decimal]:
        """How many points one unit of currency off takes at the best rate (100 for 1¢ a point)."""
        if not self.highest_per_point:
            return None
        return (Decimal(1) / self.highest_per_point).normalize()


def point_value(program: Program) -> PointValue:
    money = tuple(sorted((reward for reward in program.rewards if reward.kind == "amount_off" and reward.value),
                         key=lambda reward: reward.points))
    rates = [Decimal(reward.value) / reward.points for reward in money]
    cheapest = min(program.rewards, key=lambda reward: reward.points) if program.rewards else None
    return PointValue(min(rates) if rates else None, max(rates) if rates else None, cheapest, money)


def best_money_reward(program: Program, balance: int) -> Optional[Reward]:
    """The amount-off reward worth the most money that `balance` points can buy now (one reward, one order)."""
    affordable = [reward for reward in point_value(program).money_rewards if reward.points <= balance]
    return max(affordable, key=lambda reward: (reward.value, -reward.points)) if affordable else None


def balance_worth(program: Program, balance: int) -> Optional[Decimal]:
    """`balance` points at the best amount-off rate, in currency rounded down to cents (an estimate: rewards
    come in steps)."""
    rate = point_value(program).highest_per_point
    if rate is None or balance <= 0:
        return None
    return (rate * balance).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
