"""`make bench-loyalty`: the loyalty store at scale. Seeds 1,000,000 customers and 10,000,000 ledger entries
from random.Random(42) on SQLite and PostgreSQL the way a restore loads them, then times balance reads,
earning and redemptions through the real services, with PASS/MISS against TARGETS and the results in
var/bench/loyalty.json. What is measured and how: the README's "Loyalty store at scale"."""
from __future__ import annotations

import argparse
import bisect
import io
import json
import marshal
import multiprocessing
import os
import random
import resource
import socket
import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

import psycopg2
import sqlalchemy
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select, text

from bench.harness import (
    finish, formatted, latency_summary, log, machine as describe_machine, process_kib, sqlite_url, target, write_json,
)
from bot.db import Database
from bot.loyalty.earning import award, credit_for
from bot.loyalty.ledger import balance, verify_balances
from bot.loyalty.program import Program, load_program
from bot.loyalty.rewards import redeem
from bot.models import Customer, LedgerEntry, RewardCode
from bot.settings import PROJECT_ROOT

SEED = 42
DEFAULT_CUSTOMERS = 1_000_000
DEFAULT_ENTRIES = 10_000_000
ENGINES = ("sqlite", "postgresql")
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
SQLITE_PATH = BENCH_DIR / "loyalty.db"
JSON_PATH = BENCH_DIR / "loyalty.json"
PROGRAM_FILE = PROJECT_ROOT / "data" / "program.yml"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_SCHEMA = "bench_loyalty"
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

# The generated history: three years up to a fixed day, so the data is the same on every run.
HISTORY_END = datetime(2026, 11, 1, tzinfo=timezone.utc)
HISTORY_DAYS = 3 * 365
SIGNUP_POINTS = 100
REVIEW_POINTS = 100
QUIZ_POINTS = 25
POINTS_PER_DOLLAR = 5

CHUNK_CUSTOMERS = 2_000  # customers (≈ 10 × as many entries) per insert batch and RSS sample
PROGRESS_EVERY_SECONDS = 2.0
SQLITE_SEED_CACHE_KIB = 64 * 1024

OPERATIONS = ("balance_read", "earn", "redeem")
OPERATION_TITLES = {"balance_read": "balance read", "earn": "earn", "redeem": "redeem"}
TARGETS: Tuple[Tuple[str, str, str, float, str], ...] = (
    # (engine, metric key, description, limit, unit)
    ("sqlite", "balance_read.p99_ms", "balance read p99", 1.0, "ms"),
    ("postgresql", "balance_read.p99_ms", "balance read p99", 2.0, "ms"),
    ("postgresql", "redeem.p99_ms", "redeem p99", 10.0, "ms"),
    ("sqlite", "seed.seconds", "seeding", 180.0, "s"),
    ("postgresql", "seed.seconds", "seeding", 180.0, "s"),
    ("sqlite", "seed.rss_growth_mib", "RSS growth during the load (10% → end)", 32.0, "MiB"),
    ("postgresql", "seed.rss_growth_mib", "RSS growth during the load (10% → end)", 32.0, "MiB"),
)

CUSTOMER_COLUMNS = (
    "id", "email", "first_name", "last_name", "birthday", "points_balance", "created_at", "external_id",
    "last_activity_at", "tier_name", "tier_held_until",
)
ENTRY_COLUMNS = (
    "id", "customer_id", "kind", "points", "reason", "source", "source_ref", "idempotency_key", "created_at",
    "expires_at",
)
CODE_COLUMNS = (
    "id", "code", "customer_id", "reward_id", "title", "kind", "value", "product_sku", "currency", "points_spent",
    "min_order", "ledger_entry_id", "status", "issued_at", "expires_at", "used_at", "used_order_ref",
)
LOADED_TABLES = ("customers", "ledger_entries", "reward_codes")
KEPT_POSTGRES_INDEXES = ("ix_ledger_entries_customer_created",)

FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kenji", "Lena", "Mateo",
    "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wen", "Yara", "Zoe",
)
LAST_NAMES = (
    "Moreau", "Okafor", "Tan", "Patel", "Garcia", "Kim", "Novak", "Silva", "Brown", "Rossi", "Ivanova", "Haddad",
    "Nguyen", "Schmidt", "Kowalski", "Jensen", "Dubois", "Costa", "Sato", "Murphy",
)
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # bot/loyalty/rewards.py's, 5 bits per symbol
CODE_PAIRS = [a + b for a in CODE_ALPHABET for b in CODE_ALPHABET]  # 10 bits → 2 symbols
CODE_MULTIPLIER = 0x9E3779B97F4A7C15  # odd, so id × it mod 2^60 is a bijection: unique, random-looking


# ---------------------------------------------------------------------------------------------
# Data generation


@dataclass(frozen=True)
class Dialect:
    """How generated values are written for one engine (timestamps, NULL)."""

    name: str
    null: Optional[str]
    time_suffix: str  # after HH:MM:SS

    def stamps(self) -> Tuple[List[str], List[str]]:
        """Day strings ("YYYY-MM-DD ") from the history start, and time-of-day strings per second."""
        start = history_start()
        days = [(start + timedelta(days=index)).strftime("%Y-%m-%d ") for index in range(HISTORY_DAYS + 800)]
        times = [
            f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}{self.time_suffix}"
            for second in range(86400)
        ]
        return days, times


# SQLAlchemy stores SQLite datetimes as "YYYY-MM-DD HH:MM:SS.ffffff" (UTCDateTime: UTC, no zone);
# text comparisons in the services only work if seeded rows use exactly that form.
SQLITE = Dialect("sqlite", None, ".000000")
POSTGRESQL = Dialect("postgresql", "\\N", "+00")
DIALECTS = {"sqlite": SQLITE, "postgresql": POSTGRESQL}


def history_start() -> datetime:
    return HISTORY_END - timedelta(days=HISTORY_DAYS)


