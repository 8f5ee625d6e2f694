"""The repeat-purchase model: P(at least one purchase in the next `horizon` days) for every customer.

How it is fitted at a moment `as_of`, from the orders before it only:

1. BG/NBD (bgnbd.py) on every customer's (x, t_x, T) at `as_of`: its probability is the first baseline
   and a feature.
2. A gradient-boosted classifier (scikit-learn HistGradientBoosting) learns what happened next in the
   store's own past: at snapshots `as_of − horizon`, `− horizon − 30` and `− horizon − 60` days, each
   customer's features then (BG/NBD refitted on what was known then, recency, purchase days, age, spend,
   recent and decayed activity, longest gap, how fast they came back at first) and whether they bought in
   the `horizon` days after. It scores the features at `as_of`. The backtest (backtest.py) shows it beats
   BG/NBD; it reads nothing later than `as_of`.
3. The recency rule, the second baseline: the share of customers who bought within the horizon in the
   same days-since-last-order band at the snapshots.

Customers with no purchase yet get the share of such customers who bought within the horizon at the
latest snapshot. With too little history for the classifier (fewer than MIN_TRAINING_CUSTOMERS at the
snapshots, or too few buyers), the BG/NBD probability is the answer; without any repeat purchase at all,
the recency rule. Everything is numpy over all customers at once: no Python loop per customer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from bot.prediction import bgnbd
from bot.prediction.history import CustomerSummary, OrderHistory, summarize

MODEL_NAME = "rapport-repeat-1"
DEFAULT_HORIZON_DAYS = 90
SNAPSHOT_OFFSETS = (0, 30, 60)  # training snapshots: as_of − horizon − each of these (days)
MAX_TRAINING_ROWS = 100_000  # the classifier learns from at most this many snapshot rows (a random sample)
MIN_TRAINING_CUSTOMERS = 200
MIN_TRAINING_CLASS = 20  # buyers and non-buyers each, at the snapshots
# Days since the last order: the recency rule's bands (upper bounds, inclusive).
RECENCY_BANDS = (14, 30, 60, 90, 120, 180, 270, 365, 540, 730)
# A band's share is pulled toward the overall share as if this many customers of the overall kind were in
# it too: a band of three customers in a small store says little on its own.
RECENCY_PRIOR_CUSTOMERS = 20.0
CLASSIFIER_SETTINGS = dict(learning_rate=0.045, max_iter=200, max_leaf_nodes=8, min_samples_leaf=100)
# OpenMP threads for the classifier. One: on 2 cores shared with the web app and the bot, OpenMP's
# spinning threads made a fit 4-6 times slower than one thread (measured under load average 7).
CLASSIFIER_THREADS = 1
FEATURE_NAMES = (
    "bgnbd_logit", "bgnbd_alive", "recency_days", "repeat_days", "age_days", "average_spend",
    "days_30", "days_90", "days_180", "days_365", "decayed_30", "decayed_90", "decayed_180",
    "longest_gap", "early_days", "largest_amount",
)

Progress = Callable[[str], None]


class NotEnoughHistory(ValueError):
    """The store has too few purchases before the date asked for to say anything."""


@dataclass(frozen=True)
class Scores:
    """Every customer with a purchase before `as_of`, and the probability of one more within `horizon`
    days (`probability`, with the two baselines beside it), plus the facts the reasons are made of."""

    as_of: float
    horizon: int
    method: str  # "gbm+bgnbd", "bgnbd" or "recency" (what produced `probability`)
    summary: CustomerSummary
    probability: np.ndarray
    bgnbd: np.ndarray
    recency_rule: np.ndarray
    no_order_rate: float  # for customers with no purchase before as_of
    params: Optional[bgnbd.BgNbdParams]
    training_rows: int = 0
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return f"{MODEL_NAME}/{self.method}"

    def describe(self) -> Dict[str, object]:
        return {
            "model_version": self.version, "horizon_days": self.horizon, "customers": len(self.summary),
            "training_rows": self.training_rows, "no_order_rate": round(self.no_order_rate, 4),
            "bgnbd": self.params.as_dict() if self.params else None,
            "timings_seconds": {name: round(seconds, 3) for name, seconds in self.timings.items()},
        }


def features(summary: CustomerSummary, params: bgnbd.BgNbdParams, horizon: float) -> Tuple[np.ndarray, np.ndarray]:
    """The classifier's features (columns as FEATURE_NAMES) and the BG/NBD probability, per summary row."""
    x, t_x, T = summary.x, summary.t_x, summary.T
    p = np.clip(bgnbd.probability_of_purchase(params, x, t_x, T, horizon), 1e-9, 1 - 1e-9)
    matrix = np.column_stack([
        np.log(p / (1 - p)), bgnbd.probability_alive(params, x, t_x, T), summary.recency, x, T,
        summary.spend / summary.purchase_days, summary.recent, summary.decayed, summary.longest_gap,
        summary.early, summary.largest_amount,
    ])
    return matrix, p


