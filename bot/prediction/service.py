"""The prediction's one home: read the store's orders, fit, score, store, and read the scores back.

Every entry point calls these: the web app's scheduled refit (`refit`), the CLI (`refit`, `stored_rows`,
`rows_as_of`, `run_backtest`) and the console's customer page (`customer_prediction`).

Orders are read with one query, placed_at as a day number computed by the database (no datetime or
Decimal object per order), in chunks into numpy arrays. A purchase is an order that was not cancelled,
worth what was paid minus what was refunded. With `before`, only orders placed before it are read.
Scores are written in short transactions of WRITE_BATCH rows (an upsert that keeps the previous
probability), so the bot's own writes never wait long behind a refit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from sqlalchemy import BigInteger, delete, func, literal_column, select, type_coerce, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot.log import get_logger
from bot.models import Customer, Order, PredictionRun, PurchasePrediction
from bot.prediction.backtest import BacktestReport, backtest
from bot.prediction.history import SECONDS_PER_DAY, OrderHistory, day_number
from bot.prediction.model import DEFAULT_HORIZON_DAYS, Progress, Scores, fit_and_score
from bot.prediction.reasons import explain_all, explain_no_orders

if TYPE_CHECKING:
    from bot.db import Database

log = get_logger(__name__)

READ_CHUNK = 100_000
WRITE_BATCH = 5_000
# A scheduled refit runs when the last one is at least its interval old, less this (timers drift).
REFIT_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class StoreHistory:
    """What the model reads from the store: purchases, and every customer with when they joined."""

    orders: OrderHistory
    customer_ids: np.ndarray  # sorted
    created_days: np.ndarray


@dataclass(frozen=True)
class ScoredCustomer:
    customer_id: int
    email: Optional[str]
    store_customer_id: Optional[str]
    probability: float
    reasons: str


@dataclass(frozen=True)
class CustomerPrediction:
    """A customer's stored prediction, as the console shows it."""

    probability: float
    previous_probability: Optional[float]
    reasons: str
    model_version: str
    as_of: datetime
    horizon_days: int
    computed_at: datetime


@dataclass(frozen=True)
class RefitReport:
    run_id: int
    model_version: str
    customers_scored: int
    with_orders: int
    seconds: float

    def as_counts(self) -> Dict[str, int]:
        return {"prediction_run": self.run_id, "customers_scored": self.customers_scored,
                "customers_with_orders": self.with_orders}


def _day_expression(session: Session, column):  # type: ignore[no-untyped-def]
    """The column as days since 1970-01-01 UTC, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column) / SECONDS_PER_DAY
    return func.julianday(column) - literal_column("2440587.5")  # SQLite keeps UTC text


def _column_arrays(session: Session, statement, dtypes: Tuple[type, ...]) -> List[np.ndarray]:  # type: ignore[no-untyped-def]
    """The statement's columns as numpy arrays. Run on the DBAPI cursor of the session's connection (in its
    transaction), in chunks: building a SQLAlchemy row per order took twice as long for millions of orders.
    The statement's parameters must need no type processing (numbers, strings)."""
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    params = compiled.params
    arguments = tuple(params[name] for name in compiled.positiontup) if connection.dialect.positional else params
    cursor = connection.connection.cursor()
    parts: List[np.ndarray] = []
    try:
        cursor.execute(str(compiled), arguments)
        while True:
            rows = cursor.fetchmany(READ_CHUNK)
            if not rows:
                break
            parts.append(np.array(rows, dtype=np.float64).reshape(len(rows), len(dtypes)))
    finally:
        cursor.close()
    table = np.concatenate(parts) if parts else np.zeros((0, len(dtypes)))
    return [table[:, index].astype(dtype) for index, dtype in enumerate(dtypes)]


def load_history(session: Session, before: Optional[datetime] = None) -> StoreHistory:
    """The store's purchases (before `before`, when given) and its customers."""
    placed = _day_expression(session, Order.placed_at)
    net_cents = type_coerce(Order.total, BigInteger) - type_coerce(Order.refunded_total, BigInteger)
    statement = select(Order.customer_id, placed, net_cents).where(Order.status != "cancelled")
    if before is not None:
        # On the day number rather than placed_at, so the parameter is a plain number on every database.
        statement = statement.where(placed < day_number(before))
    customer, days, cents = _column_arrays(session, statement, (np.int64, np.float64, np.float64))
    orders = OrderHistory.from_orders(customer, days, cents / 100.0)
    created = _day_expression(session, Customer.created_at)
    ids, created_days = _column_arrays(session, select(Customer.id, created).order_by(Customer.id), (np.int64, np.float64))
    return StoreHistory(orders, ids, created_days)


