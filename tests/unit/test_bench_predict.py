"""The prediction benchmark's code paths at a small scale: CDNOW written as Shopify exports goes through the
project's importer untouched (dates moved 28 years, zero-total orders skipped), the backtest reads it back,
and the generated histories of the scale run are what they claim. No timing is asserted."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from bench import predict
from bot.db import Database
from bot.history_import import run_import
from bot.models import Customer, Order
from bot.prediction.history import OrderHistory
from bot.prediction.service import customer_ids_by_store_id, run_backtest


def test_cdnow_goes_through_the_importer_and_back(tmp_path: Path, program) -> None:
    rows = [row for row in predict.read_cdnow(predict.cdnow_master()) if int(row[0]) <= 120]
    assert rows[0] == ("00001", date(1997, 1, 1), 1, "11.77")
    customers_csv, orders_csv = predict.write_shopify_csvs(rows, tmp_path / "csv")
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.create_schema()
    try:
        report = run_import(database, program, customers_csv, orders_csv)
        zero = sum(1 for row in rows if float(row[3]) == 0)
        assert report.rejected == 0
        assert report.customers_created == 120 and report.orders_recorded == len(rows) - zero
        with database.session() as session:
            first = session.execute(select(func.min(Order.placed_at))).scalar_one()
            assert first == datetime(2025, 1, 1, 12, tzinfo=timezone.utc)  # 1997-01-01 + 28 years
            assert session.execute(select(Customer.external_id).where(Customer.id == 1)).scalar_one() == "00001"
        sample = customer_ids_by_store_id(database, ["00004", "00021", "99999"])
        assert len(sample) == 2
        cutoff = datetime(2025, 10, 1, tzinfo=timezone.utc)
        result = run_backtest(database, cutoff, subsets={"sample": sample})
        bought = {int(row[0]) for row in rows if date(1997, 10, 1) <= row[1] < date(1997, 12, 30) and float(row[3]) > 0}
        assert result.buyers == len(bought)
        assert result.customers == len({int(row[0]) for row in rows if float(row[3]) > 0})
        assert 0.5 < result.metrics["bgnbd"].auc <= 1.0
    finally:
        database.dispose()


def test_generated_histories_and_the_scale_run(capsys) -> None:
    who, moments, amount, as_of = predict.generated_orders(3_000, seed=3)
    assert len(who) == len(moments) == len(amount) and set(np.unique(who)) <= set(range(1, 3_001))
    assert moments.max() < as_of + predict.HORIZON_DAYS and np.all(amount > 0)
    history = OrderHistory.from_orders(who, moments, amount)
    assert 0 < len(history.buyers_between(as_of, as_of + predict.HORIZON_DAYS)) < 3_000
    result = predict.run_scale(3_000)
    assert result["customers_scored"] > 2_000 and 0.6 < result["auc"]["ours"] <= 1.0
    assert "fit + score" in capsys.readouterr().out


def test_the_command_runs_and_records_the_machine(tmp_path: Path, monkeypatch) -> None:
    """`make bench-predict`'s entry point itself (it once imported a helper the shared harness had dropped)."""
    monkeypatch.setattr(predict, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(predict, "JSON_PATH", tmp_path / "predict.json")
    assert predict.main(["--skip-cdnow", "--skip-scale"]) == 0
    recorded = json.loads((tmp_path / "predict.json").read_text())
    assert recorded["machine"]["nproc"] >= 1 and "lifetimes" in recorded["machine"]


def test_import_timing_runs_the_importer_of_each_checkout(tmp_path: Path, monkeypatch, capsys) -> None:
    """`--import-only --orders N`: the customers once, then the orders by each checkout's `python -m bot import`
    into a copy of that store, each timed."""
    monkeypatch.setattr(predict, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(predict, "JSON_PATH", tmp_path / "predict.json")
    assert predict.main(["--import-only", "--orders", "60"]) == 0
    timing = json.loads((tmp_path / "import.json").read_text())["cdnow_import_timing"]
    assert timing["customers"]["rows"] == len({row[0] for row in sorted(
        predict.read_cdnow(predict.cdnow_master()), key=lambda row: row[1])[:60]})
    (orders,) = timing["orders"].values()
    assert orders["rows"] == 60 and orders["exit_code"] == 0 and orders["seconds"] > 0
    assert "orders: 60 rows:" in orders["summary"] and "rejected: none" in orders["summary"]
    assert "orders/s" in capsys.readouterr().out
    assert not list(tmp_path.glob("import-timing-*.db"))  # the timing stores are not kept
