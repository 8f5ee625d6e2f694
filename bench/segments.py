"""Segment counts at a million customers on PostgreSQL.

`make bench-segments` (python -m bench.segments) builds a store in its own schema (`bench_segments`) of the
PostgreSQL database TEST_POSTGRES_URL names, migrated to head (the same indexes and triggers as
production), and bulk-loads with COPY `--customers` (1,000,000) generated customers: tiers, balances and
their last activity, ~2.4 orders each over three years (a third bought once), a prediction with the
previous run's probability for everyone with an order, chats on Telegram / Instagram (some blocked,
some unsubscribed), CSAT / NPS answers, referrals and reviews. The load turns the order triggers off
(session_replication_role = replica) and fills customer_order_stats in one INSERT … SELECT, as migration
0020 does for an existing store. Then it times `bot.segments.service.count` of every built-in segment and
a few mixed filters (`--runs` times each, the median and the slowest), and a page of 20 members with
reasons. Target: every count ≤ 1 s. --skip-seed reuses the loaded schema. Results also go to
var/bench/segments.json; exit 1 with --check when a target is missed.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import psycopg2

from bench.harness import finish, log, machine, target, write_json
from bot.settings import PROJECT_ROOT

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_segments"
JSON_PATH = PROJECT_ROOT / "var" / "bench" / "segments.json"
DEFAULT_CUSTOMERS = 1_000_000
CHUNK = 100_000
SEED = 7
LIMIT_MS = 1000.0
MIXED = {
    "gold, last order 90+ days ago, reachable": [
        {"kind": "tier", "tiers": ["Gold", "Platinum"]}, {"kind": "recency", "min": 90},
        {"kind": "channel", "reachable": True}],
    "3+ orders, spent 500+, may be messaged": [
        {"kind": "frequency", "min": 3}, {"kind": "lifetime_spend", "min": 500},
        {"kind": "consent", "status": "may_message"}],
    "never ordered, 100+ points": [{"kind": "frequency", "max": 0}, {"kind": "points_balance", "min": 100}],
    "likely to lapse (spent 200+, fell 20 points)": [
        {"kind": "likely_to_lapse", "min_spend": 200, "min_drop": 20}],
}


def schema_url(url: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{SCHEMA}"


def _stamp(epoch: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(epoch.astype("datetime64[s]"), unit="s")


def _copy(cursor: Any, table: str, columns: List[str], lines: Iterator[str]) -> None:
    for text in lines:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text))


def _rows(*columns: np.ndarray) -> str:
    """Tab-separated lines; "None" and "nan" cells become NULL."""
    text = ["\t".join(values) for values in zip(*(column.astype(str) for column in columns))]
    return ("\n".join(text) + "\n").replace("\tNone", "\t\\N").replace("\tnan", "\t\\N").replace("\tNaT", "\t\\N")


def seed(url: str, customers: int, now: datetime) -> Dict[str, float]:
    from bot.db import Database

    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        cursor.execute(f'CREATE SCHEMA "{SCHEMA}"')
    admin.close()
    started = time.perf_counter()
    database = Database(schema_url(url))
    database.create_schema()
    database.dispose()
    phases = {"migrate_s": time.perf_counter() - started}
    rng = np.random.default_rng(SEED)
    now_s = int(now.timestamp())
    day = 86_400
    connection = psycopg2.connect(url, options=f"-csearch_path={SCHEMA}")
    cursor = connection.cursor()
    cursor.execute("SET session_replication_role = replica")  # no triggers or FK checks during the load
    started = time.perf_counter()
    orders_total = 0
    order_id = 0
    tiers = np.array(["Bronze", "Silver", "Gold", "Platinum"])
    for first in range(1, customers + 1, CHUNK):
        ids = np.arange(first, min(first + CHUNK, customers + 1))
        n = len(ids)
        created = now_s - rng.integers(30, 1500, n) * day
        tier = tiers[rng.choice(4, n, p=[0.70, 0.20, 0.08, 0.02])]
        points = np.where(rng.random(n) < 0.6, rng.integers(0, 5000, n), 0)
        activity = np.where(points > 0, now_s - rng.integers(0, 420, n) * day, created)
        _copy(cursor, "customers", ["id", "email", "points_balance", "created_at", "last_activity_at", "tier_name"],
              [_rows(ids, np.char.add(np.char.add("c", ids.astype(str)), "@example.com"), points,
                     np.char.add(_stamp(created), "+00"), np.char.add(_stamp(activity), "+00"), tier)])
        # Orders: a third of the customers never ordered, a third once, the rest 2-12 times.
        counts = np.where(rng.random(n) < 0.33, 0, np.where(rng.random(n) < 0.5, 1, rng.integers(2, 13, n)))
        owner = np.repeat(ids, counts)
        m = len(owner)
        placed = now_s - rng.integers(1, 1100, m) * day - rng.integers(0, day, m)
        total = rng.integers(1000, 30000, m)
        status = np.where(rng.random(m) < 0.03, "cancelled", "paid")
        numbers = np.arange(order_id + 1, order_id + m + 1)
        order_id += m
        orders_total += m
        _copy(cursor, "orders", ["id", "external_id", "customer_id", "total", "refunded_total", "currency", "status",
                                 "points_earned", "placed_at"],
              [_rows(numbers, np.char.add("o", numbers.astype(str)), owner, total, np.zeros(m, dtype=int),
                     np.full(m, "USD"), status, total // 100, np.char.add(_stamp(placed), "+00"))])
        buyers = ids[counts > 0]
        b = len(buyers)
        probability = np.round(rng.beta(2, 3, b), 4)
        previous = np.where(rng.random(b) < 0.8, np.round(np.clip(probability + rng.normal(0, 0.2, b), 0, 1), 4), np.nan)
        _copy(cursor, "purchase_predictions", ["customer_id", "run_id", "probability", "previous_probability", "reasons",
                                               "model_version", "as_of", "horizon_days", "computed_at"],
              [_rows(buyers, np.ones(b, dtype=int), probability, previous, np.full(b, "generated"),
                     np.full(b, "bench"), np.full(b, now.isoformat()), np.full(b, 90), np.full(b, now.isoformat()))])
        chatting = ids[rng.random(n) < 0.5]
        c = len(chatting)
        channel = np.where(rng.random(c) < 0.6, "telegram", "instagram")
        blocked = np.where(rng.random(c) < 0.05, np.char.add(_stamp(np.full(c, now_s - 10 * day)), "+00"), "None")
        _copy(cursor, "channel_identities", ["channel", "external_id", "customer_id", "created_at", "unreachable_since"],
              [_rows(channel, np.char.add("s", chatting.astype(str)), chatting,
                     np.full(c, now.isoformat()), blocked)])
        said = rng.random(c) < 0.1
        _copy(cursor, "message_consents", ["channel", "sender_id", "customer_id", "status", "source", "recorded_at"],
              [_rows(channel[said], np.char.add("s", chatting[said].astype(str)), chatting[said],
                     np.where(rng.random(said.sum()) < 0.5, "unsubscribed", "subscribed"), np.full(said.sum(), "chat"),
                     np.full(said.sum(), now.isoformat()))])
        answered = ids[rng.random(n) < 0.15]
        a = len(answered)
        kind = np.where(rng.random(a) < 0.5, "csat", "nps")
        score = np.where(kind == "csat", rng.integers(1, 6, a), rng.integers(0, 11, a))
        _copy(cursor, "feedback", ["customer_id", "channel", "sender_id", "kind", "score", "topics", "search_text",
                                   "status", "goodwill_points", "created_at", "updated_at"],
              [_rows(answered, np.full(a, "telegram"), np.char.add("s", answered.astype(str)), kind, score,
                     np.full(a, "[]"), np.full(a, ""), np.full(a, "new"), np.zeros(a, dtype=int),
                     np.full(a, now.isoformat()), np.full(a, now.isoformat()))])
        advocates = ids[rng.random(n) < 0.03]
        r = len(advocates)
        _copy(cursor, "referral_codes", ["id", "customer_id", "code", "created_at"],
              [_rows(advocates, advocates, np.char.add("R", advocates.astype(str)), np.full(r, now.isoformat()))])
        _copy(cursor, "referrals", ["referral_code_id", "advocate_id", "friend_channel", "friend_sender_id", "source",
                                    "status", "reason", "points_awarded", "created_at"],
              [_rows(advocates, advocates, np.full(r, "telegram"), np.char.add("f", advocates.astype(str)),
                     np.full(r, "link"), np.full(r, "rewarded"), np.full(r, "bench"), np.zeros(r, dtype=int),
                     np.full(r, now.isoformat()))])
        log(f"loaded {ids[-1]:,} customers, {orders_total:,} orders")
    connection.commit()
    phases["copy_s"] = time.perf_counter() - started
    started = time.perf_counter()
    cursor.execute("SET session_replication_role = origin")
    cursor.execute("""
        INSERT INTO customer_order_stats (customer_id, order_count, first_order_at, last_order_at, lifetime_spend)
        SELECT customer_id, count(*), min(placed_at), max(placed_at), coalesce(sum(total - refunded_total), 0)
        FROM orders WHERE status <> 'cancelled' GROUP BY customer_id""")
    cursor.execute("INSERT INTO prediction_runs (id, model_version, as_of, horizon_days, customers_scored, details, "
                   "started_at) VALUES (1, 'bench', now(), 90, 0, '{}', now())")
    for table in ("customers", "orders", "feedback", "referrals", "channel_identities", "message_consents",
                  "referral_codes"):
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    connection.commit()
    connection.autocommit = True
    cursor.execute("VACUUM ANALYZE")
    phases["stats_and_analyze_s"] = time.perf_counter() - started
    connection.close()
    phases["orders"] = orders_total
    return phases


def measure(url: str, runs: int) -> Dict[str, Any]:
    from bot.db import Database
    from bot.loyalty.program import get_program
    from bot.segments.filters import SegmentFilter
    from bot.segments.service import count, list_segments, members

    database = Database(schema_url(url))
    program = get_program()
    results: Dict[str, Any] = {}
    with database.session() as session:
        customers = session.execute(__import__("sqlalchemy").text("SELECT count(*) FROM customers")).scalar_one()
        results["customers"] = customers
        filters = {segment.name: segment.filter for segment in list_segments(session, program=program)}
        filters.update({name: SegmentFilter.from_json(conditions) for name, conditions in MIXED.items()})
        rows = []
        for name, chosen in filters.items():
            times, size = [], 0
            for _ in range(runs):
                started = time.perf_counter()
                size = count(session, chosen, program=program)
                times.append((time.perf_counter() - started) * 1000)
            rows.append({"segment": name, "members": size, "median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1)})
            log(f"{name}: {size:,} members, median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
        results["counts"] = rows
        started = time.perf_counter()
        page = members(session, filters["VIPs at risk"], limit=20, program=program)
        results["sample_20_ms"] = round((time.perf_counter() - started) * 1000, 1)
        results["sample_reason"] = page[0].reason if page else None
    database.dispose()
    return results


def _server_version() -> str:
    connection = psycopg2.connect(POSTGRES_URL)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def report_text(results: Dict[str, Any]) -> str:
    lines = [f"Segment counts on PostgreSQL, {results['customers']:,} customers "
             f"({results.get('seed', {}).get('orders', 0):,} orders loaded)" if results.get("seed")
             else f"Segment counts on PostgreSQL, {results['customers']:,} customers",
             f"{'segment':<48} {'members':>10} {'median ms':>10} {'max ms':>8}"]
    for row in results["counts"]:
        lines.append(f"{row['segment']:<48} {row['members']:>10,} {row['median_ms']:>10,.0f} {row['max_ms']:>8,.0f}")
    lines.append(f"a page of 20 VIPs at risk with reasons: {results['sample_20_ms']:,.0f} ms "
                 f"(e.g. \"{results['sample_reason']}\")")
    for row in results["targets"]:
        lines.append(f"{row['result']}: {row['target']} ({row['value']:,.0f} {row['unit']}, limit {row['limit']:,.0f})")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, metavar="N")
    parser.add_argument("--runs", type=int, default=5, help="counts per segment (median and max reported)")
    parser.add_argument("--skip-seed", action="store_true", help="reuse the loaded bench_segments schema")
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 when a count misses its target")
    args = parser.parse_args(argv)
    results: Dict[str, Any] = {"machine": machine(("sqlalchemy", "numpy"), postgresql=_server_version()),
                               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if not args.skip_seed:
        log(f"loading {args.customers:,} customers into {SCHEMA}")
        results["seed"] = seed(POSTGRES_URL, args.customers, datetime.now(timezone.utc) - timedelta(minutes=1))
    results.update(measure(POSTGRES_URL, args.runs))
    results["targets"] = [target(f"count {row['segment']} ≤ 1 s (slowest of {args.runs})", row["max_ms"], LIMIT_MS,
                                 "ms") for row in results["counts"]]
    write_json(args.json, results)
    return finish(results, report_text(results), args.json, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
