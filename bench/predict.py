"""The repeat-purchase prediction on a public benchmark, and its speed at a million customers.

`make bench-predict` (python -m bench.predict) does two things:

  CDNOW backtest  The CDNOW transaction log that the `lifetimes` wheel ships (CDNOW_master.txt: 23,570
                  customers who first bought in Q1 1997, 69,659 purchases to mid-1998) is written as a
                  Shopify customers export and orders export and brought into a fresh SQLite store with
                  the project's own importer (`python -m bot import`, a child process). Then
                  `python -m bot predict backtest --cutoff <1997-10-01> --horizon 90` fits on the
                  orders before the cutoff (39 weeks) and scores who bought in the 90 days after:
                  AUC, Brier score and calibration deciles for our model and the two baselines
                  (recency rule, plain BG/NBD), side by side.
  scale           fit + score `--customers` (1,000,000) generated histories in memory, timed stage by
                  stage — the same code the backtest and the scheduled refit run, without the database.

  store refit     with --store-customers N, also a SQLite store of N generated customers and their orders
                  (bulk-loaded), and the scheduled refit through it, timed: read every order, fit, score,
                  store every score (bot.prediction.service.refit).

The importer refuses orders dated before 2000 (bot/loyalty/orders.py EARLIEST_ORDER), so every CDNOW
date is moved forward by 28 years exactly (10,227 days: the Gregorian calendar repeats with its
weekdays every 28 years between 1901 and 2099): 1997-01-01 is 2025-01-01, the cutoff 1997-10-01 is
2025-10-01. Intervals, weekdays and seasons are unchanged. The importer skips orders whose total is
0 (80 CDNOW rows), as it would for a store.

The imported store is kept as var/bench/cdnow-<hash>.db, the hash of the two CSV files (and of this
file's CDNOW_FORMAT), so a rerun skips the import (most of it the 23,570 customers, which join one by one);
--reimport forces it. Results also go to var/bench/predict.json. Exit code 1 with --check when a target is
missed.

  import timing   --import-only [--orders N] [--code DIR ...]: the customers file, then the orders file, each
                  through its own `python -m bot import`, timed (wall clock, the child's CPU, load average),
                  into a fresh store; with several --code checkouts (e.g. an older commit's copy from
                  `git archive`) each imports the orders into a copy of the same customers store, one after
                  the other, so before and after are measured in one run. Results in var/bench/import.json.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from bot.settings import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "var" / "bench"
JSON_PATH = BENCH_DIR / "predict.json"
CDNOW_FORMAT = "1"  # bump when the CSVs written from CDNOW change, so the cached store is rebuilt
DATE_SHIFT = timedelta(days=10_227)  # 28 years: same day of the year, same weekday
CDNOW_CUTOFF = date(1997, 10, 1)
HORIZON_DAYS = 90
DEFAULT_CUSTOMERS = 1_000_000
SEED = 42


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def cdnow_master() -> Path:
    import lifetimes

    path = Path(lifetimes.__file__).resolve().parent / "datasets" / "CDNOW_master.txt"
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing (is lifetimes 0.11.3 installed? make setup)")
    return path


def read_cdnow(path: Path) -> List[Tuple[str, date, int, str]]:
    """(customer id, day, number of CDs, dollar value as written) per transaction, in file order."""
    rows = []
    with path.open() as handle:
        next(handle)  # header: customer_id date number_of_cds dollar_value
        for line in handle:
            customer, day, cds, value = line.split()
            rows.append((customer, date(int(day[:4]), int(day[4:6]), int(day[6:])), int(cds), value))
    return rows


def write_shopify_csvs(rows: List[Tuple[str, date, int, str]], folder: Path) -> Tuple[Path, Path]:
    """CDNOW as a Shopify customers export and orders export (orders oldest first, as an export sorted for
    exact points would be). Each transaction is one order named C<customer>-<n>, placed at noon UTC."""
    folder.mkdir(parents=True, exist_ok=True)
    customers_csv, orders_csv = folder / "customers.csv", folder / "orders.csv"
    customers = sorted({customer for customer, *_ in rows})
    with customers_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Customer ID", "First Name", "Last Name", "Email"])
        for customer in customers:
            writer.writerow([customer, "", "", f"cdnow{customer}@cdnow.example"])
    ordered = sorted(enumerate(rows), key=lambda item: (item[1][1], item[0]))
    seen: Dict[str, int] = {}
    with orders_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Name", "Email", "Financial Status", "Created at", "Currency", "Total"])
        for _, (customer, day, _cds, value) in ordered:
            seen[customer] = seen.get(customer, 0) + 1
            placed = day + DATE_SHIFT
            writer.writerow([f"#C{customer}-{seen[customer]}", f"cdnow{customer}@cdnow.example", "paid",
                             f"{placed:%Y-%m-%d} 12:00:00 +0000", "USD", value])
    return customers_csv, orders_csv


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256(CDNOW_FORMAT.encode())
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cdnow_store(reimport: bool = False) -> Tuple[Path, Dict[str, Any]]:
    """The SQLite store with CDNOW imported through `python -m bot import`, cached by the CSVs' hash."""
    rows = read_cdnow(cdnow_master())
    folder = BENCH_DIR / "cdnow"
    customers_csv, orders_csv = write_shopify_csvs(rows, folder)
    key = _digest(customers_csv, orders_csv)
    store = BENCH_DIR / f"cdnow-{key}.db"
    info: Dict[str, Any] = {"transactions": len(rows), "customers": len({r[0] for r in rows}), "store": str(store)}
    if store.is_file() and not reimport:
        log(f"CDNOW store cached: {store.relative_to(PROJECT_ROOT)} (--reimport to rebuild)")
        info["import"] = json.loads((folder / f"import-{key}.json").read_text()) if (
            folder / f"import-{key}.json").is_file() else {}
        return store, info
    partial = store.with_suffix(".partial.db")
    log(f"importing CDNOW ({len(rows):,} transactions, {info['customers']:,} customers) with python -m bot import "
        f"into {partial.relative_to(PROJECT_ROOT)} — progress below")
    summary = time_import(customers_csv, orders_csv, partial)
    (folder / f"import-{key}.json").write_text(json.dumps(summary, indent=2))
    _fold_wal(partial)
    partial.rename(store)
    log(f"imported in {summary['seconds']:.0f} s; cached as {store.relative_to(PROJECT_ROOT)}")
    info["import"] = summary
    return store, info


