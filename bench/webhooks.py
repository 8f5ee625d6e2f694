"""`make bench-webhooks`: store webhook intake and apply. Starts the real web app (`python -m bot web`) on a fresh
database, sends Shopify `orders/paid` deliveries signed as Shopify signs them from CONCURRENCY concurrent
senders (a share of them redelivered, as Shopify's retries are), and measures the acknowledgement time of each
(p50/p95/p99: Shopify allows 5 s) and the sustained intake per second; then how fast the web app's inbox worker
applies them (orders recorded with their points, customers joined), on SQLite. PASS/MISS against the targets, results in
var/bench/webhooks.json."""
from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp
from sqlalchemy import func, select

from bench.console import Server
from bench.harness import finish, formatted, latency_summary, log, machine, target, write_json
from bot.db import Database
from bot.models import Order, StoreEvent
from bot.settings import PROJECT_ROOT

SEED = 15
SHOP = "bench-shop.myshopify.com"
SECRET = "shpss_bench_secret"
DEFAULT_DELIVERIES = 2000
DEFAULT_CONCURRENCY = 50
DEFAULT_REDELIVERED = 0.1  # a tenth are sent twice (Shopify retries with the same event id)
P99_TARGET_MS = 250.0
APPLY_TIMEOUT_SECONDS = 900.0
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
JSON_PATH = BENCH_DIR / "webhooks.json"
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "shopify" / "webhooks" / "orders-paid.json"


