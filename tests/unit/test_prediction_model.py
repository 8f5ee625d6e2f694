"""The repeat-purchase model's numbers: BG/NBD against lifetimes' own on the CDNOW sample, the backtest's
figures on histories whose answer is known, and reasons."""
from __future__ import annotations

import numpy as np
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.datasets import load_cdnow_summary

from bot.prediction import bgnbd
from bot.prediction.backtest import auc, backtest, brier, calibration, format_report
from bot.prediction.history import OrderHistory, summarize
from bot.prediction.model import NotEnoughHistory, fit_and_score
from bot.prediction.reasons import explain, likelihood

HORIZON_WEEKS = 90 / 7


@pytest.fixture(scope="module")
def cdnow():
    """lifetimes' 2,357-customer CDNOW summary (times in weeks) and its own BG/NBD fit."""
    data = load_cdnow_summary(index_col=[0])
    fitter = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
    return data, fitter


def _ours_in_weeks(fitter: BetaGeoFitter) -> bgnbd.BgNbdParams:
    return bgnbd.BgNbdParams(**{k: float(v) for k, v in fitter.params_.items()})


def test_fit_reproduces_lifetimes_and_the_published_cdnow_parameters(cdnow) -> None:
    data, fitter = cdnow
    # Our fit works in days: the same customers in days give α in days; the others do not depend on the unit.
    ours = bgnbd.fit(data["frequency"].values, data["recency"].values * 7, data["T"].values * 7)
    theirs = fitter.params_
    assert ours.r == pytest.approx(theirs["r"], rel=1e-3)
    assert ours.alpha / 7 == pytest.approx(theirs["alpha"], rel=1e-3)
    assert ours.a == pytest.approx(theirs["a"], rel=1e-3)
    assert ours.b == pytest.approx(theirs["b"], rel=1e-3)
    # Fader, Hardie & Lee (2005): r = 0.243, α = 4.414, a = 0.793, b = 2.426.
    assert (round(ours.r, 3), round(ours.alpha / 7, 3), round(ours.a, 3), round(ours.b, 3)) == (0.243, 4.414, 0.793, 2.426)


def test_probability_alive_and_expected_purchases_equal_lifetimes(cdnow) -> None:
    data, fitter = cdnow
    params = _ours_in_weeks(fitter)
    x, t_x, T = data["frequency"].values, data["recency"].values, data["T"].values
    np.testing.assert_allclose(bgnbd.probability_alive(params, x, t_x, T),
                               fitter.conditional_probability_alive(x, t_x, T), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bgnbd.expected_purchases(params, x, t_x, T, HORIZON_WEEKS),
                               fitter.conditional_expected_number_of_purchases_up_to_time(HORIZON_WEEKS, x, t_x, T),
                               rtol=1e-7)