def day_shift(months: int) -> List[int]:
    """For each history day, the day `months` later (relativedelta, as the services compute it)."""
    start = history_start().date()
    return [((start + timedelta(days=index)) + relativedelta(months=months) - start).days
            for index in range(HISTORY_DAYS + 1)]


@dataclass(frozen=True)
class SeedReward:
    id: str
    title: str
    kind: str
    points: int
    value_cents: Optional[int]
    min_order_cents: Optional[int]
    product_sku: Optional[str]
    valid_months: int


def seed_rewards(program: Program) -> List[SeedReward]:
    def cents(amount: Optional[Decimal]) -> Optional[int]:
        return None if amount is None else int(amount * 100)

    rewards = [
        SeedReward(r.id, r.title, r.kind, r.points, cents(r.value), cents(r.min_order), r.product_sku, r.valid_months)
        for r in program.rewards
    ]
    return sorted(rewards, key=lambda reward: reward.points)


class Generator:
    """Customers, their ledger entries and reward codes, streamed one customer at a time.

    Each customer gets 1–(2·avg−1) entries (exactly `entries` in all): a signup bonus, then orders
    (5 points per dollar), text reviews, quizzes and redemptions of rewards they could afford,
    spread between signup and HISTORY_END. Redemptions get their reward code, as redeem() issues.
    Every value comes from random.Random(seed): the same arguments give the same rows.
    """

    def __init__(self, customers: int, entries: int, program: Program, dialect: Dialect, seed: int = SEED) -> None:
        if customers < 1 or entries < 0:
            raise ValueError("need at least one customer and no negative entry count")
        self.customers = customers
        self.entries = entries
        self.dialect = dialect
        self.seed = seed
        self.currency = program.currency
        self.rewards = seed_rewards(program)
        self.reward_points = [reward.points for reward in self.rewards]
        self.expiry_months = program.expiry_inactive_months
        self.reward_codes = 0  # how many codes were generated so far

    def __iter__(self) -> Iterator[Tuple[tuple, List[tuple], List[tuple]]]:
        """(customer row, entry rows, reward code rows) per customer, in id order."""
        rng = random.Random(self.seed)
        rnd = rng.random
        null = self.dialect.null
        days, times = self.dialect.stamps()
        expiry_day = day_shift(self.expiry_months)
        code_expiry_day = {months: day_shift(months) for months in {r.valid_months for r in self.rewards}}
        span = HISTORY_DAYS * 86400
        rewards, reward_points, currency = self.rewards, self.reward_points, self.currency
        cheapest = reward_points[0] if reward_points else None
        base, extra = divmod(self.entries, self.customers)
        birth_days = [d.strftime("%m-%d") for d in (date(2001, 1, 1) + timedelta(days=i) for i in range(365))]
        entry_id = 0
        code_id = 0
        order_no = 100_000
        paired = 0
        for customer_id in range(1, self.customers + 1):
            # Pairs of customers share 2·base entries: counts vary 1..2·base−1, the total stays exact.
            if base > 1 and customer_id & 1 and customer_id < self.customers:
                delta = int(rnd() * (2 * base - 1)) - (base - 1)
                count, paired = base + delta, base - delta
            elif base > 1 and not customer_id & 1:
                count = paired
            else:
                count = base
            if customer_id <= extra:
                count += 1
            joined = int(rnd() * (span - 7 * 86400))
            day, second = divmod(joined, 86400)
            joined_stamp = days[day] + times[second]
            rows: List[tuple] = []
            codes: List[tuple] = []
            balance = 0
            last_stamp = null
            if count:
                entry_id += 1
                rows.append((
                    entry_id, customer_id, "earn", SIGNUP_POINTS, "Welcome bonus for joining", "signup", null,
                    f"signup:{customer_id}", joined_stamp, days[expiry_day[day]] + times[second],
                ))
                balance = SIGNUP_POINTS
                last_stamp = joined_stamp
                step = (span - joined) // count
                for index in range(1, count):
                    at = joined + index * step + int(rnd() * step)
                    day, second = divmod(at, 86400)
                    stamp = days[day] + times[second]
                    last_stamp = stamp
                    entry_id += 1
                    pick = rnd()
                    if pick < 0.10 and cheapest is not None and balance >= cheapest:
                        affordable = bisect.bisect_right(reward_points, balance)
                        reward = rewards[int(pick * 10 * affordable)]
                        balance -= reward.points
                        code_id += 1
                        scrambled = (code_id * CODE_MULTIPLIER) & ((1 << 60) - 1)
                        code = "RW-{}{}-{}{}-{}{}".format(*(CODE_PAIRS[(scrambled >> shift) & 1023]
                                                            for shift in (50, 40, 30, 20, 10, 0)))
                        rows.append((
                            entry_id, customer_id, "redeem", -reward.points, f"Redeemed: {reward.title}", "redemption",
                            reward.id, f"{customer_id}:{scrambled:032x}", stamp, null,
                        ))
                        used_at = at + 86400 * (1 + int(pick * 1000) % 20)
                        if pick < 0.06 and used_at < span:  # 60 % of the codes were used at checkout
                            used_day, used_second = divmod(used_at, 86400)
                            status, used_stamp, used_ref = "used", days[used_day] + times[used_second], f"#{order_no + 1}"
                        else:
                            status, used_stamp, used_ref = "issued", null, null
                        codes.append((
                            code_id, code, customer_id, reward.id, reward.title, reward.kind,
                            null if reward.value_cents is None else reward.value_cents,
                            null if reward.product_sku is None else reward.product_sku, currency, reward.points,
                            null if reward.min_order_cents is None else reward.min_order_cents, entry_id, status,
                            stamp, days[code_expiry_day[reward.valid_months][day]] + times[second], used_stamp, used_ref,
                        ))
                    elif pick < 0.80:
                        order_no += 1
                        points = POINTS_PER_DOLLAR * (10 + int(rnd() * 190))
                        balance += points
                        rows.append((
                            entry_id, customer_id, "earn", points, f"Order #{order_no}", "order", str(order_no),
                            f"order:{order_no}", stamp, days[expiry_day[day]] + times[second],
                        ))
                    elif pick < 0.95:
                        balance += REVIEW_POINTS
                        rows.append((
                            entry_id, customer_id, "earn", REVIEW_POINTS, "Review (text)", "review_text", null,
                            f"review:r{entry_id}", stamp, days[expiry_day[day]] + times[second],
                        ))
                    else:
                        balance += QUIZ_POINTS
                        rows.append((
                            entry_id, customer_id, "earn", QUIZ_POINTS, "Completed the style quiz", "quiz_completion",
                            null, f"quiz:{customer_id}:style-{index}", stamp, days[expiry_day[day]] + times[second],
                        ))
            self.reward_codes = code_id
            first = FIRST_NAMES[int(rnd() * len(FIRST_NAMES))]
            last = LAST_NAMES[int(rnd() * len(LAST_NAMES))]
            birthday = f"{1950 + int(rnd() * 55)}-{birth_days[int(rnd() * 365)]}" if rnd() < 0.7 else null
            customer = (
                customer_id, f"customer{customer_id}@bench.example", first, last, birthday, balance, joined_stamp,
                str(6_100_000_000_000 + customer_id), last_stamp, null, null,
            )
            yield customer, rows, codes


