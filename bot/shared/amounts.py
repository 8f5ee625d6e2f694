"""Amounts and budgets in what shoppers type: "under 100", "$250", "100-300", "1.5k" → a price range, shared
by the quiz's budget questions and catalog search, with the stretch both allow before giving up; numbers
written as words ("four hundred", "a grand", "six of us") for the places that expect a number."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import List, Optional

BUDGET_STRETCH = 1.25  # the first relaxation of a budget: up to 25% over a ceiling (or under a floor)

# Bounded digit runs: an unbounded \d+ backtracks quadratically on a long string of digits.
_AMOUNT = r"\$?\s*(\d{1,12}(?:\.\d{1,6})?)\s*(k\b)?"
_UNDER = (r"(?:under|below|less than|up to|upto|max(?:imum)?|at most|no more than|cheaper than|within|<|<="
          r"|(?:nothing|not|never|no) (?:over|above|more than|higher than|pricier than))")
_OVER = r"(?:over|above|more than|at least|min(?:imum)?|from|>|>=|starting at)"

BUDGET_WORDS = frozenset("""under below less than up to upto max maximum at most no more cheaper within over above
nothing not higher pricier least min minimum from starting between and around about roughly dollars dollar bucks usd k""".split())


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


_UNITS = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {word: value * 10 for value, word in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split())
         if word != "_"}
_SCALES = {"hundred": 100, "thousand": 1000, "grand": 1000}


def spelled_numbers(text: str) -> str:
    """The text with numbers written as words turned into digits: "under four hundred" → "under 400",
    "a grand" → "1000", "six of us" → "6 of us", "two fifty" stays two numbers ("2 50"). Only for places
    that expect a number (a budget, how many people): elsewhere "one" is usually not a number."""
    out: List[str] = []
    number: Optional[int] = None  # the number being read
    current = 0  # its part below the last scale word

    def flush() -> None:
        nonlocal number, current
        if number is not None:
            out.append(str(number + current))
        number, current = None, 0

    words = re.findall(r"\S+", text)
    for position, word in enumerate(words):
        bare = word.lower().strip(".,!?;:").replace("-", " ")
        parts = bare.split()
        if parts and all(part in _UNITS or part in _TENS for part in parts):  # "forty-five" too
            value = sum(_UNITS.get(part, 0) + _TENS.get(part, 0) for part in parts)
            if number is not None and current % 100 and value >= 10:
                flush()  # "two fifty": two numbers
            if number is None:
                number = 0
            current += value
            continue
        if bare in _SCALES and (number is not None or (out and out[-1].lower() == "a")):
            if number is None:
                out.pop()  # "a grand", "a hundred"
                number, current = 0, 1
            scale = _SCALES[bare]
            if scale == 100:
                current = (current or 1) * 100
            else:
                number, current = (number + (current or 1)) * scale, 0
            continue
        following = words[position + 1].lower().strip(".,!?;:").split("-")[0] if position + 1 < len(words) else ""
        if bare == "and" and number is not None and current >= 100 and (following in _UNITS or following in _TENS):
            continue  # "two hundred and fifty"
        flush()
        out.append(word)
    flush()
    return " ".join(out)
