"""Backtest: fit on the orders before a cutoff, score, and check against who bought in the horizon after.

`backtest(history, cutoff, horizon)` scores every customer with a purchase before the cutoff with our model
and the two baselines (the recency rule, plain BG/NBD), and measures each: AUC (how well it ranks buyers
above non-buyers), Brier score (mean squared error of the probability: lower is better) and a calibration
table by deciles of the prediction (mean predicted vs the share who actually bought).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from bot.prediction.history import OrderHistory
from bot.prediction.model import DEFAULT_HORIZON_DAYS, Progress, Scores, fit_and_score

MODELS = (("ours", "our model"), ("bgnbd", "plain BG/NBD"), ("recency", "recency rule"))
DECILES = 10


@dataclass(frozen=True)
class CalibrationRow:
    decile: int  # 1 = the lowest predictions
    customers: int
    predicted: float  # mean predicted probability
    actual: float  # share who bought


@dataclass(frozen=True)
class Metrics:
    auc: float
    brier: float
    mean_predicted: float
    calibration: Tuple[CalibrationRow, ...]


@dataclass(frozen=True)
class BacktestReport:
    cutoff: float
    horizon: int
    customers: int
    buyers: int
    model_version: str
    metrics: Dict[str, Metrics]
    scores: Scores
    bought: np.ndarray = field(repr=False)
    subsets: Dict[str, Dict[str, Metrics]] = field(default_factory=dict)

    @property
    def base_rate(self) -> float:
        return self.buyers / self.customers if self.customers else 0.0


def auc(bought: np.ndarray, predicted: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), via ranks: no per-customer loop."""
    from scipy.stats import rankdata

    bought = np.asarray(bought, dtype=bool)
    positives, negatives = int(bought.sum()), int((~bought).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(predicted)
    return float((ranks[bought].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def brier(bought: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean((np.asarray(predicted, dtype=np.float64) - np.asarray(bought, dtype=np.float64)) ** 2))


def calibration(bought: np.ndarray, predicted: np.ndarray, groups: int = DECILES) -> Tuple[CalibrationRow, ...]:
    """Customers sorted by prediction and cut into `groups` groups of (nearly) equal size."""
    order = np.argsort(predicted, kind="stable")
    rows = []
    for index, part in enumerate(np.array_split(order, groups), start=1):
        if len(part):
            rows.append(CalibrationRow(index, len(part), float(np.mean(predicted[part])),
                                       float(np.mean(bought[part]))))
    return tuple(rows)


def measure(bought: np.ndarray, predicted: np.ndarray) -> Metrics:
    return Metrics(auc(bought, predicted), brier(bought, predicted), float(np.mean(predicted)),
                   calibration(bought, predicted))


def backtest(history: OrderHistory, cutoff: float, horizon: int = DEFAULT_HORIZON_DAYS, *,
             subsets: Optional[Dict[str, np.ndarray]] = None, progress: Optional[Progress] = None,
             seed: int = 42) -> BacktestReport:
    """Fit on the purchases before `cutoff` (a day number), then compare with [cutoff, cutoff + horizon).
    `subsets` (name → customer ids) are measured again on their own, with the same predictions."""
    scores = fit_and_score(history, cutoff, horizon, progress=progress, seed=seed)
    bought = np.isin(scores.summary.customer, history.buyers_between(cutoff, cutoff + horizon))
    predictions = {"ours": scores.probability, "bgnbd": scores.bgnbd, "recency": scores.recency_rule}
    metrics = {name: measure(bought, predictions[name]) for name, _ in MODELS}
    measured_subsets = {}
    for name, ids in (subsets or {}).items():
        inside = np.isin(scores.summary.customer, ids)
        measured_subsets[name] = {model: measure(bought[inside], predictions[model][inside]) for model, _ in MODELS}
    return BacktestReport(cutoff, horizon, len(bought), int(bought.sum()), scores.version, metrics, scores, bought,
                          measured_subsets)


def _figure(value: float, width: int) -> str:
    return f"{'n/a':>{width}}" if np.isnan(value) else f"{value:>{width}.4f}"


def format_report(report: BacktestReport, *, cutoff_label: str, subset_sizes: Optional[Dict[str, int]] = None) -> str:
    """The backtest as the CLI and the bench print it: the three models side by side, then calibration."""
    lines = [
        f"backtest: fitted on orders before {cutoff_label}, scored on who bought in the {report.horizon} days after",
        f"customers with an order before the cutoff: {report.customers:,}; bought in the horizon: "
        f"{report.buyers:,} ({report.base_rate:.1%})",
        f"our model: {report.model_version} ({report.scores.training_rows:,} training rows)",
        "",
        f"{'model':<16} {'AUC':>7} {'Brier':>8} {'mean predicted':>15}",
    ]
    for name, label in MODELS:
        m = report.metrics[name]
        lines.append(f"{label:<16} {_figure(m.auc, 7)} {_figure(m.brier, 8)} {m.mean_predicted:>15.3f}")
    ours, bg = report.metrics["ours"], report.metrics["bgnbd"]
    if not np.isnan(ours.auc - bg.auc):
        lines.append(f"ours − BG/NBD: AUC {ours.auc - bg.auc:+.4f}, Brier {ours.brier - bg.brier:+.4f}")
    if report.customers < 100:
        lines.append(f"(only {report.customers} customers: these figures say little)")
    for name, measured in report.subsets.items():
        size = (subset_sizes or {}).get(name)
        lines += ["", f"{name}" + (f" ({size:,} customers)" if size else "")]
        for model, label in MODELS:
            m = measured[model]
            lines.append(f"{label:<16} {_figure(m.auc, 7)} {_figure(m.brier, 8)} {m.mean_predicted:>15.3f}")
    lines += ["", "calibration by decile of the prediction (predicted → actual share who bought)",
              f"{'decile':>6} {'customers':>9}  " + "  ".join(f"{label:>22}" for _, label in MODELS)]
    tables = [report.metrics[name].calibration for name, _ in MODELS]
    for rows in zip(*tables):
        cells = "  ".join(f"{row.predicted:>10.3f} → {row.actual:>9.3f}" for row in rows)
        lines.append(f"{rows[0].decile:>6} {rows[0].customers:>9,}  {cells}")
    return "\n".join(lines)


def report_json(report: BacktestReport) -> Dict[str, object]:
    def metrics_json(m: Metrics) -> Dict[str, object]:
        return {"auc": round(m.auc, 4), "brier": round(m.brier, 4), "mean_predicted": round(m.mean_predicted, 4),
                "calibration": [{"decile": r.decile, "customers": r.customers, "predicted": round(r.predicted, 4),
                                 "actual": round(r.actual, 4)} for r in m.calibration]}

    return {
        "horizon_days": report.horizon, "customers": report.customers, "buyers": report.buyers,
        "model": report.scores.describe(),
        "metrics": {name: metrics_json(report.metrics[name]) for name, _ in MODELS},
        "subsets": {name: {model: metrics_json(m) for model, m in measured.items()}
                    for name, measured in report.subsets.items()},
    }