def _scored_customers(history: StoreHistory, as_of: float) -> np.ndarray:
    """Who is scored at `as_of`: customers who had joined by then, or had bought before it."""
    joined = history.customer_ids[history.created_days < as_of]
    return np.union1d(joined, np.unique(history.orders.customer[history.orders.day < as_of]))


def score(history: StoreHistory, as_of: float, horizon: int, *, currency_symbol: str = "$",
          progress: Optional[Progress] = None) -> Tuple[Scores, np.ndarray, np.ndarray, List[str]]:
    """Fit and score at `as_of`: (the model's scores, customer ids, probabilities, reasons) for every
    customer scored, those with orders first (in `scores.summary` order), then those without."""
    scores = fit_and_score(history.orders, as_of, horizon, progress=progress,
                           customers_created=(history.customer_ids, history.created_days))
    reasons = explain_all(scores, currency_symbol)
    without = np.setdiff1d(_scored_customers(history, as_of), scores.summary.customer)
    ids = np.concatenate([scores.summary.customer, without])
    probability = np.concatenate([scores.probability, np.full(len(without), scores.no_order_rate)])
    reasons += [explain_no_orders(scores.no_order_rate)] * len(without)
    return scores, ids, probability, reasons


def refit(database: "Database", now: datetime, *, horizon: int = DEFAULT_HORIZON_DAYS, currency_symbol: str = "$",
          progress: Optional[Progress] = None) -> RefitReport:
    """Fit on every order before `now`, score every customer and store the scores (the scheduled job and
    `python -m bot predict refit`)."""
    say = progress or (lambda message: log.info("prediction.progress", message=message))
    started = time.perf_counter()
    with database.session() as session:
        history = load_history(session, before=now)
    say(f"read {len(history.orders):,} purchase days of {len(history.customer_ids):,} customers "
        f"({time.perf_counter() - started:.1f} s)")
    scores, ids, probability, reasons = score(history, day_number(now), horizon, currency_symbol=currency_symbol,
                                              progress=say)
    say(f"fitted and scored ({time.perf_counter() - started:.1f} s so far); storing")
    with database.session(write=True) as session:
        run = PredictionRun(model_version=scores.version, as_of=now, horizon_days=horizon, customers_scored=0,
                            details=scores.describe(), started_at=now)
        session.add(run)
        session.flush()
        run_id = run.id
    computed_at = datetime.now(timezone.utc)
    for start in range(0, len(ids), WRITE_BATCH):
        rows = [
            {"customer_id": customer, "run_id": run_id, "probability": p, "previous_probability": None,
             "reasons": text, "model_version": scores.version, "as_of": now, "horizon_days": horizon,
             "computed_at": computed_at}
            for customer, p, text in zip(ids[start:start + WRITE_BATCH].tolist(),
                                         probability[start:start + WRITE_BATCH].tolist(),
                                         reasons[start:start + WRITE_BATCH])
        ]
        with database.session(write=True) as session:
            _upsert(session, rows)
        done = min(start + WRITE_BATCH, len(ids))
        if done == len(ids) or (done // WRITE_BATCH) % 20 == 0:
            say(f"stored {done:,} of {len(ids):,} scores ({time.perf_counter() - started:.1f} s so far)")
    with database.session(write=True) as session:
        # Customers no longer scored (none today: every customer is) keep no stale score.
        session.execute(delete(PurchasePrediction).where(PurchasePrediction.run_id != run_id))
        session.execute(update(PredictionRun).where(PredictionRun.id == run_id).values(
            customers_scored=len(ids), finished_at=datetime.now(timezone.utc)))
    seconds = time.perf_counter() - started
    say(f"refit done: {len(ids):,} customers scored with {scores.version} in {seconds:.1f} s")
    return RefitReport(run_id, scores.version, len(ids), len(scores.summary), seconds)


def _upsert(session: Session, rows: List[dict]) -> None:
    """Insert or replace each customer's score; the replaced probability becomes previous_probability."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(PurchasePrediction)
    excluded = statement.excluded
    session.execute(statement.on_conflict_do_update(
        index_elements=[PurchasePrediction.customer_id],
        set_={
            "previous_probability": PurchasePrediction.probability,
            "probability": excluded.probability, "reasons": excluded.reasons, "run_id": excluded.run_id,
            "model_version": excluded.model_version, "as_of": excluded.as_of,
            "horizon_days": excluded.horizon_days, "computed_at": excluded.computed_at,
        },
    ), rows)


def customer_prediction(session: Session, customer_id: int) -> Optional[CustomerPrediction]:
    """The customer's latest stored prediction (the console's customer page), or None before the first refit."""
    row = session.get(PurchasePrediction, customer_id)
    if row is None:
        return None
    return CustomerPrediction(row.probability, row.previous_probability, row.reasons, row.model_version,
                              row.as_of, row.horizon_days, row.computed_at)


def stored_rows(session: Session, customer_ids: Optional[Select] = None) -> Iterator[ScoredCustomer]:
    """Every stored score with the customer's email and store id, by customer id; with `customer_ids` (a
    SELECT of ids, e.g. a segment's members), only theirs."""
    statement = (
        select(PurchasePrediction.customer_id, Customer.email, Customer.external_id, PurchasePrediction.probability,
               PurchasePrediction.reasons)
        .join(Customer, Customer.id == PurchasePrediction.customer_id)
        .order_by(PurchasePrediction.customer_id)
        .execution_options(yield_per=10_000)
    )
    if customer_ids is not None:
        statement = statement.where(PurchasePrediction.customer_id.in_(customer_ids))
    for row in session.execute(statement):
        yield ScoredCustomer(*row)