def recency_band(recency_days: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(RECENCY_BANDS, dtype=np.float64), recency_days, side="left")


def _rates_by_band(recency_days: np.ndarray, bought: np.ndarray) -> np.ndarray:
    """The share who bought, per recency band, pulled toward the overall share (RECENCY_PRIOR_CUSTOMERS)."""
    band = recency_band(recency_days)
    size = len(RECENCY_BANDS) + 1
    count = np.bincount(band, minlength=size).astype(np.float64)
    buyers = np.bincount(band, weights=bought.astype(np.float64), minlength=size)
    overall = buyers.sum() / max(count.sum(), 1.0)
    return (buyers + RECENCY_PRIOR_CUSTOMERS * overall) / (count + RECENCY_PRIOR_CUSTOMERS)


@dataclass(frozen=True)
class _Snapshot:
    at: float
    summary: CustomerSummary
    bought: np.ndarray
    params: Optional[bgnbd.BgNbdParams]


def _snapshot(history: OrderHistory, at: float, horizon: int) -> _Snapshot:
    summary = summarize(history, at)
    bought = np.isin(summary.customer, history.buyers_between(at, at + horizon))
    try:
        params = bgnbd.fit(summary.x, summary.t_x, summary.T)
    except bgnbd.FitError:
        params = None
    return _Snapshot(at, summary, bought, params)