class Chunk:
    """Up to `size` customers from a generator stream: entries are streamed, customers and codes kept.

    Iterating `entries()` pulls customers from the stream; their customer rows and reward codes
    collect in `customers` / `codes` (a chunk's worth), to be written after the entries.
    """

    def __init__(self, stream: Iterator[Tuple[tuple, List[tuple], List[tuple]]], size: int) -> None:
        self._stream = stream
        self._size = size
        self.customers: List[tuple] = []
        self.codes: List[tuple] = []
        self.entry_count = 0

    def entries(self) -> Iterator[tuple]:
        for customer, rows, codes in islice(self._stream, self._size):
            self.customers.append(customer)
            if codes:
                self.codes.extend(codes)
            self.entry_count += len(rows)
            yield from rows


# ---------------------------------------------------------------------------------------------
# Memory and progress


def peak_rss_kib() -> int:
    """Peak resident set size of this process so far (ru_maxrss, KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


class Progress:
    """Counts loaded rows, samples RSS after every chunk, prints a line on stderr now and then.

    RSS is sampled for this process and, when there is one, the generator process.
    """

    def __init__(self, engine: str, total_entries: int, generator_pid: Optional[int] = None) -> None:
        self.engine = engine
        self.total = max(total_entries, 1)
        self.generator_pid = generator_pid
        self.started = time.perf_counter()
        self.last_print = 0.0
        self.entries = 0
        self.rows = 0
        self.samples: List[Tuple[float, int, int]] = []
        self._sample(0.0)

    def _sample(self, fraction: float) -> None:
        child = process_kib("VmRSS", self.generator_pid) if self.generator_pid else 0
        self.samples.append((fraction, process_kib("VmRSS"), child))

    def advance(self, entries: int, rows: int) -> None:
        self.entries += entries
        self.rows += rows
        fraction = self.entries / self.total
        self._sample(fraction)
        now = time.perf_counter()
        if now - self.last_print >= PROGRESS_EVERY_SECONDS or self.entries >= self.total:
            self.last_print = now
            elapsed = now - self.started
            _, own, child = self.samples[-1]
            extra = f" + generator {mib(child):.0f} MiB" if self.generator_pid else ""
            log(
                f"{self.engine}: {fraction:6.1%}  {self.entries:,}/{self.total:,} entries  "
                f"{self.rows / elapsed if elapsed else 0:,.0f} rows/s  RSS {mib(own):.0f} MiB{extra}"
            )

    def _column(self, column: int) -> List[Tuple[float, int]]:
        """(fraction, KiB) samples of one process; 0 KiB means it had exited (the generator, at the end)."""
        return [(sample[0], sample[column]) for sample in self.samples if sample[column]] or [(0.0, 0)]

    @staticmethod
    def _at(samples: List[Tuple[float, int]], fraction: float) -> int:
        return next((kib for done, kib in samples if done >= fraction), samples[-1][1])

    def _series(self, column: int) -> Dict[str, float]:
        samples = self._column(column)
        return {
            "start": mib(samples[0][1]),
            "10%": mib(self._at(samples, 0.10)),
            "50%": mib(self._at(samples, 0.50)),
            "100%": mib(samples[-1][1]),
            "max": mib(max(kib for _, kib in samples)),
        }

    def _growth(self, column: int) -> int:
        """How far RSS rose above its value at 10 % during the rest of the load."""
        samples = self._column(column)
        base = self._at(samples, 0.10)
        return max([kib for done, kib in samples if done >= 0.10] or [base]) - base

    def summary(self) -> Dict[str, Any]:
        result: Dict[str, Any] = {"rss_mib": self._series(1)}
        growth = self._growth(1)
        if self.generator_pid:
            result["generator_rss_mib"] = self._series(2)
            growth = max(growth, self._growth(2))
        result["rss_growth_mib"] = mib(growth)
        return result


# ---------------------------------------------------------------------------------------------
# Seeding: SQLite


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def seed_sqlite(path: Path, customers: int, entries: int, program: Program,
                chunk_customers: int = CHUNK_CUSTOMERS) -> Dict[str, Any]:
    started = time.perf_counter()
    cpu_started = time.process_time()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    database = Database(sqlite_url(path))
    try:
        database.create_schema()
    finally:
        database.dispose()
    phases = {"schema": time.perf_counter() - started}

    connection = sqlite3.connect(str(path), isolation_level=None)
    try:
        # Bulk load like a restore: no rollback journal, no fsync; a crash here means a rerun.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE", "temp_store=MEMORY",
                       f"cache_size=-{SQLITE_SEED_CACHE_KIB}", "foreign_keys=OFF"):
            connection.execute(f"PRAGMA {pragma}")
        # The customers' secondary indexes get their keys in random order: built afterwards. The
        # ledger's keys arrive in order (ids, per-customer dates, per-source keys), so its index
        # stays; SQLite cannot drop the indexes behind UNIQUE constraints anyway.
        deferred = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = 'customers'"
        ).fetchall()
        for name, _ in deferred:
            connection.execute(f'DROP INDEX "{name}"')

        phase = time.perf_counter()
        insert_entry = _insert_sql("ledger_entries", ENTRY_COLUMNS)
        insert_customer = _insert_sql("customers", CUSTOMER_COLUMNS)
        insert_code = _insert_sql("reward_codes", CODE_COLUMNS)
        # The rows are generated in a second process (the other core) while this one inserts.
        with ChunkProducer(customers, entries, program, SQLITE, chunk_customers) as producer:
            progress = Progress("sqlite", entries, producer.pid)
            for rows, customer_rows, code_rows in producer:
                connection.execute("BEGIN")
                connection.executemany(insert_entry, rows)
                connection.executemany(insert_customer, customer_rows)
                connection.executemany(insert_code, code_rows)
                connection.execute("COMMIT")
                progress.advance(len(rows), len(rows) + len(customer_rows) + len(code_rows))
                del rows, customer_rows, code_rows
            reward_codes = producer.reward_codes
            generator_cpu = producer.cpu_seconds
        phases["load"] = time.perf_counter() - phase

        phase = time.perf_counter()
        for _, sql in deferred:
            connection.execute(sql)
        phases["indexes"] = time.perf_counter() - phase
        phase = time.perf_counter()
        connection.execute("PRAGMA analysis_limit=1000")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")  # what the project's connections use
        phases["analyze"] = time.perf_counter() - phase
    finally:
        connection.close()
    # The load skipped fsync: flush the file now, as part of the seed (and so that the kernel's
    # write-back does not compete with the measured commits).
    phase = time.perf_counter()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    phases["flush"] = time.perf_counter() - phase
    cpu = {"loader": time.process_time() - cpu_started, "generator": generator_cpu}
    result = _seed_result(started, phases, progress, customers, entries, reward_codes, cpu)
    # The largest child this process has waited for: the generator.
    result["generator_peak_rss_mib"] = mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return result


class ChunkProducer:
    """Generates chunks in a child process and hands them over (marshal) through a pipe.

    The pipe holds about one chunk, so memory stays flat on both sides. Iterating yields
    (entry rows, customer rows, reward code rows) per chunk; afterwards `reward_codes` is the
    number of codes generated and `cpu_seconds` the child's CPU time.
    """

    def __init__(self, customers: int, entries: int, program: Program, dialect: Dialect,
                 chunk_customers: int) -> None:
        self._arguments = (customers, entries, program, dialect, chunk_customers)
        self._process: Optional[multiprocessing.process.BaseProcess] = None
        self._receiver = None
        self.pid = 0
        self.reward_codes = 0
        self.cpu_seconds = 0.0

    def __enter__(self) -> "ChunkProducer":
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_produce, args=(sender, *self._arguments), daemon=True,
                                        name="bench-generator")
        self._process.start()
        sender.close()
        self.pid = self._process.pid or 0
        return self

    def __iter__(self) -> Iterator[Tuple[List[tuple], List[tuple], List[tuple]]]:
        assert self._receiver is not None
        while True:
            try:
                message = marshal.loads(self._receiver.recv_bytes())
            except EOFError:
                raise RuntimeError("the generator process stopped without finishing") from None
            if message[0] == "chunk":
                yield message[1], message[2], message[3]
            elif message[0] == "done":
                self.reward_codes, self.cpu_seconds = message[1], message[2]
                return
            else:
                raise RuntimeError(f"the generator process failed: {message[1]}")

    def __exit__(self, *exc_info: object) -> None:
        if self._receiver is not None:
            self._receiver.close()
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)


def _produce(sender: Any, customers: int, entries: int, program: Program, dialect: Dialect,
             chunk_customers: int) -> None:
    """The child side of ChunkProducer."""
    try:
        generator = Generator(customers, entries, program, dialect)
        stream = iter(generator)
        for _ in range(0, customers, chunk_customers):
            chunk = Chunk(stream, chunk_customers)
            rows = list(chunk.entries())
            sender.send_bytes(marshal.dumps(("chunk", rows, chunk.customers, chunk.codes)))
            del rows, chunk
        sender.send_bytes(marshal.dumps(("done", generator.reward_codes, time.process_time())))
    except BaseException as error:  # reported to the parent, which raises it
        try:
            sender.send_bytes(marshal.dumps(("error", f"{type(error).__name__}: {error}")))
        except OSError:
            pass
    finally:
        sender.close()


def _seed_result(started: float, phases: Mapping[str, float], progress: Progress, customers: int, entries: int,
                 codes: int, cpu: Mapping[str, float]) -> Dict[str, Any]:
    seconds = time.perf_counter() - started
    rows = customers + entries + codes
    result: Dict[str, Any] = {
        "seconds": round(seconds, 1),
        "phases_seconds": {name: round(value, 1) for name, value in phases.items()},
        # Process CPU time: busy cores, whatever else the machine was running.
        "cpu_seconds": {name: round(value, 1) for name, value in cpu.items()},
        "rows": {"customers": customers, "ledger_entries": entries, "reward_codes": codes},
        "rows_per_second": round(rows / phases["load"]) if phases.get("load") else None,
    }
    result.update(progress.summary())
    result["peak_rss_mib"] = mib(peak_rss_kib())
    return result


# ---------------------------------------------------------------------------------------------
# Seeding: PostgreSQL


def postgres_schema_url(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def ensure_postgres(url: str) -> None:
    """Start the local cluster if nothing listens (as the tests do); a remote server must be up."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    if _listening(host, port) or host not in ("127.0.0.1", "localhost"):
        return
    log(f"PostgreSQL is not listening on {host}:{port}; starting the local cluster")
    subprocess.run(POSTGRES_START, shell=True, capture_output=True, timeout=60)
    for _ in range(30):
        if _listening(host, port):
            return
        time.sleep(0.5)
    raise SystemExit(f"[bench] PostgreSQL is not reachable on {host}:{port} (tried: {POSTGRES_START})")


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def _connect_postgres(url: str, schema: Optional[str] = None) -> Any:
    """A plain psycopg2 connection (COPY and DDL), with `schema` first on the search path."""
    return psycopg2.connect(url, options=f"-csearch_path={schema}") if schema else psycopg2.connect(url)


