"""Amounts and budgets in what shoppers type: "under 100", "$250", "100-300", "1.5k" → a price range, shared
by the quiz's budget questions and catalog search, with the stretch both allow before giving up."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Optional

BUDGET_STRETCH = 1.25  # the first relaxation of a budget: up to 25% over a ceiling (or under a floor)

# Bounded digit runs: an unbounded \d+ backtracks quadratically on a long string of digits.
_AMOUNT = r"\$?\s*(\d{1,12}(?:\.\d{1,6})?)\s*(k\b)?"
_UNDER = r"(?:under|below|less than|up to|upto|max(?:imum)?|at most|no more than|cheaper than|within|<|<=)"
_OVER = r"(?:over|above|more than|at least|min(?:imum)?|from|>|>=|starting at)"

BUDGET_WORDS = frozenset("""under below less than up to upto max maximum at most no more cheaper within over above
least min minimum from starting between and around about roughly dollars dollar bucks usd k""".split())


@dataclass(frozen=True)
class Budget:
    low: Optional[Decimal]  # at least
    high: Optional[Decimal]  # at most


def _amount(number: str, thousands: Optional[str]) -> Decimal:
    value = Decimal(number)
    return value * 1000 if thousands else value


def parse_budget(text: str) -> Optional[Budget]:
    """ "under 100", "$250", "100-300", "between 100 and 300", "over 500", "500+", "1.5k", "$1,200" → a range."""
    raw = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower())
    raw = raw.replace("–", "-").replace("—", "-")
    try:
        match = re.search(rf"(?:between\s+)?{_AMOUNT}\s*(?:-|to|and)\s*{_AMOUNT}", raw)
        if match:
            first, second = _amount(match[1], match[2]), _amount(match[3], match[4])
            return Budget(min(first, second), max(first, second))
        match = re.search(rf"{_UNDER}\s*{_AMOUNT}", raw)
        if match:
            return Budget(None, _amount(match[1], match[2]))
        match = re.search(rf"{_OVER}\s*{_AMOUNT}", raw) or re.search(rf"{_AMOUNT}\s*(?:\+|and up|or more|plus)", raw)
        if match:
            return Budget(_amount(match[1], match[2]), None)
        match = re.search(_AMOUNT, raw)
        if match:
            return Budget(None, _amount(match[1], match[2]))
    except InvalidOperation:
        return None
    return None