def test_probability_of_a_purchase_is_the_likelihood_ratio_from_lifetimes(cdnow) -> None:
    """No purchase in (T, T+t] means the history at T+t is still (x, t_x): P(none) = L(x, t_x, T+t) / L(x, t_x, T),
    with L lifetimes' own BG/NBD likelihood — an independent route to P(≥1) = P(alive)·[1 − ((α+T)/(α+T+t))^(r+x)]."""
    data, fitter = cdnow
    params = _ours_in_weeks(fitter)
    log_params = np.log(fitter.params_[["r", "alpha", "a", "b"]].values.astype(float))

    def log_likelihood(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        return np.array([-BetaGeoFitter._negative_log_likelihood(log_params, np.array([xi]), np.array([ti]),
                                                                 np.array([Ti]), np.array([1.0]), 0.0)
                         for xi, ti, Ti in zip(x, t_x, T)])

    x, t_x, T = data["frequency"].values, data["recency"].values, data["T"].values
    expected = 1 - np.exp(log_likelihood(x, t_x, T + HORIZON_WEEKS) - log_likelihood(x, t_x, T))
    ours = bgnbd.probability_of_purchase(params, x, t_x, T, HORIZON_WEEKS)
    np.testing.assert_allclose(ours, expected, rtol=1e-7, atol=1e-10)
    # P(alive) is not the answer: every one-time buyer is "alive", yet few of them buy again.
    once = x == 0
    assert np.all(bgnbd.probability_alive(params, x, t_x, T)[once] == 1.0)
    assert ours[once].max() < 0.5


def test_a_new_customer_matches_lifetimes_unconditional_probability(cdnow) -> None:
    _, fitter = cdnow
    params = _ours_in_weeks(fitter)
    for weeks in (1.0, HORIZON_WEEKS, 52.0):
        none = float(fitter.probability_of_n_purchases_up_to_time(weeks, 0))
        assert bgnbd.probability_of_purchase(params, np.array([0.0]), np.array([0.0]), np.array([0.0]), weeks)[0] == \
            pytest.approx(1 - none, rel=1e-9)


def test_fit_refuses_data_that_cannot_identify_the_model() -> None:
    with pytest.raises(bgnbd.FitError):
        bgnbd.fit(np.zeros(50), np.zeros(50), np.full(50, 100.0))  # nobody ever bought twice
    with pytest.raises(bgnbd.FitError):
        bgnbd.fit(np.ones(3), np.ones(3), np.full(3, 10.0))


def test_metrics_by_hand() -> None:
    bought = np.array([False, False, True, True])
    predicted = np.array([0.1, 0.4, 0.35, 0.8])
    # Pairs (buyer, non-buyer) ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); wrong: (0.35 < 0.4) → 3/4.
    assert auc(bought, predicted) == 0.75
    assert auc(bought, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5  # ties count half
    assert brier(bought, predicted) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    rows = calibration(np.array([0, 0, 0, 1, 1, 1] * 5, dtype=bool), np.linspace(0, 1, 30), groups=3)
    assert [(r.decile, r.customers) for r in rows] == [(1, 10), (2, 10), (3, 10)]
    assert rows[0].predicted == pytest.approx(np.linspace(0, 1, 30)[:10].mean())
    assert rows[0].actual == 0.4  # the first ten: 0,0,0,1,1,1,0,0,0,1


def _regulars_and_lapsed(regulars: int = 300, lapsed: int = 300, *, cutoff: int = 1000, horizon: int = 90):
    """Regulars buy every 7 days from day 100 on, through the horizon; the lapsed bought once, on days spread
    over [200, 600), and never again. Everything is known: who buys in the horizon is exactly the regulars."""
    customers, days = [], []
    for customer in range(1, regulars + 1):
        start = 100 + customer % 7
        for day in range(start, cutoff + horizon, 7):
            customers.append(customer)
            days.append(day)
    for index in range(lapsed):
        customers.append(regulars + 1 + index)
        days.append(200 + index * 400 // lapsed)
    return OrderHistory.from_orders(np.array(customers), np.array(days, dtype=float), np.full(len(days), 25.0))


def test_backtest_on_a_history_with_a_known_answer() -> None:
    history = _regulars_and_lapsed()
    report = backtest(history, 1000.0, 90)
    assert (report.customers, report.buyers) == (600, 300)
    assert report.base_rate == 0.5
    for name in ("ours", "bgnbd", "recency"):
        assert report.metrics[name].auc == 1.0, name  # every regular ranked above every lapsed customer
    # Certain outcomes: the probabilities are close to 0 and 1, so the Brier score is small.
    assert report.metrics["ours"].brier < 0.02
    assert report.metrics["bgnbd"].brier < 0.05
    top, bottom = report.metrics["ours"].calibration[-1], report.metrics["ours"].calibration[0]
    assert (top.actual, bottom.actual) == (1.0, 0.0)
    assert top.predicted > 0.9 and bottom.predicted < 0.1
    assert report.model_version == "rapport-repeat-1/gbm+bgnbd"
    text = format_report(report, cutoff_label="day 1000")
    assert "plain BG/NBD" in text and "recency rule" in text and "calibration by decile" in text


def test_orders_on_or_after_the_date_change_nothing() -> None:
    history = _regulars_and_lapsed()
    full = fit_and_score(history, 1000.0, 90)
    cut = fit_and_score(history.before(1000.0), 1000.0, 90)
    np.testing.assert_array_equal(full.probability, cut.probability)
    np.testing.assert_array_equal(full.summary.customer, cut.summary.customer)


def test_the_classifier_beats_bgnbd_where_bgnbd_is_wrong() -> None:
    """Customers who slow down month by month break BG/NBD's constant rate; the classifier, trained on what
    happened after earlier snapshots, sees it in the recent-activity features."""
    rng = np.random.default_rng(7)
    customers, days = [], []
    for customer in range(1, 1501):
        slowing = customer % 2 == 0
        day, gap = float(rng.uniform(0, 60)), float(rng.uniform(8, 20))
        while day < 1000:
            customers.append(customer)
            days.append(day)
            day += rng.exponential(gap)
            if slowing:
                gap *= 1.35
    history = OrderHistory.from_orders(np.array(customers), np.array(days), np.full(len(days), 30.0))
    report = backtest(history, 700.0, 90)
    ours, bg = report.metrics["ours"], report.metrics["bgnbd"]
    assert ours.auc > bg.auc + 0.01
    assert ours.brier < bg.brier


def test_small_stores_fall_back_and_empty_ones_are_refused() -> None:
    tiny = OrderHistory.from_orders(np.array([1, 1, 1, 2]), np.array([10.0, 40.0, 130.0, 100.0]), np.full(4, 5.0))
    scores = fit_and_score(tiny, 200.0, 90)  # too few customers for BG/NBD: the recency rule of day 110
    assert scores.method == "recency" and scores.summary.customer.tolist() == [1, 2]
    assert np.all((scores.probability >= 0) & (scores.probability <= 1))
    # Snapshots at days 110, 80, 50: customer 1 (last order 70, 40, 10 days before) bought within 90 days each
    # time, customer 2 (10 days, at day 110 only) did not: 3 of 4 overall. At day 200 customer 1 is 70 days on
    # (band 61-90: 1 of 1, pulled toward 3/4 by 20 pseudo-customers), customer 2 100 days (a band nobody was in).
    assert scores.probability.tolist() == pytest.approx([(1 + 20 * 0.75) / 21, 0.75])
    with pytest.raises(NotEnoughHistory):
        fit_and_score(tiny, 5.0, 90)  # no purchase before the date
    with pytest.raises(NotEnoughHistory):
        fit_and_score(tiny, 60.0, 90)  # no snapshot a horizon back, and BG/NBD cannot be fitted


def test_summaries_merge_same_day_orders_and_count_windows() -> None:
    history = OrderHistory.from_orders(np.array([5, 5, 5, 9]), np.array([10.2, 10.9, 95.5, 50.0]),
                                       np.array([10.0, 5.0, 20.0, 7.0]))
    assert len(history) == 3  # the two orders of day 10 are one purchase
    summary = summarize(history, 100.0)
    assert summary.customer.tolist() == [5, 9]
    assert summary.x.tolist() == [1.0, 0.0]
    assert summary.t_x.tolist() == [85.0, 0.0]
    assert summary.T.tolist() == [90.0, 50.0]
    assert summary.spend.tolist() == [35.0, 7.0]
    assert summary.recent[:, 0].tolist() == [1, 0]  # within 30 days of day 100: only day 95
    assert summary.longest_gap.tolist() == [85.0, 0.0]


def test_reasons_read_like_a_merchant_would_write_them() -> None:
    assert explain(12, 4, 274, 180, 412.4, 0.8) == \
        "last order 12 days ago; 4 orders in 9 months, about every 60 days; $412 spent; 80 % likely"
    assert explain(150, 4, 430, 180, 90, 0.09, "€") == ("last order 150 days ago, longer than their usual gap; "
                                                        "4 orders in 14 months, about every 60 days; €90 spent; 9 % likely")
    assert explain(45, 1, 45, 0, 30, 0.12) == "first and only order 45 days ago; $30 spent; 12 % likely"
    assert explain(0, 2, 800, 799, 60, 0.5).startswith("last order today; 2 orders in 2.2 years, about every 799 days")
    assert ", about every day;" in explain(300, 2, 600, 1, 50, 0.01)
    assert likelihood(0.001) == "under 1 % likely" and likelihood(0.999) == "over 99 % likely"
