"""The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): fitting by maximum
likelihood and the per-customer quantities, all vectorised over numpy arrays.

Each customer is (x, t_x, T): x repeat purchases (purchase days after the first), t_x the time from the
first purchase to the last, T the time from the first purchase to the moment of prediction. While alive a
customer buys at a Poisson rate λ ~ Gamma(r, α); after each purchase they drop out with probability
p ~ Beta(a, b). Time is in days here.

The likelihood depends on a customer only through (x, t_x, T), so it is summed over the distinct triples
with their counts: a million customers collapse to far fewer rows. The gradient is analytic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, psi

# Starting point of the optimiser (log parameters): r, α (days), a, b.
_START = np.log([0.5, 30.0, 1.0, 1.0])
# Bounds on log parameters keep the optimiser out of overflow; the published fits sit well inside them.
_LOG_BOUNDS = [(-12.0, 12.0), (-12.0, 16.0), (-12.0, 12.0), (-12.0, 12.0)]
# Four population parameters: a random 200,000 customers pin them down as well as a million do (their
# standard errors shrink with the square root of the count), at a fifth of the cost.
MAX_FIT_CUSTOMERS = 200_000


class FitError(ValueError):
    """The data cannot identify the model (too few customers, or no repeat purchases at all)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float  # in days
    a: float
    b: float
    log_likelihood: float = float("nan")  # mean per customer at the optimum
    customers: int = 0

    def as_dict(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b,
                "log_likelihood": self.log_likelihood, "customers": self.customers}


def _compress(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (x, t_x, T) rows and how many customers share each (a lexsort: np.unique(axis=0) is
    several times slower on a million rows)."""
    order = np.lexsort((T, t_x, x))
    x, t_x, T = x[order], t_x[order], T[order]
    starts = np.flatnonzero(np.r_[True, (x[1:] != x[:-1]) | (t_x[1:] != t_x[:-1]) | (T[1:] != T[:-1])])
    counts = np.diff(np.r_[starts, len(x)]).astype(np.float64)
    return x[starts], t_x[starts], T[starts], counts


def _negative_ll_and_gradient(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                              weights: np.ndarray, total: float) -> Tuple[float, np.ndarray]:
    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    A3 = -(r + x) * np.log(alpha + T)
    A4 = np.where(repeat, np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    top = np.maximum(A3, A4)
    e3, e4 = np.exp(A3 - top), np.exp(A4 - top)
    ll = A1 + A2 + top + np.log(e3 + e4)
    w = e4 / (e3 + e4)  # the share of the "dropped out after the last purchase" term
    d_r = psi(r + x) - psi(r) + np.log(alpha) - (1 - w) * np.log(alpha + T) - w * np.log(alpha + t_x)
    d_alpha = r / alpha - (1 - w) * (r + x) / (alpha + T) - w * (r + x) / (alpha + t_x)
    d_a = psi(a + b) - psi(a + b + x) + w / a
    d_b = psi(a + b) + psi(b + x) - psi(b) - psi(a + b + x) - w / (b + np.maximum(x, 1) - 1) * repeat
    gradient = np.array([weights @ d_r * r, weights @ d_alpha * alpha, weights @ d_a * a, weights @ d_b * b])
    return -float(weights @ ll) / total, -gradient / total


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, start: Optional[np.ndarray] = None,
        max_customers: int = MAX_FIT_CUSTOMERS, seed: int = 42) -> BgNbdParams:
    """Maximum-likelihood r, α, a, b for customers (x, t_x, T) (arrays of one length; times in days); on a
    random `max_customers` of them when there are more."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    customers = len(x)
    if customers > max_customers:
        sample = np.random.default_rng(seed).choice(customers, max_customers, replace=False)
        x, t_x, T = x[sample], t_x[sample], T[sample]
    if len(x) < 10:
        raise FitError(f"BG/NBD needs at least 10 customers with a purchase, not {len(x)}")
    if not np.any(x > 0):
        raise FitError("BG/NBD needs some customers who bought more than once")
    ux, ut, uT, weights = _compress(x, t_x, T)
    total = float(weights.sum())
    result = minimize(_negative_ll_and_gradient, _START if start is None else np.log(start), jac=True,
                      args=(ux, ut, uT, weights, total), method="L-BFGS-B", bounds=_LOG_BOUNDS,
                      options={"maxiter": 500})
    if not np.isfinite(result.fun):
        raise FitError(f"BG/NBD did not converge: {result.message}")
    r, alpha, a, b = np.exp(result.x)
    return BgNbdParams(float(r), float(alpha), float(a), float(b), -float(result.fun), customers)


def probability_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still a customer at T | x, t_x, T). 1 for customers who bought once (they can only drop out after a
    repeat purchase in this model), which is why it is not the answer to "will they buy"."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    log_ratio = np.log(a) - np.log(b + np.maximum(x, 1) - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    odds = np.where(x > 0, np.exp(np.minimum(log_ratio, 700.0)), 0.0)
    return 1.0 / (1.0 + odds)


def probability_of_purchase(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                            horizon: float) -> np.ndarray:
    """P(at least one purchase in (T, T + horizon] | x, t_x, T) = P(alive) × [1 − ((α+T)/(α+T+t))^(r+x)]:
    alive at T, a customer's rate has the posterior Gamma(r + x, α + T), and the first purchase after T comes
    before any chance to drop out."""
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    none_while_alive = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + horizon)))
    return probability_alive(params, x, t_x, T) * (1.0 - none_while_alive)


def expected_purchases(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                       horizon: float) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10)."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    z = horizon / (alpha + T + horizon)
    head = (a + b + x - 1) / (a - 1)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = head * (1 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon))) * hyp)
    return first * probability_alive(params, x, t_x, T)
