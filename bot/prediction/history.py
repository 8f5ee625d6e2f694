"""A store's order history as numpy arrays, and what it says about each customer at a moment in time.

`OrderHistory` holds one row per customer and purchase day (orders on the same day are one purchase, as
in the BTYD literature), sorted by customer then day. `summarize(history, at)` reduces it, without a
Python loop over customers, to the facts the models and the reasons use: first and last purchase day,
purchase days, spend, recent activity, as they stood just before `at`. Times are in days since
1970-01-01 UTC (floats for moments, whole numbers for purchase days).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

import numpy as np

SECONDS_PER_DAY = 86_400.0
RECENT_WINDOWS = (30, 90, 180, 365)  # purchase days in the last N days, for the classifier
DECAY_HALF_LIVES = (30, 90, 180)  # purchase days weighted by how long ago (half-life in days)
EARLY_DAYS = 60  # purchase days within this many days of the first: how fast a new customer came back


def day_number(moment: datetime) -> float:
    """A moment as days since 1970-01-01 UTC (fractional)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place on the timeline")
    return moment.astimezone(timezone.utc).timestamp() / SECONDS_PER_DAY


@dataclass(frozen=True)
class OrderHistory:
    """Purchases per customer and day: `customer` (int64), `day` (int64 day numbers), `amount` (float64,
    what was paid and kept that day), sorted by customer then day, one row per (customer, day)."""

    customer: np.ndarray
    day: np.ndarray
    amount: np.ndarray

    @classmethod
    def from_orders(cls, customer: np.ndarray, moment_days: np.ndarray, amount: np.ndarray) -> "OrderHistory":
        """From one row per order (any order): moments in days since the epoch, amounts; same-day orders
        of a customer are added together."""
        customer = np.asarray(customer, dtype=np.int64)
        day = np.floor(np.asarray(moment_days, dtype=np.float64)).astype(np.int64)
        amount = np.asarray(amount, dtype=np.float64)
        if len(customer) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, np.zeros(0))
        order = np.lexsort((day, customer))
        customer, day, amount = customer[order], day[order], amount[order]
        starts = np.flatnonzero(np.r_[True, (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])])
        return cls(customer[starts], day[starts], np.add.reduceat(amount, starts))

    def __len__(self) -> int:
        return len(self.customer)

    def before(self, at: float) -> "OrderHistory":
        keep = self.day < at
        return OrderHistory(self.customer[keep], self.day[keep], self.amount[keep])

    def buyers_between(self, start: float, end: float) -> np.ndarray:
        """The distinct customers with a purchase day in [start, end)."""
        keep = (self.day >= start) & (self.day < end)
        return np.unique(self.customer[keep])


@dataclass(frozen=True)
class CustomerSummary:
    """One row per customer with at least one purchase before `at` (sorted by customer id)."""

    at: float
    customer: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray
    purchase_days: np.ndarray  # distinct days with a purchase
    spend: np.ndarray
    last_amount: np.ndarray
    recent: np.ndarray  # (customers, len(RECENT_WINDOWS)) purchase days within each window before `at`
    decayed: np.ndarray  # (customers, len(DECAY_HALF_LIVES)) purchase days, each weighted 2^(−age / half-life)
    longest_gap: np.ndarray  # the longest stretch between two purchase days (0 for one purchase)
    early: np.ndarray  # purchase days within EARLY_DAYS of the first one (the first included)
    largest_amount: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)

    # BTYD's (x, t_x, T), in days.
    @property
    def x(self) -> np.ndarray:
        return (self.purchase_days - 1).astype(np.float64)

    @property
    def t_x(self) -> np.ndarray:
        return (self.last_day - self.first_day).astype(np.float64)

    @property
    def T(self) -> np.ndarray:
            return self.at - self.first_day.astype(np.float64)

    @property
    def recency(self) -> np.ndarray:
        """Days from the last purchase day to `at`."""
        return self.at - self.last_day.astype(np.float64)


def summarize(history: OrderHistory, at: float, customers: Optional[np.ndarray] = None) -> CustomerSummary:
    """Each customer's purchases before `at` (day number; purchases on days < at count). With `customers`,
    only those (a sorted array of ids) are kept."""
    past = history.before(at)
    if customers is not None:
        keep = np.isin(past.customer, customers)
        past = OrderHistory(past.customer[keep], past.day[keep], past.amount[keep])
    if len(past) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return CustomerSummary(at, empty, empty, empty, empty, np.zeros(0), np.zeros(0),
                               np.zeros((0, len(RECENT_WINDOWS))), np.zeros((0, len(DECAY_HALF_LIVES))),
                               np.zeros(0), np.zeros(0), np.zeros(0))
    starts = np.flatnonzero(np.r_[True, past.customer[1:] != past.customer[:-1]])
    ends = np.r_[starts[1:], len(past)] - 1
    counts = np.diff(np.r_[starts, len(past)])
    age = at - past.day
    recent = np.column_stack([np.add.reduceat((age <= window).astype(np.int64), starts) for window in RECENT_WINDOWS])
    decayed = np.column_stack([np.add.reduceat(np.exp2(-age / half_life), starts) for half_life in DECAY_HALF_LIVES])
    gaps = np.r_[0, np.diff(past.day)]
    gaps[starts] = 0  # the first purchase of each customer has no gap before it
    since_first = past.day - np.repeat(past.day[starts], counts)
    return CustomerSummary(
        at=at,
        customer=past.customer[starts],
        first_day=past.day[starts],
        last_day=past.day[ends],
        purchase_days=counts,
        spend=np.add.reduceat(past.amount, starts),
        last_amount=past.amount[ends],
        recent=recent,
        decayed=decayed,
        longest_gap=np.maximum.reduceat(gaps, starts).astype(np.float64),
        early=np.add.reduceat((since_first <= EARLY_DAYS).astype(np.int64), starts).astype(np.float64),
        largest_amount=np.maximum.reduceat(past.amount, starts),
    )
