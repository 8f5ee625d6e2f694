"""The prediction against a real store (SQLite and PostgreSQL): orders read, scores stored with reasons and
model version, the previous probability kept, --as-of reading only the past, the CLI and the web app's timer."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Dict, List

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.identity import create_customer
from bot.models import Customer, Order, PredictionRun, PurchasePrediction
from bot.prediction.service import (
    customer_prediction, load_history, refit, rows_as_of, scheduled_refit, stored_rows,
)

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def build_store(db: Database) -> Dict[str, List[int]]:
    """30 regulars (an order every 20 days for 400 days), 30 who bought once 200-400 days ago, one whose
    only order was cancelled, one who never ordered, and one whose only order comes after NOW - 50 days."""
    groups: Dict[str, List[int]] = {"regular": [], "once": [], "cancelled": [], "never": [], "late": []}
    number = 0
    with db.session(write=True) as session:
        def customer(group: str) -> int:
            row = create_customer(session, f"{group}{len(groups[group])}@example.com")
            row.created_at = NOW - timedelta(days=500)
            row.external_id = f"shop-{row.id}"
            groups[group].append(row.id)
            return row.id

        def order(customer_id: int, days_ago: float, status: str = "paid") -> None:
            nonlocal number
            number += 1
            session.add(Order(external_id=f"o{number}", customer_id=customer_id, total=Decimal("40.00"),
                              refunded_total=Decimal(0), currency="USD", status=status,
                              placed_at=NOW - timedelta(days=days_ago)))

        for index in range(30):
            regular = customer("regular")
            for days_ago in range(400 - index, 0, -20):
                order(regular, days_ago)
            order(customer("once"), 200 + index * 6)
        order(customer("cancelled"), 30, status="cancelled")
        customer("never")
        order(customer("late"), 20)
    return groups


def test_refit_stores_every_customer_with_reasons_and_keeps_the_previous_probability(any_db: Database) -> None:
    groups = build_store(any_db)
    report = refit(any_db, NOW)
    assert report.customers_scored == 63 and report.with_orders == 61
    assert report.model_version == "rapport-repeat-1/bgnbd"  # 61 customers: too few for the classifier
    with any_db.session() as session:
        stored = {row.customer_id: row for row in session.execute(select(PurchasePrediction)).scalars()}
        run = session.get(PredictionRun, report.run_id)
        assert run.finished_at is not None and run.customers_scored == 63
        assert run.details["bgnbd"]["customers"] == 61
        first = customer_prediction(session, groups["regular"][0])
    assert len(stored) == 63
    regulars = [stored[c].probability for c in groups["regular"]]
    once = [stored[c].probability for c in groups["once"]]
    assert min(regulars) > 0.8 and max(once) < 0.3
    assert stored[groups["regular"][0]].reasons.startswith("last order 20 days ago; 20 orders in 13 months, about every 20 days; $800 spent;")
    assert stored[groups["once"][0]].reasons.startswith("first and only order 200 days ago; $40 spent;")
    # A cancelled order is no purchase: that customer and the one who never ordered get the no-order rate.
    assert stored[groups["cancelled"][0]].reasons.startswith("no orders yet;")
    assert stored[groups["never"][0]].probability == stored[groups["cancelled"][0]].probability
    assert all(row.model_version == report.model_version and row.horizon_days == 90 for row in stored.values())
    assert first is not None and first.previous_probability is None and first.as_of == NOW

    later = refit(any_db, NOW + timedelta(days=7))
    with any_db.session() as session:
        again = customer_prediction(session, groups["regular"][0])
        assert session.execute(select(func.count()).select_from(PurchasePrediction)).scalar_one() == 63
        assert session.execute(select(func.count()).select_from(PurchasePrediction)
                               .where(PurchasePrediction.run_id != later.run_id)).scalar_one() == 0
    assert again.previous_probability == pytest.approx(first.probability)
    assert again.as_of == NOW + timedelta(days=7) and "27 days ago" in again.reasons


def test_as_of_reads_only_the_orders_before_it(sqlite_db: Database) -> None:
    groups = build_store(sqlite_db)
    as_of = NOW - timedelta(days=50)
    with sqlite_db.session() as session:
        history = load_history(session, before=as_of)
    assert history.orders.day.max() < as_of.timestamp() / 86400
    scores, rows = rows_as_of(sqlite_db, as_of)
    by_id = {row.customer_id: row for row in rows}
    late = groups["late"][0]
    assert late in by_id and by_id[late].reasons.startswith("no orders yet")  # its order came after the date
    assert by_id[groups["regular"][0]].reasons.startswith("last order 10 days ago")  # 60 days before NOW
    assert by_id[late].email == "late0@example.com" and by_id[late].store_customer_id == f"shop-{late}"
    assert [row.customer_id for row in rows] == sorted(by_id)
    with sqlite_db.session() as session:  # nothing stored
        assert session.execute(select(func.count()).select_from(PurchasePrediction)).scalar_one() == 0


def test_the_scheduled_refit_skips_a_recent_run_and_an_empty_store(sqlite_db: Database) -> None:
    assert scheduled_refit(sqlite_db, NOW, timedelta(hours=24)) == {
        "customers_scored": 0, "skipped_not_enough_history": 1}
    build_store(sqlite_db)
    first = scheduled_refit(sqlite_db, NOW, timedelta(hours=24))
    assert first["customers_scored"] == 63
    assert scheduled_refit(sqlite_db, NOW + timedelta(hours=2), timedelta(hours=24))["customers_scored"] == 0
    assert scheduled_refit(sqlite_db, NOW + timedelta(hours=24), timedelta(hours=24))["customers_scored"] == 63


def test_cli_refit_scores_and_backtest(environment: Path, clock, capsys, monkeypatch) -> None:
    from bot.cli import main
    from bot.db import get_database

    clock.at(NOW)
    database = get_database()
    database.create_schema()
    groups = build_store(database)
    assert main(["predict", "scores"]) == 1
    assert "no scores stored yet" in capsys.readouterr().err
    assert main(["predict", "refit"]) == 0
    assert "63 customers scored" in capsys.readouterr().out

    assert main(["predict", "scores", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 63 and set(rows[0]) == {"id", "email", "store_customer_id", "probability", "reasons"}
    regular = next(row for row in rows if row["id"] == groups["regular"][0])
    assert regular["email"] == "regular0@example.com" and regular["store_customer_id"] == f"shop-{regular['id']}"

    assert main(["predict", "scores", "--as-of", "2026-05-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id,email,store_customer_id,probability,reasons" and len(lines) == 64

    assert main(["predict", "backtest", "--cutoff", "2026-03-01", "--horizon", "60"]) == 0
    out = capsys.readouterr().out
    assert "fitted on orders before 2026-03-01" in out and "plain BG/NBD" in out and "recency rule" in out
    assert main(["predict", "backtest", "--cutoff", "2026-05-01"]) == 1  # the 90 days after end in the future
    assert "has not happened yet" in capsys.readouterr().err


async def test_the_web_app_refits_on_its_timer(sqlite_db: Database, program, clock, tmp_path: Path) -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from bot.web import create_app
    from bot.web.scheduler import PREDICTION_JOB_ID, PREDICTION_SCHEDULER, SCHEDULER, setup_prediction_refit
    from tests.web.conftest import web_settings

    clock.at(NOW)
    build_store(sqlite_db)
    off = create_app(web_settings(tmp_path, PREDICTION_REFIT_HOURS="0"), sqlite_db, program=program)
    assert PREDICTION_SCHEDULER not in off and SCHEDULER not in off
    app = create_app(web_settings(tmp_path, PREDICTION_REFIT_HOURS="0"), sqlite_db, program=program)
    setup_prediction_refit(app, 6, first_run_delay=timedelta(0))
    async with TestClient(TestServer(app)):
        job = app[PREDICTION_SCHEDULER].get_job(PREDICTION_JOB_ID)
        assert job is not None and job.trigger.interval == timedelta(hours=6)
        for _ in range(150):
            with sqlite_db.session() as session:
                if session.execute(select(PredictionRun).where(PredictionRun.finished_at.is_not(None))).first():
                    break
            await asyncio.sleep(0.1)
    with sqlite_db.session() as session:
        assert len(list(stored_rows(session))) == 63
    assert not app[PREDICTION_SCHEDULER].running
    default = create_app(web_settings(tmp_path), sqlite_db, program=program)
    assert PREDICTION_SCHEDULER in default  # on by default (24 h), whatever the loyalty jobs' setting


def test_erasing_a_customer_removes_their_score(sqlite_db: Database) -> None:
    groups = build_store(sqlite_db)
    refit(sqlite_db, NOW)
    with sqlite_db.session(write=True) as session:
        session.delete(session.get(Customer, groups["once"][0]))
    with sqlite_db.session() as session:
        assert customer_prediction(session, groups["once"][0]) is None