class LineReader(io.TextIOBase):
    """A read-only text file over a generator of strings, for psycopg2's copy_expert."""

    def __init__(self, pieces: Iterator[str], target: int = 1 << 18) -> None:
        self._pieces = pieces
        self._target = target

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> str:  # type: ignore[override]
        want = self._target if size is None or size < 0 else max(size, 1)
        parts: List[str] = []
        length = 0
        for piece in self._pieces:
            parts.append(piece)
            length += len(piece)
            if length >= want:
                break
        return "".join(parts)


def _copy_lines(rows: Iterable[tuple], width: int) -> Iterator[str]:
    template = "\t".join(["%s"] * width) + "\n"
    for row in rows:
        yield template % row


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FREEZE)"
    cursor.copy_expert(sql, LineReader(_copy_lines(rows, len(columns))), size=1 << 18)


def _process_cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time of a local process (the PostgreSQL backend serving the load)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a server on another machine
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_store_exists(url: str, schema: str) -> bool:
    connection = _connect_postgres(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", (f'"{schema}".customers',))
            return cursor.fetchone()[0] is not None
    finally:
        connection.close()


def _secondary_definitions(cursor: Any) -> Tuple[List[Tuple[str, str, str]], List[Tuple[str, str]]]:
    """The loaded tables' unique/foreign-key constraints (table, name, definition) and other indexes."""
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
        FROM pg_constraint c
        WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('u', 'f')
        ORDER BY c.contype, c.conname
        """,
        (list(LOADED_TABLES),),
    )
    constraints = [(table, name, definition) for table, name, definition, _ in cursor.fetchall()]
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1
        """,
        (list(LOADED_TABLES),),
    )
    return constraints, [(name, definition) for name, definition in cursor.fetchall()]


