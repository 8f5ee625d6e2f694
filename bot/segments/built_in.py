"""The segments every store starts with, written from its program (tier names and spends, the expiry
warning window); a merchant copies one into the editor, changes it and saves it under a name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from bot.loyalty.program import Program
from bot.segments.filters import SegmentFilter


@dataclass(frozen=True)
class BuiltInSegment:
    key: str
    name: str
    description: str
    filter: SegmentFilter


def built_in_segments(program: Program) -> Dict[str, BuiltInSegment]:
    vip_tiers = [tier.name for tier in program.tiers[1:]] or [program.tiers[0].name]
    vip_spend = float(program.tiers[1].min_spend) if len(program.tiers) > 1 else 0.0
    specs = (
        ("vips_at_risk", "VIPs at risk",
         "Customers in a tier above the first who spent at least its threshold, and whose predicted chance of "
         "ordering in 90 days fell by 15 points or more since the previous refit to below 50 %.",
         [{"kind": "tier", "tiers": vip_tiers},
          {"kind": "likely_to_lapse", "min_spend": vip_spend, "min_drop": 15, "below": 50}]),
        ("one_time_buyers_likely_to_return", "One-time buyers likely to return",
         "Exactly one order so far, and at least a 40 % chance of another within 90 days.",
         [{"kind": "frequency", "min": 1, "max": 1}, {"kind": "probability", "min": 40}]),
        ("points_about_to_expire", "Points about to expire",
         f"A balance that expires within the program's warning window ({program.expiry_warn_days} days).",
         [{"kind": "points_expiring", "days": program.expiry_warn_days, "min_points": 1}]),
        ("happy_never_referred", "Happy customers who never referred",
         "Latest CSAT 4–5 or NPS 9–10, and never brought a friend: ask them to.",
         [{"kind": "feedback", "survey": "any", "mood": "happy"}, {"kind": "referrals", "referred": False}]),
        ("detractors", "Detractors",
         "Latest NPS answer 0–6.",
         [{"kind": "feedback", "survey": "nps", "mood": "unhappy"}]),
    )
    return {key: BuiltInSegment(key, name, description, SegmentFilter.from_json(conditions))
            for key, name, description, conditions in specs}
