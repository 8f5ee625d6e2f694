"""Reasons a merchant reads beside a probability: "last order 12 days ago; 4 orders in 9 months, about every
60 days; $412 spent; 80 % likely".

They come from the facts the model used (recency, purchase days, how long the customer has been buying,
spend) — the same ones for every model version, so the sentence means the same thing after a refit.
Orders on the same day count as one order here, as they do in the model.
"""
from __future__ import annotations

from typing import List

import numpy as np

from bot.prediction.model import Scores

DAYS_PER_MONTH = 30.44
# "longer than usual": the time since the last order is over this many times the customer's usual gap.
OVERDUE_FACTOR = 2.0


def likelihood(probability: float) -> str:
    if probability < 0.005:
        return "under 1 % likely"
    if probability > 0.995:
        return "over 99 % likely"
    return f"{probability * 100:.0f} % likely"


def _ago(days: int) -> str:
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def _span(days: float) -> str:
    months = days / DAYS_PER_MONTH
    if months < 2:
        return f"{max(int(round(days)), 1)} days"
    if months < 24:
        return f"{int(round(months))} months"
    return f"{months / 12:.1f} years"


def explain(recency_days: float, purchase_days: int, buying_days: float, active_days: float, spend: float,
            probability: float, currency_symbol: str = "$") -> str:
    """One customer's sentence. `buying_days` is the time from the first order to the date scored,
    `active_days` from the first order to the last."""
    ago = _ago(int(recency_days))
    spent = f"{currency_symbol}{spend:,.0f} spent"
    if purchase_days <= 1:
        return f"first and only order {ago}; {spent}; {likelihood(probability)}"
    interval = active_days / (purchase_days - 1)
    overdue = ", longer than their usual gap" if recency_days > max(OVERDUE_FACTOR * interval, 30) else ""
    every = max(int(round(interval)), 1)
    return (f"last order {ago}{overdue}; {purchase_days} orders in {_span(buying_days)}, about every "
            f"{'day' if every == 1 else f'{every} days'}; {spent}; {likelihood(probability)}")


def explain_no_orders(probability: float) -> str:
    return f"no orders yet; {likelihood(probability)} (the share of customers without an order who then bought)"


def explain_all(scores: Scores, currency_symbol: str = "$") -> List[str]:
    """The sentence of every row of `scores.summary`, in its order."""
    summary = scores.summary
    columns = zip(
        np.floor(summary.recency).astype(np.int64).tolist(), summary.purchase_days.tolist(), summary.T.tolist(),
        summary.t_x.tolist(), summary.spend.tolist(), scores.probability.tolist(),
    )
    return [explain(recency, days, buying, active, spend, probability, currency_symbol)
            for recency, days, buying, active, spend, probability in columns]