def time_import(customers_csv: Path, orders_csv: Path, store: Path) -> Dict[str, Any]:
    """The customers file, then the orders file, through `python -m bot import` into a fresh SQLite store."""
    for leftover in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        leftover.unlink(missing_ok=True)
    customers = _timed_import(customers_csv, store, PROJECT_ROOT, "customers")
    orders = _timed_import(orders_csv, store, PROJECT_ROOT, "orders")
    return {"seconds": round(customers["seconds"] + orders["seconds"], 1),
            "orders_per_second": orders["rows_per_second"], "customers": customers, "orders": orders}


def _timed_import(path: Path, store: Path, code: Path, kind: str) -> Dict[str, Any]:
    """One file through its own `python -m bot import` (the child process as a merchant runs it, start-up
    included), timed: wall clock, the child's CPU time and the load average around it. `code`: the checkout
    whose importer runs."""
    import resource

    with path.open() as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    # PYTHONPATH: the environment's own path to this checkout would otherwise win over `code`.
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{store}", LOG_LEVEL="WARNING", PYTHONPATH=str(code))
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "bot", "import", str(path)], env=env, cwd=code,
                               stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(completed.stdout, file=sys.stderr, end="")
    if completed.returncode not in (0, 1):  # 1: some rows rejected (listed above), the rest imported
        raise SystemExit(f"error: the {kind} import failed (exit {completed.returncode})")
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    load_after = os.getloadavg()[0]
    log(f"{kind}: {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f}/s; CPU {cpu:.1f} s, "
        f"{rows / cpu:,.0f} rows per CPU second; load average {load_before:.1f} → {load_after:.1f})")
    return {"rows": rows, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "rows_per_second": round(rows / seconds, 1), "rows_per_cpu_second": round(rows / cpu, 1),
            "load_average": [round(load_before, 2), round(load_after, 2)], "exit_code": completed.returncode,
            "summary": completed.stdout.strip()}