def deliveries(count: int, redelivered: float, rng: random.Random) -> List[Tuple[str, bytes, Dict[str, str]]]:
    """(event id, body, headers) of `count` distinct paid orders of count // 4 shoppers, plus redeliveries."""
    template = json.loads(FIXTURE.read_text())
    made = []
    for number in range(count):
        order = copy.deepcopy(template)
        shopper = number % max(count // 4, 1)
        order["id"] = 6_000_000_000_000 + number
        order["name"] = f"#B{number:06d}"
        order["customer"]["id"] = 8_000_000_000_000 + shopper
        order["customer"]["email"] = order["email"] = order["contact_email"] = f"shopper{shopper}@example.com"
        order["browser_ip"] = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        body = json.dumps(order).encode()
        event_id = f"bench-{number}"
        made.append((event_id, body, signed_headers(event_id, body)))
    again = rng.sample(made, int(count * redelivered))
    combined = made + again
    rng.shuffle(combined)
    return combined


def signed_headers(event_id: str, body: bytes) -> Dict[str, str]:
    """Shopify's headers of an orders/paid delivery to SHOP, signed with its SECRET as Shopify signs."""
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/paid", "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Event-Id": event_id, "X-Shopify-API-Version": "2026-04"}


async def send_all(base: str, planned: Sequence[Tuple[str, bytes, Dict[str, str]]],
                   concurrency: int) -> Tuple[List[float], float, Dict[int, int]]:
    """Every delivery from `concurrency` senders; (latencies in ms, seconds it took, replies by status)."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in planned:
        queue.put_nowait(item)
    latencies: List[float] = []
    statuses: Dict[int, int] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as client:
        async def sender() -> None:
            while not queue.empty():
                _, body, headers = queue.get_nowait()
                started = time.perf_counter()
                async with client.post(base + "/webhooks/shopify", data=body, headers=headers) as response:
                    await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started, statuses


async def warm_up(base: str, database: Database) -> None:
    """One delivery applied before the measured ones: the web app's inbox worker (a child process it starts,
    several seconds of imports) is then applying while the deliveries arrive, as in a web app that has been
    running, instead of still starting up through the whole intake."""
    template = json.loads(FIXTURE.read_text())
    template["id"], template["name"] = 5_999_999_999_999, "#WARMUP"
    body = json.dumps(template).encode()
    async with aiohttp.ClientSession() as client:
        async with client.post(base + "/webhooks/shopify", data=body, headers=signed_headers("warm-up", body)) as response:
            if response.status != 200:
                raise RuntimeError(f"the warm-up delivery got {response.status}: {await response.text()}")
    deadline = time.monotonic() + 120
    while True:
        with database.session() as session:
            if session.execute(select(func.count()).select_from(Order)).scalar_one():
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up delivery was not applied within 120 s")
        await asyncio.sleep(0.1)


def wait_applied(database: Database, expected: int, started: float) -> Tuple[float, Dict[str, int]]:
    """Seconds from the first delivery until the worker applied every event; the events by state."""
    deadline = time.monotonic() + APPLY_TIMEOUT_SECONDS
    last_report = 0.0
    while True:
        with database.session() as session:
            states = dict(session.execute(select(StoreEvent.state, func.count()).group_by(StoreEvent.state)).all())
        done = sum(count for state, count in states.items() if state != "pending")
        if done >= expected and not states.get("pending"):
            return time.perf_counter() - started, {state: int(count) for state, count in states.items()}
        if time.monotonic() > deadline:
            raise RuntimeError(f"not applied within {APPLY_TIMEOUT_SECONDS:.0f} s: {states}")
        if time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            log(f"applied {done:,} of {expected:,}")
        time.sleep(0.25)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=DEFAULT_DELIVERIES, help="distinct events to send")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--redelivered", type=float, default=DEFAULT_REDELIVERED)
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    db_path = BENCH_DIR / "webhooks.db"
    for leftover in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        leftover.unlink(missing_ok=True)
    database = Database(f"sqlite:///{db_path}")
    database.create_schema()
    planned = deliveries(args.deliveries, args.redelivered, random.Random(SEED))
    log(f"{len(planned):,} deliveries ({args.deliveries:,} distinct) from {args.concurrency} senders")
    os.environ["SHOPIFY_WEBHOOK_SECRETS"] = f"{SHOP}={SECRET}"
    server = Server(db_path, BENCH_DIR / "webhooks-data", BENCH_DIR / "webhooks-web.log")
    try:
        async def run() -> Tuple[List[float], float, Dict[int, int]]:
            async with aiohttp.ClientSession() as client:
                await server.wait_ready(client)
            await warm_up(server.base, database)
            return await send_all(server.base, planned, args.concurrency)

        started = time.perf_counter()
        latencies, seconds, statuses = asyncio.run(run())
        log(f"sent in {seconds:.1f} s; waiting for the worker to apply them")
        applied_seconds, states = wait_applied(database, args.deliveries + 1, started)
        with database.session() as session:
            orders = int(session.execute(select(func.count()).select_from(Order)).scalar_one()) - 1  # the warm-up
    finally:
        server.stop()
        database.dispose()
    intake = latency_summary(latencies, seconds=seconds)
    report: Dict[str, Any] = {
        "machine": machine(("aiohttp", "SQLAlchemy")),
        "database": "sqlite",
        "deliveries": len(planned), "distinct_events": args.deliveries, "concurrency": args.concurrency,
        "statuses": statuses, "intake": intake,
        "apply": {"seconds": round(applied_seconds, 1), "events": args.deliveries,
                  "per_second": round(args.deliveries / applied_seconds, 1), "states": states, "orders": orders},
        "targets": [target("acknowledgement p99 at 50 concurrent deliveries", intake["p99_ms"], P99_TARGET_MS, "ms"),
                    target("every distinct event applied once (orders recorded)", float(args.deliveries - orders),
                           0.0, "missing orders")],
    }
    write_json(args.json, report)
    lines = [
        f"Webhook intake: {len(planned):,} deliveries from {args.concurrency} senders in {seconds:.1f} s = "
        f"{formatted(intake['per_second'])}/s; ack p50 {formatted(intake['p50_ms'])} ms, "
        f"p95 {formatted(intake['p95_ms'])} ms, p99 {formatted(intake['p99_ms'])} ms, max {formatted(intake['max_ms'])} ms",
        f"Apply: {args.deliveries:,} events applied {report['apply']['per_second']:,}/s "
        f"(all done {applied_seconds:.1f} s after the first delivery); states {states}; orders {orders:,}",
        "replies: " + ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items())),
    ]
    lines += [f"{row['result']:4}  {row['target']}: {row['value']} (limit {row['limit']} {row['unit']})"
              for row in report["targets"]]
    failures = sum(count for status, count in statuses.items() if status != 200)
    return finish(report, "\n".join(lines), args.json, args.check, failures)


if __name__ == "__main__":
    sys.exit(main())