def seed_postgres(url: str, schema: str, customers: int, entries: int, program: Program,
                  chunk_customers: int = CHUNK_CUSTOMERS) -> Dict[str, Any]:
    ensure_postgres(url)
    started = time.perf_counter()
    cpu_started = time.process_time()
    admin = _connect_postgres(url)
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cursor.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        admin.close()
    database = Database(postgres_schema_url(url, schema))
    try:
        database.create_schema()
    finally:
        database.dispose()
    phases = {"schema": time.perf_counter() - started}

    connection = _connect_postgres(url, schema)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET maintenance_work_mem = '1GB'")
            # Unique and foreign-key constraints and secondary indexes go, to be rebuilt after the
            # load, except the ledger's (customer_id, created_at) index: its keys arrive in order,
            # so the server keeps it up while the client generates, cheaper than a 10 M-row sort.
            constraints, indexes = _secondary_definitions(cursor)
            indexes = [(name, definition) for name, definition in indexes if name not in KEPT_POSTGRES_INDEXES]
            # Foreign keys go first: `constraints` lists them before the unique ones.
            for table, name, _ in constraints:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
            connection.commit()

            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
            server_started = _process_cpu_seconds(backend)
            phase = time.perf_counter()
            # One transaction that starts with TRUNCATE, so COPY can FREEZE the rows: no hint-bit
            # rewrite or anti-wraparound vacuum of 10 M fresh rows later.
            cursor.execute(f"TRUNCATE {', '.join(LOADED_TABLES)} CASCADE")
            generator = Generator(customers, entries, program, POSTGRESQL)
            stream = iter(generator)
            progress = Progress("postgresql", entries)
            for _ in range(0, customers, chunk_customers):
                chunk = Chunk(stream, chunk_customers)
                _copy(cursor, "ledger_entries", ENTRY_COLUMNS, chunk.entries())
                _copy(cursor, "customers", CUSTOMER_COLUMNS, chunk.customers)
                if chunk.codes:
                    _copy(cursor, "reward_codes", CODE_COLUMNS, chunk.codes)
                progress.advance(chunk.entry_count, chunk.entry_count + len(chunk.customers) + len(chunk.codes))
            connection.commit()
            phases["load"] = time.perf_counter() - phase
            server_now = _process_cpu_seconds(backend)
            server_cpu = None if server_now is None or server_started is None else server_now - server_started

            phase = time.perf_counter()
            for _, definition in indexes:
                cursor.execute(definition)
            for table, name, definition in reversed(constraints):  # unique ones before the foreign keys
                cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            for table in LOADED_TABLES:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                )
            connection.commit()
            phases["indexes"] = time.perf_counter() - phase

            phase = time.perf_counter()
            connection.autocommit = True
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(LOADED_TABLES)}")
            phases["analyze"] = time.perf_counter() - phase
            # Write the loaded pages out now, as part of the seed, rather than in a spread-out
            # checkpoint that would compete with the measured commits for the disk.
            phase = time.perf_counter()
            try:
                cursor.execute("CHECKPOINT")
            except psycopg2.Error as error:  # needs superuser or pg_checkpoint
                log(f"postgresql: no CHECKPOINT after the load ({str(error).strip()})")
            phases["flush"] = time.perf_counter() - phase
    finally:
        connection.close()
    cpu = {"loader": time.process_time() - cpu_started}
    if server_cpu is not None:
        cpu["server_load"] = server_cpu
    return _seed_result(started, phases, progress, customers, entries, generator.reward_codes, cpu)


# ---------------------------------------------------------------------------------------------
# Measurement