def run_import_only(codes: List[Path], orders: int = 0) -> Dict[str, Any]:
    """`--import-only`: CDNOW (its first `orders` orders by date and their customers, or all) through
    `python -m bot import`, timed, into a fresh store (not the cache). The customers file is imported once;
    the orders file then into a copy of that store by each checkout in `codes`, one after the other, so an
    older commit's importer and this one are measured in the same run."""
    rows = read_cdnow(cdnow_master())
    if orders:
        rows = [row for _, row in sorted(enumerate(rows), key=lambda item: (item[1][1], item[0]))[:orders]]
    folder = BENCH_DIR / ("cdnow" if not orders else f"cdnow-first-{orders}")
    customers_csv, orders_csv = write_shopify_csvs(rows, folder)
    base = BENCH_DIR / "import-timing-customers.db"
    for leftover in (base, Path(f"{base}-wal"), Path(f"{base}-shm")):
        leftover.unlink(missing_ok=True)
    log(f"importing CDNOW's {len(rows):,} orders of {len({row[0] for row in rows}):,} customers with "
        f"python -m bot import; customers first")
    result: Dict[str, Any] = {"customers": _timed_import(customers_csv, base, codes[0], "customers"), "orders": {}}
    _fold_wal(base)
    print(f"== CDNOW import through python -m bot import ({len(rows):,} orders)")
    phase = result["customers"]
    print(f"customers: {phase['rows']:,} rows in {phase['seconds']:.1f} s = {phase['rows_per_second']:,.0f} rows/s "
          f"(CPU {phase['cpu_seconds']:.1f} s; load average {phase['load_average'][0]} → {phase['load_average'][1]})")
    for code in codes:
        store = BENCH_DIR / "import-timing-orders.db"
        for leftover in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(base, store)
        log(f"orders with {code}'s importer")
        phase = _timed_import(orders_csv, store, code, "orders")
        result["orders"][str(code)] = phase
        print(f"orders ({code}): {phase['rows']:,} rows in {phase['seconds']:.1f} s = "
              f"{phase['rows_per_second']:,.0f} orders/s (CPU {phase['cpu_seconds']:.1f} s = "
              f"{phase['rows_per_cpu_second']:,.0f} orders per CPU second; load average "
              f"{phase['load_average'][0]} → {phase['load_average'][1]})")
        for leftover in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
            leftover.unlink(missing_ok=True)
    base.unlink(missing_ok=True)
    return result


def _fold_wal(path: Path) -> None:
    """One file: the WAL folded in (before a rename or a copy)."""
    import sqlite3

    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()


def cdnow_sample_ids() -> List[str]:
    """The customers of the standard 2,357-customer CDNOW sample (CDNOW_sample.txt: master id first)."""
    path = cdnow_master().with_name("CDNOW_sample.txt")
    return sorted({line.split()[0] for line in path.read_text().splitlines() if line.strip()})