def fit_and_score(
    history: OrderHistory,
    as_of: float,
    horizon: int = DEFAULT_HORIZON_DAYS,
    *,
    customers_created: Optional[Tuple[np.ndarray, np.ndarray]] = None,
    seed: int = 42,
    progress: Optional[Progress] = None,
) -> Scores:
    """Fit on `history` before `as_of` (a day number) and score every customer who bought before it.

    `customers_created` = (customer ids, creation day numbers), to work out the rate for customers with no
    purchase yet; without it that rate is 0 when unknown."""
    say = progress or (lambda _message: None)
    timings: Dict[str, float] = {}
    started = time.perf_counter()
    past = history.before(as_of)  # nothing at or after as_of is ever read below this line
    now = summarize(past, as_of)
    if len(now) == 0:
        raise NotEnoughHistory("no purchases before this date: nothing to learn from")
    timings["summarize"] = time.perf_counter() - started
    say(f"{len(now):,} customers with a purchase before the date, {len(past):,} purchase days")

    mark = time.perf_counter()
    try:
        params: Optional[bgnbd.BgNbdParams] = bgnbd.fit(now.x, now.t_x, now.T)
    except bgnbd.FitError as error:
        say(f"BG/NBD cannot be fitted ({error}); using the recency rule")
        params = None
    timings["bgnbd_fit"] = time.perf_counter() - mark
    if params is not None:
        say(f"BG/NBD: r={params.r:.3f} alpha={params.alpha:.1f} days a={params.a:.3f} b={params.b:.3f} "
            f"({timings['bgnbd_fit']:.1f} s)")

    mark = time.perf_counter()
    snapshots: List[_Snapshot] = []
    for offset in SNAPSHOT_OFFSETS:
        at = as_of - horizon - offset
        if at <= float(past.day.min()) + 1:  # no customer yet at this snapshot
            break
        snapshot = _snapshot(past, at, horizon)
        if len(snapshot.summary) == 0:
            break
        snapshots.append(snapshot)
    timings["snapshots"] = time.perf_counter() - mark

    if snapshots:
        recency_rates = _rates_by_band(np.concatenate([s.summary.recency for s in snapshots]),
                                       np.concatenate([s.bought for s in snapshots]))
    else:
        recency_rates = np.full(len(RECENCY_BANDS) + 1, np.nan)
    recency_rule = recency_rates[recency_band(now.recency)]
    no_order_rate = _no_order_rate(past, snapshots[0].at if snapshots else None, as_of, customers_created)

    bg_probability = (bgnbd.probability_of_purchase(params, now.x, now.t_x, now.T, horizon)
                      if params is not None else np.full(len(now), np.nan))
    usable = [s for s in snapshots if s.params is not None]
    rows = sum(len(s.summary) for s in usable)
    buyers = sum(int(s.bought.sum()) for s in usable)
    method, probability, training_rows = "recency", recency_rule, 0
    if params is not None:
        method, probability = "bgnbd", bg_probability
    if params is not None and rows >= MIN_TRAINING_CUSTOMERS and min(buyers, rows - buyers) >= MIN_TRAINING_CLASS:
        mark = time.perf_counter()
        probability, training_rows = _classifier_probability(usable, now, params, horizon, seed, say)
        method = "gbm+bgnbd"
        timings["classifier"] = time.perf_counter() - mark
    elif params is not None:
        say(f"the classifier needs at least {MIN_TRAINING_CUSTOMERS} customers at the snapshots and "
            f"{MIN_TRAINING_CLASS} who bought and did not in the {horizon} days after; there are {rows:,} rows and "
            f"{buyers:,} buyers: BG/NBD alone")
    if np.isnan(probability).any():
        raise NotEnoughHistory("not enough history before this date: at least one repeat purchase, or "
                               f"{horizon} days of orders before the date, are needed")
    timings["total"] = time.perf_counter() - started
    return Scores(as_of, horizon, method, now, probability, bg_probability, recency_rule, no_order_rate, params,
                  training_rows, timings)


def _classifier_probability(snapshots: List[_Snapshot], now: CustomerSummary, params: bgnbd.BgNbdParams,
                            horizon: int, seed: int, say: Progress) -> Tuple[np.ndarray, int]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    matrices, labels = [], []
    for snapshot in snapshots:
        assert snapshot.params is not None
        matrix, _ = features(snapshot.summary, snapshot.params, horizon)
        matrices.append(matrix)
        labels.append(snapshot.bought)
    X, y = np.vstack(matrices), np.concatenate(labels)
    if len(y) > MAX_TRAINING_ROWS:
        keep = rng.choice(len(y), MAX_TRAINING_ROWS, replace=False)
        X, y = X[keep], y[keep]
    say(f"classifier: {len(y):,} rows from {len(snapshots)} snapshots, {y.mean():.1%} bought within {horizon} days")
    current, _ = features(now, params, horizon)
    with threadpool_limits(limits=CLASSIFIER_THREADS, user_api="openmp"):
        classifier = HistGradientBoostingClassifier(random_state=seed, **CLASSIFIER_SETTINGS).fit(X, y)
        return classifier.predict_proba(current)[:, 1], len(y)


def _no_order_rate(past: OrderHistory, snapshot_at: Optional[float], as_of: float,
                   customers_created: Optional[Tuple[np.ndarray, np.ndarray]]) -> float:
    """Among customers who existed at the snapshot without a purchase, the share who bought before as_of."""
    if snapshot_at is None or customers_created is None:
        return 0.0
    ids, created = customers_created
    existed = ids[created < snapshot_at]
    earlier_buyers = np.unique(past.customer[past.day < snapshot_at])
    without = existed[~np.isin(existed, earlier_buyers)]
    if len(without) == 0:
        return 0.0
    return float(np.isin(without, past.buyers_between(snapshot_at, as_of)).mean())