@dataclass
class OperationStats:
    name: str
    latencies_ms: List[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    errors: int = 0
    error_samples: List[str] = field(default_factory=list)

    def time(self, action: Callable[[], object]) -> None:
        """Run one operation; its latency is recorded, or the error it raised."""
        started = time.perf_counter()
        try:
            action()
        except Exception as error:  # a failed call is counted and reported, not timed
            self.errors += 1
            if len(self.error_samples) < 3:
                self.error_samples.append(f"{type(error).__name__}: {error}")
            return
        self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def summary(self) -> Dict[str, Any]:
        values = self.latencies_ms
        return {
            **latency_summary(values, quantiles=(0.50, 0.99)),
            "errors": self.errors,
            "error_samples": self.error_samples,
            "ops_per_second": round(len(values) / self.wall_seconds, 1) if self.wall_seconds else None,
        }


def _customer_range(database: Database) -> int:
    with database.session() as session:
        highest = session.execute(select(func.max(Customer.id))).scalar()
    if not highest:
        raise SystemExit("[bench] the bench store has no customers: run without --skip-seed first")
    return int(highest)


def _redeem_plan(database: Database, program: Program, rng: random.Random, customers: int,
                 count: int) -> List[Tuple[int, str]]:
    """`count` distinct random customers who can afford a reward, each with one they can afford."""
    cheapest = min(reward.points for reward in program.rewards)
    plan: List[Tuple[int, str]] = []
    seen = set()
    attempts = 0
    while len(plan) < count:
        attempts += 1
        if attempts > 1000:
            raise SystemExit(f"[bench] found only {len(plan)} of {count} customers with {cheapest}+ points")
        batch = []
        for _ in range(500):
            cid = rng.randint(1, customers)
            if cid not in seen:
                seen.add(cid)
                batch.append(cid)
        with database.session() as session:
            balances = dict(session.execute(
                select(Customer.id, Customer.points_balance).where(Customer.id.in_(batch))
            ).all())
        for cid in batch:
            points = balances.get(cid, 0)
            affordable = [reward for reward in program.rewards if reward.points <= points]
            if affordable:
                plan.append((cid, rng.choice(affordable).id))
                if len(plan) == count:
                    break
    return plan


def measure(database: Database, program: Program, counts: Mapping[str, int], warm_up: Mapping[str, int], engine: str,
            seed: int = SEED + 1) -> Dict[str, Dict[str, Any]]:
    """Run each operation through the real services on random customers; warm-up calls are not recorded."""
    rng = random.Random(seed)
    customers = _customer_range(database)
    run = uuid.uuid4().hex[:10]

    def read(customer_id: int, _reward_id: str, _key: str) -> None:
        with database.session() as session:
            balance(session, customer_id)

    def earn(customer_id: int, _reward_id: str, key: str) -> None:
        credit = credit_for(program, customer_id, "review_text", f"bench-{run}-{key}", HISTORY_END)  # a fresh key
        with database.session(write=True) as session:
            award(session, program, customer_id, credit)

    def spend(customer_id: int, reward_id: str, _key: str) -> None:
        with database.session(write=True) as session:
            redeem(session, program, customer_id, reward_id)

    operations: Dict[str, Callable[[int, str, str], None]] = {"balance_read": read, "earn": earn, "redeem": spend}
    results: Dict[str, Dict[str, Any]] = {}
    for phase, sizes in (("warm-up", warm_up), ("measure", counts)):
        log(f"{engine}: {phase}: {sizes['balance_read']:,} balance reads, {sizes['earn']:,} earns, "
            f"{sizes['redeem']:,} redeems")
        for name in OPERATIONS:
            if name == "redeem":
                plan = _redeem_plan(database, program, rng, customers, sizes[name])
            else:
                plan = [(rng.randint(1, customers), "") for _ in range(sizes[name])]
            stats = OperationStats(name)
            operation = operations[name]
            started = time.perf_counter()
            for number, (customer_id, reward_id) in enumerate(plan):
                stats.time(lambda: operation(customer_id, reward_id, f"{phase}-{number}"))
            stats.wall_seconds = time.perf_counter() - started
            if stats.errors:
                log(f"{engine}: {phase}: {stats.errors} {name} calls failed, e.g. {stats.error_samples[0]}")
            if phase == "measure":
                results[name] = stats.summary()
    return results


def verify(database: Database) -> Dict[str, Any]:
    started = time.perf_counter()
    with database.session() as session:
        mismatches = verify_balances(session)
    return {"seconds": round(time.perf_counter() - started, 1), "mismatches": len(mismatches)}


def store_counts(database: Database) -> Dict[str, int]:
    with database.session() as session:
        return {
            "customers": int(session.execute(select(func.count()).select_from(Customer)).scalar() or 0),
            "ledger_entries": int(session.execute(select(func.count()).select_from(LedgerEntry)).scalar() or 0),
            "reward_codes": int(session.execute(select(func.count()).select_from(RewardCode)).scalar() or 0),
        }


# ---------------------------------------------------------------------------------------------
# One engine


@dataclass
class Config:
    customers: int = DEFAULT_CUSTOMERS
    entries: int = DEFAULT_ENTRIES
    engines: Sequence[str] = ENGINES
    skip_seed: bool = False
    verify: bool = True
    counts: Mapping[str, int] = field(default_factory=lambda: {"balance_read": 5000, "earn": 2000, "redeem": 2000})
    warm_up: Mapping[str, int] = field(default_factory=lambda: {"balance_read": 500, "earn": 100, "redeem": 100})
    sqlite_path: Path = SQLITE_PATH
    postgres_url: str = POSTGRES_URL
    postgres_schema: str = POSTGRES_SCHEMA
    chunk_customers: int = CHUNK_CUSTOMERS


def engine_url(engine: str, config: Config) -> str:
    if engine == "sqlite":
        return sqlite_url(config.sqlite_path)
    return postgres_schema_url(config.postgres_url, config.postgres_schema)


def bench_engine(engine: str, config: Config, program: Program) -> Dict[str, Any]:
    result: Dict[str, Any] = {"engine": engine}
    # The 1-minute load average at each step: on a shared machine, other work shows up here.
    load: Dict[str, float] = {"start": round(os.getloadavg()[0], 2)}
    result["load_average"] = load
    if engine == "postgresql":
        ensure_postgres(config.postgres_url)
    if config.skip_seed:
        if engine == "sqlite" and not config.sqlite_path.exists():
            raise SystemExit(f"[bench] {config.sqlite_path} does not exist: run without --skip-seed first")
        if engine == "postgresql" and not _postgres_store_exists(config.postgres_url, config.postgres_schema):
            raise SystemExit(f"[bench] schema {config.postgres_schema} has no store: run without --skip-seed first")
        result["seed"] = None
    else:
        log(f"{engine}: seeding {config.customers:,} customers, {config.entries:,} ledger entries")
        if engine == "sqlite":
            config.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            seed = seed_sqlite(config.sqlite_path, config.customers, config.entries, program, config.chunk_customers)
        else:
            seed = seed_postgres(config.postgres_url, config.postgres_schema, config.customers, config.entries,
                                 program, config.chunk_customers)
        log(f"{engine}: seeded in {seed['seconds']} s {seed['phases_seconds']}")
        result["seed"] = seed
    database = Database(engine_url(engine, config))
    try:
        if engine == "postgresql":
            with database.session() as session:
                result["server_version"] = session.execute(text("SHOW server_version")).scalar()
        result["rows"] = store_counts(database)
        if config.verify:
            log(f"{engine}: verifying every balance against its ledger")
            result["verify"] = verify(database)
            log(f"{engine}: verify: {result['verify']}")
        load["measure_start"] = round(os.getloadavg()[0], 2)
        result["operations"] = measure(database, program, config.counts, config.warm_up, engine)
        load["end"] = round(os.getloadavg()[0], 2)
    finally:
        database.dispose()
    result["peak_rss_mib"] = mib(peak_rss_kib())
    return result


# ---------------------------------------------------------------------------------------------
# Report


def metric(result: Mapping[str, Any], key: str) -> Optional[float]:
    """A dotted key into one engine's result: "seed.seconds", "redeem.p99_ms"."""
    head, _, tail = key.partition(".")
    container = result.get("seed") if head == "seed" else (result.get("operations") or {}).get(head)
    if not isinstance(container, Mapping):
        return None
    value = container.get(tail)
    return float(value) if isinstance(value, (int, float)) else None


def evaluate_targets(results: Mapping[str, Mapping[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for engine, key, description, limit, unit in TARGETS:
        if engine not in results:
            continue
        value = metric(results[engine], key)
        rows.append(target(f"{description} ≤ {limit:g} {unit}", value, limit, unit, engine=engine, metric=key))
    return rows


def _rss_text(series: Optional[Mapping[str, float]]) -> str:
    if not series:
        return "-"
    return "/".join(formatted(series.get(key), 0) for key in ("start", "10%", "50%", "100%"))


def format_report(report: Mapping[str, Any]) -> str:
    machine, results, dataset = report["machine"], report["results"], report["dataset"]
    lines = ["", "Machine"]
    lines.append(f"  nproc {machine['nproc']}, CPU {machine['cpu_model']}, memory {machine['memory_gib']} GiB")
    lines.append(
        f"  Python {machine['python']}, SQLAlchemy {machine['sqlalchemy']}, SQLite {machine['sqlite']}, "
        f"psycopg2 {machine['psycopg2']}, PostgreSQL {machine.get('postgresql') or '-'}"
    )
    lines.append(f"\nData: seed {dataset['seed']}, {dataset['customers']:,} customers, {dataset['entries']:,} ledger entries")

    lines.append("\nSeeding (seconds; RSS in MiB at start/10%/50%/100% of the load)")
    lines.append(f"  {'engine':<11} {'total':>6} {'schema':>6} {'load':>6} {'index':>6} {'analyze':>7} {'flush':>6} {'rows/s':>8} "
                 f"{'RSS':>15} {'generator RSS':>14} {'peak RSS':>8}")
    for engine, result in results.items():
        seed = result.get("seed") or {}
        if not seed:
            lines.append(f"  {engine:<11} (not seeded in this run)")
            continue
        phases, cpu = seed["phases_seconds"], seed.get("cpu_seconds") or {}
        lines.append(
            f"  {engine:<11} {formatted(seed['seconds'], 1):>6} {formatted(phases.get('schema'), 1):>6} "
            f"{formatted(phases.get('load'), 1):>6} {formatted(phases.get('indexes'), 1):>6} {formatted(phases.get('analyze'), 1):>7} "
            f"{formatted(phases.get('flush'), 1):>6} "
            f"{formatted(seed.get('rows_per_second'), 0):>8} {_rss_text(seed.get('rss_mib')):>15} "
            f"{_rss_text(seed.get('generator_rss_mib')):>14} {formatted(seed.get('peak_rss_mib'), 0):>8}"
            + ("  (carried over from the last seeding run)" if seed.get("carried_over") else "")
        )
        if cpu:
            lines.append(f"  {'':<11} CPU seconds: " + ", ".join(f"{name} {value:g}" for name, value in cpu.items()))

    lines.append("\nStore and consistency (verify_balances: customers whose balance is not the sum of their ledger)")
    for engine, result in results.items():
        rows, check = result.get("rows") or {}, result.get("verify") or {}
        verified = f"{check['mismatches']} mismatches in {check['seconds']} s" if check else "not checked"
        lines.append(
            f"  {engine:<11} {rows.get('customers', 0):>10,} customers {rows.get('ledger_entries', 0):>11,} entries "
            f"{rows.get('reward_codes', 0):>9,} reward codes   {verified}"
        )

    lines.append("\nOperations (one session each, after a warm-up)")
    lines.append(f"  {'engine':<11} {'operation':<13} {'count':>6} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} "
                 f"{'max ms':>8} {'ops/s':>8}")
    for engine, result in results.items():
        for name, stats in (result.get("operations") or {}).items():
            lines.append(
                f"  {engine:<11} {OPERATION_TITLES[name]:<13} {stats['count']:>6,} {stats['errors']:>6,} "
                f"{formatted(stats['p50_ms'], 3):>8} "
                f"{formatted(stats['p99_ms'], 3):>8} {formatted(stats['max_ms'], 2):>8} {formatted(stats['ops_per_second'], 0):>8}"
            )
    loads = []
    for engine, result in results.items():
        load = result.get("load_average") or {}
        if load:
            loads.append(f"{engine} " + " → ".join(f"{value:g}" for value in load.values()))
    if loads:
        lines.append("  1-min load average (start → measuring → end): " + "; ".join(loads))

    lines.append("\nTargets")
    for row in report["targets"]:
        value = "-" if row["value"] is None else f"{row['value']:,.3g} {row['unit']}"
        lines.append(f"  {row['engine']:<11} {row['target']:<46} {value:>12}  {row['result']}")
    lines.append(f"\ntotal time {report['total_seconds']:.0f} s")
    return "\n".join(lines)


def build_report(config: Config, machine: Dict[str, Any], results: Mapping[str, Mapping[str, Any]],
                 total_seconds: float) -> Dict[str, Any]:
    if "postgresql" in results:
        machine["postgresql"] = results["postgresql"].get("server_version")
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "dataset": {"seed": SEED, "customers": config.customers, "entries": config.entries},
        "results": dict(results),
        "targets": evaluate_targets(results),
        "total_seconds": round(total_seconds, 1),
    }


def carry_over_seed(previous_path: Path, config: Config, results: Dict[str, Dict[str, Any]]) -> None:
    """With --skip-seed, keep the last seed figures of the same data (marked as carried over)."""
    try:
        previous = json.loads(previous_path.read_text())
    except (OSError, ValueError):
        return
    dataset = previous.get("dataset") or {}
    if (dataset.get("customers"), dataset.get("entries")) != (config.customers, config.entries):
        return
    for engine, result in results.items():
        earlier = ((previous.get("results") or {}).get(engine) or {}).get("seed")
        if result.get("seed") is None and earlier:
            result["seed"] = dict(earlier, carried_over=True)


# ---------------------------------------------------------------------------------------------
# Main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loyalty",
        description="Seed a large loyalty store (seeded RNG) on SQLite and PostgreSQL and measure balance "
        "reads, earns and redeems through the real services.",
    )
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, metavar="N",
                        help=f"customers to generate (default: {DEFAULT_CUSTOMERS:,})")
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES, metavar="N",
                        help=f"ledger entries to generate (default: {DEFAULT_ENTRIES:,})")
    parser.add_argument("--engines", default=",".join(ENGINES), metavar="LIST",
                        help="comma-separated: sqlite, postgresql (default: both)")
    parser.add_argument("--skip-seed", action="store_true",
                        help="reuse the data of the previous run (its seed figures are carried over)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the full balance = sum of ledger check after seeding")
    parser.add_argument("--reads", type=int, default=5000, metavar="N", help="balance reads measured (default: 5000)")
    parser.add_argument("--earns", type=int, default=2000, metavar="N", help="earns measured (default: 2000)")
    parser.add_argument("--redeems", type=int, default=2000, metavar="N", help="redeems measured (default: 2000)")
    parser.add_argument("--sqlite-path", type=Path, default=SQLITE_PATH, metavar="PATH",
                        help=f"SQLite file (default: {SQLITE_PATH.relative_to(PROJECT_ROOT)}; deleted when seeding)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, metavar="URL",
                        help="PostgreSQL database (default: TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--postgres-schema", default=POSTGRES_SCHEMA, metavar="NAME",
                        help=f"schema to (re)create in it (default: {POSTGRES_SCHEMA}; dropped when seeding)")
    parser.add_argument("--json", type=Path, default=JSON_PATH, metavar="PATH",
                        help=f"where to write the results (default: {JSON_PATH.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is missed (it always does when an operation failed)")
    return parser


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config:
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = [name for name in engines if name not in ENGINES]
    if unknown or not engines:
        parser.error(f"--engines: expected a comma-separated list of {', '.join(ENGINES)}")
    if args.customers < 1 or args.entries < 0:
        parser.error("--customers must be at least 1 and --entries at least 0")
    if min(args.reads, args.earns, args.redeems) < 1:
        parser.error("--reads, --earns and --redeems must be at least 1")
    if not args.postgres_schema.isidentifier():
        parser.error("--postgres-schema must be a plain identifier")
    warm = {"balance_read": min(500, args.reads), "earn": min(100, args.earns), "redeem": min(100, args.redeems)}
    return Config(
        customers=args.customers, entries=args.entries, engines=list(dict.fromkeys(engines)),
        skip_seed=args.skip_seed, verify=args.verify,
        counts={"balance_read": args.reads, "earn": args.earns, "redeem": args.redeems}, warm_up=warm,
        sqlite_path=args.sqlite_path.resolve(), postgres_url=args.postgres_url, postgres_schema=args.postgres_schema,
    )


def run(config: Config, json_path: Optional[Path] = JSON_PATH) -> Dict[str, Any]:
    started = time.perf_counter()
    program = load_program(PROGRAM_FILE)
    machine = describe_machine(sqlalchemy=sqlalchemy.__version__, sqlite=sqlite3.sqlite_version,
                               psycopg2=psycopg2.__version__.split()[0], postgresql=None)
    results: Dict[str, Dict[str, Any]] = {}
    for engine in config.engines:
        results[engine] = bench_engine(engine, config, program)
    if config.skip_seed and json_path is not None:
        carry_over_seed(json_path, config, results)
    report = build_report(config, machine, results, time.perf_counter() - started)
    write_json(json_path, report)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from(args, parser)
    report = run(config, args.json)
    failed = sum(stats["errors"] for result in report["results"].values()
                 for stats in (result.get("operations") or {}).values())
    return finish(report, format_report(report), args.json, args.check, failed)


if __name__ == "__main__":
    raise SystemExit(main())