def run_cdnow(store: Path) -> Dict[str, Any]:
    """The backtest on the imported CDNOW store, as `python -m bot predict backtest` runs it."""
    from bot.db import Database
    from bot.prediction.backtest import format_report, report_json
    from bot.prediction.service import customer_ids_by_store_id, run_backtest

    database = Database(f"sqlite:///{store}")
    try:
        cutoff = datetime.combine(CDNOW_CUTOFF + DATE_SHIFT, datetime.min.time(), tzinfo=timezone.utc)
        sample = customer_ids_by_store_id(database, cdnow_sample_ids())
        started = time.perf_counter()
        report = run_backtest(database, cutoff, horizon=HORIZON_DAYS,
                              subsets={"the standard 2,357-customer CDNOW sample": sample},
                              progress=lambda message: log(message))
        seconds = time.perf_counter() - started
    finally:
        database.dispose()
    print(f"== CDNOW ({CDNOW_CUTOFF:%Y-%m-%d} is {cutoff:%Y-%m-%d} in the store: dates moved by 28 years)")
    print(format_report(report, cutoff_label=f"{CDNOW_CUTOFF:%Y-%m-%d}",
                        subset_sizes={"the standard 2,357-customer CDNOW sample": len(sample)}))
    print(f"read + fit + score: {seconds:.1f} s")
    result = report_json(report)
    result["seconds"] = round(seconds, 2)
    result["cutoff"] = f"{CDNOW_CUTOFF:%Y-%m-%d}"
    return result