def latest_run(session: Session) -> Optional[PredictionRun]:
    return session.execute(
        select(PredictionRun).where(PredictionRun.finished_at.is_not(None)).order_by(PredictionRun.id.desc()).limit(1)
    ).scalar_one_or_none()


def rows_as_of(database: "Database", as_of: datetime, *, horizon: int = DEFAULT_HORIZON_DAYS,
               currency_symbol: str = "$", progress: Optional[Progress] = None) -> Tuple[Scores, List[ScoredCustomer]]:
    """Scores at a past (or present) moment from the orders before it, without storing anything."""
    with database.session() as session:
        history = load_history(session, before=as_of)
        scores, ids, probability, reasons = score(history, day_number(as_of), horizon,
                                                  currency_symbol=currency_symbol, progress=progress)
        order = np.argsort(ids, kind="stable")
        contacts: Dict[int, Tuple[Optional[str], Optional[str]]] = {}
        id_list = ids.tolist()
        for start in range(0, len(id_list), 10_000):
            chunk = id_list[start:start + 10_000]
            for customer_id, email, external in session.execute(
                    select(Customer.id, Customer.email, Customer.external_id).where(Customer.id.in_(chunk))):
                contacts[customer_id] = (email, external)
    rows = [ScoredCustomer(int(ids[i]), *contacts.get(int(ids[i]), (None, None)), float(probability[i]), reasons[i])
            for i in order.tolist()]
    return scores, rows


def run_backtest(database: "Database", cutoff: datetime, *, horizon: int = DEFAULT_HORIZON_DAYS,
                 subsets: Optional[Dict[str, np.ndarray]] = None, progress: Optional[Progress] = None) -> BacktestReport:
    """Fit on the orders before `cutoff`; measure against the orders in the `horizon` days after."""
    with database.session() as session:
        history = load_history(session)
    return backtest(history.orders, day_number(cutoff), horizon, subsets=subsets, progress=progress)


def customer_ids_by_store_id(database: "Database", store_ids: List[str]) -> np.ndarray:
    """Our customer ids of the given store ("Customer ID") ids."""
    found: List[int] = []
    with database.session() as session:
        for start in range(0, len(store_ids), 10_000):
            chunk = store_ids[start:start + 10_000]
            found += session.execute(select(Customer.id).where(Customer.external_id.in_(chunk))).scalars().all()
    return np.asarray(sorted(found), dtype=np.int64)


def scheduled_refit(database: "Database", now: datetime, every: timedelta, *, currency_symbol: str = "$") -> Dict[str, int]:
    """The web app's timer: a refit, unless one finished less than `every` ago (a restart, or another web
    process, got there first) or the store has too little history yet; the counts for the log."""
    from bot.prediction.model import NotEnoughHistory

    with database.session() as session:
        last = latest_run(session)
        if last is not None and last.as_of > now - every + REFIT_SLACK:
            return {"customers_scored": 0, "skipped_recent_run": last.id}
    try:
        return refit(database, now, currency_symbol=currency_symbol).as_counts()
    except NotEnoughHistory as error:
        log.info("prediction.not_enough_history", detail=str(error))
        return {"customers_scored": 0, "skipped_not_enough_history": 1}