def generated_orders(customers: int, seed: int = SEED) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Order histories of `customers` customers from a BG/NBD-like process with drift, generated with numpy:
    acquisition over three years, rates ~ Gamma, drop-out after each purchase ~ Beta, some customers slowing
    down with time (which BG/NBD does not model). (customer, moment in days, amount, as_of day)."""
    rng = np.random.default_rng(seed)
    end = 20_000.0 + 3 * 365  # days since the epoch; the horizon after as_of is generated too
    as_of = end - HORIZON_DAYS
    first = rng.uniform(20_000.0, as_of - 1, customers)
    rate = rng.gamma(0.7, 1 / 45.0, customers)  # purchases a day while alive
    drop = rng.beta(0.9, 4.0, customers)
    slowing = np.where(rng.random(customers) < 0.3, rng.uniform(0.002, 0.01, customers), 0.0)
    repeats = np.minimum(rng.geometric(drop) - 1, 150)  # purchases after the first, before dropping out
    owner = np.repeat(np.arange(customers), repeats)
    gaps = rng.exponential(1.0, len(owner)) / rate[owner]
    starts = np.r_[0, np.cumsum(repeats)[:-1]]
    running = np.cumsum(gaps)
    since_first = running - np.repeat(np.r_[0.0, running][starts], repeats)  # gaps summed within each customer
    since_first = since_first * (1 + slowing[owner] * since_first / 30)  # the slowing ones space out
    moments = np.concatenate([first, first[owner] + since_first])
    who = np.concatenate([np.arange(customers), owner])
    keep = moments < end
    amount = np.round(rng.lognormal(3.3, 0.6, int(keep.sum())), 2)
    return who[keep].astype(np.int64) + 1, moments[keep], amount, as_of


def run_scale(customers: int) -> Dict[str, Any]:
    """fit + score `customers` generated histories, timed stage by stage (no database)."""
    from bot.prediction.backtest import auc, brier
    from bot.prediction.history import OrderHistory
    from bot.prediction.model import fit_and_score
    from bot.prediction.reasons import explain_all

    log(f"generating {customers:,} customers' order histories")
    who, moments, amount, as_of = generated_orders(customers)
    log(f"{len(who):,} orders generated; fitting and scoring as of day {as_of:.0f} (the last {HORIZON_DAYS} days "
        "are kept aside to check)")
    started = time.perf_counter()
    history = OrderHistory.from_orders(who, moments, amount)
    aggregated = time.perf_counter() - started
    scores = fit_and_score(history, as_of, HORIZON_DAYS, progress=lambda message: log(message))
    fit_score = time.perf_counter() - started
    mark = time.perf_counter()
    reasons = explain_all(scores)
    reasons_seconds = time.perf_counter() - mark
    bought = np.isin(scores.summary.customer, history.buyers_between(as_of, as_of + HORIZON_DAYS))
    result = {
        "customers": customers, "orders": int(len(who)), "customers_scored": len(scores.summary),
        "aggregate_seconds": round(aggregated, 2), "fit_score_seconds": round(fit_score, 2),
        "reasons_seconds": round(reasons_seconds, 2), "stages": scores.describe()["timings_seconds"],
        "model_version": scores.version, "training_rows": scores.training_rows,
        "auc": {"ours": round(auc(bought, scores.probability), 4), "bgnbd": round(auc(bought, scores.bgnbd), 4),
                "recency": round(auc(bought, scores.recency_rule), 4)},
        "brier": {"ours": round(brier(bought, scores.probability), 4), "bgnbd": round(brier(bought, scores.bgnbd), 4),
                  "recency": round(brier(bought, scores.recency_rule), 4)},
        "example_reason": reasons[len(reasons) // 2],
    }
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["stages"].items() if name != "total")
    print(f"\n== scale: {customers:,} generated customers, {len(who):,} orders")
    print(f"fit + score: {fit_score:.1f} s (aggregate orders {aggregated:.1f} s; {stages}); "
          f"reasons for all: {reasons_seconds:.1f} s")
    print(f"on the generated data: AUC ours {result['auc']['ours']:.4f} / BG/NBD {result['auc']['bgnbd']:.4f} / "
          f"recency {result['auc']['recency']:.4f}; Brier {result['brier']['ours']:.4f} / "
          f"{result['brier']['bgnbd']:.4f} / {result['brier']['recency']:.4f}")
    print(f"a reason: {result['example_reason']}")
    return result


def run_store_refit(customers: int) -> Dict[str, Any]:
    """The scheduled refit through the database: a SQLite store of `customers` generated customers and their
    orders (loaded the way a restore is: the schema from the migrations, executemany with the journal off),
    then `bot.prediction.service.refit` — read every order, fit, score, store every score — timed."""
    import sqlite3

    from bot.db import Database
    from bot.prediction.service import refit

    path = BENCH_DIR / "predict-store.db"
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    who, moments, amount, as_of = generated_orders(customers)
    keep = moments < as_of
    who, moments, amount = who[keep], moments[keep], amount[keep]
    database = Database(f"sqlite:///{path}")
    database.create_schema()
    database.dispose()
    log(f"loading {customers:,} customers and {len(who):,} orders into {path.relative_to(PROJECT_ROOT)}")
    started = time.perf_counter()
    epoch = datetime(1970, 1, 1)
    connection = sqlite3.connect(path)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=MEMORY"):
        connection.execute(f"PRAGMA {pragma}")
    created = (epoch + timedelta(days=20_000)).strftime("%Y-%m-%d %H:%M:%S.%f")
    connection.executemany(
        "INSERT INTO customers (id, email, points_balance, created_at, external_id) VALUES (?, ?, 0, ?, ?)",
        ((i, f"c{i}@bench.example", created, f"s{i}") for i in range(1, customers + 1)))
    rows = ((n, f"o{n}", int(c), int(round(a * 100)), (epoch + timedelta(days=float(m))).strftime("%Y-%m-%d %H:%M:%S.%f"))
            for n, (c, m, a) in enumerate(zip(who.tolist(), moments.tolist(), amount.tolist()), start=1))
    connection.executemany(
        "INSERT INTO orders (id, external_id, customer_id, total, refunded_total, currency, status, points_earned, "
        "placed_at) VALUES (?, ?, ?, ?, 0, 'USD', 'paid', 0, ?)", rows)
    connection.commit()
    connection.close()
    load_seconds = time.perf_counter() - started
    log(f"loaded in {load_seconds:.0f} s; refit as of the generated date")
    database = Database(f"sqlite:///{path}")
    try:
        now = datetime.fromtimestamp(as_of * 86_400, tz=timezone.utc)
        started = time.perf_counter()
        report = refit(database, now, progress=lambda message: log(message))
        seconds = time.perf_counter() - started
    finally:
        database.dispose()
    print(f"\n== refit through the database: {customers:,} customers, {len(who):,} orders on SQLite")
    print(f"read + fit + score + store every score: {seconds:.1f} s ({report.customers_scored:,} scores, "
          f"{report.model_version})")
    return {"customers": customers, "orders": int(len(who)), "load_seconds": round(load_seconds, 1),
            "refit_seconds": round(seconds, 1), "customers_scored": report.customers_scored}


TARGETS = (
    ("cdnow.metrics.ours.auc", ">=", 0.80, "CDNOW AUC ≥ 0.80"),
    ("cdnow.auc_gain", ">=", 0.01, "CDNOW AUC ≥ BG/NBD + 0.01"),
    ("cdnow.brier_gain", "<=", 0.0, "CDNOW Brier no worse than BG/NBD"),
    ("scale.fit_score_seconds", "<=", 60.0, "fit + score 1,000,000 customers ≤ 60 s"),
)


def _lookup(results: Dict[str, Any], key: str) -> Optional[float]:
    value: Any = results
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare-only", action="store_true", help="import CDNOW (or find the cached store) and stop")
    parser.add_argument("--reimport", action="store_true", help="import CDNOW again even if a cached store exists")
    parser.add_argument("--import-only", action="store_true",
                        help="time the CDNOW import (customers file, then orders file) into a fresh store and stop")
    parser.add_argument("--orders", type=int, default=0, metavar="N",
                        help="with --import-only: only CDNOW's first N orders (by date) and their customers")
    parser.add_argument("--code", type=Path, action="append", metavar="DIR",
                        help="with --import-only: a checkout whose importer imports the orders (repeatable, e.g. "
                             "an older commit's copy and this one; default this one)")
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, help="generated customers for the scale run")
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--store-customers", type=int, default=0, metavar="N",
                        help="also time the scheduled refit through a SQLite store of N generated customers")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    from bench.harness import machine

    results: Dict[str, Any] = {"machine": machine(("lifetimes", "scikit-learn", "numpy", "scipy")),
                               "date": f"{date.today():%Y-%m-%d}"}
    if args.import_only:
        results["cdnow_import_timing"] = run_import_only([code.resolve() for code in args.code or [PROJECT_ROOT]],
                                                         args.orders)
        results["machine"]["load_average"] = os.getloadavg()
        (BENCH_DIR / "import.json").write_text(json.dumps(results, indent=2, default=str))
        log(f"results in {os.path.relpath(BENCH_DIR / 'import.json', PROJECT_ROOT)}")
        return 0
    if not args.skip_cdnow:
        store, info = cdnow_store(args.reimport)
        if args.prepare_only:
            return 0
        results["cdnow_import"] = info.get("import", {})
        results["cdnow"] = run_cdnow(store)
        metrics = results["cdnow"]["metrics"]
        results["cdnow"]["auc_gain"] = round(metrics["ours"]["auc"] - metrics["bgnbd"]["auc"], 4)
        results["cdnow"]["brier_gain"] = round(metrics["ours"]["brier"] - metrics["bgnbd"]["brier"], 4)
    if not args.skip_scale:
        results["scale"] = run_scale(args.customers)
    if args.store_customers:
        results["store_refit"] = run_store_refit(args.store_customers)
    print("\n== targets")
    missed = 0
    for key, op, limit, label in TARGETS:
        value = _lookup(results, key)
        if value is None or (key.startswith("scale") and args.customers < DEFAULT_CUSTOMERS):
            continue
        ok = value >= limit if op == ">=" else value <= limit
        missed += not ok
        print(f"{'PASS' if ok else 'MISS'}  {label}: {value:.4g}")
    results["machine"]["load_average"] = os.getloadavg()
    JSON_PATH.write_text(json.dumps(results, indent=2, default=str))
    log(f"results in {os.path.relpath(JSON_PATH, PROJECT_ROOT)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
