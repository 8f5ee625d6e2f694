"""Chat latency and throughput: Rapport against a stock `rasa init` bot with the same pipeline.

`make bench-chat` (python -m bench.chat) starts its own servers on non-default ports, so a
`make run` can keep running:
  rapport  action server + Rasa server on models/rapport.tar.gz, with a fresh temporary data dir
           (own SQLite store and tracker store), seeded with the demo shop
  stock    the `rasa init` moodbot under .cache/bench/stock, trained with our config.yml,
           in-memory tracker store, no action server
  cluster  the scaled-out layout (bot/cluster/runner.py): 2 Rasa replicas and 2 action servers behind
           HAProxy, PostgreSQL (database rapport_bench_cluster, made afresh) and a redis-server of its own
For each concurrency level it plays a fixed number of scripted multi-turn conversations over the
REST channel, one target at a time, and prints turns, errors, p50/p95/p99 latency and messages
per second, then the rapport/stock ratios.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import aiohttp

from bench.harness import latency_summary, log, machine as describe_machine, percentile, write_json as write_json_file
from bot.processes import ManagedProcess, ProcessFailed, stop_all
from bot.settings import PROJECT_ROOT

CACHE_DIR = PROJECT_ROOT / ".cache" / "bench"
STOCK_DIR = CACHE_DIR / "stock"
LOG_DIR = CACHE_DIR / "logs"
RAPPORT_MODEL = PROJECT_ROOT / "models" / "rapport.tar.gz"
STOCK_MODEL_NAME = "stock"
STOCK_TRAINING_INPUTS = ("config.yml", "domain.yml", "data")

READY_TIMEOUT_SECONDS = 300
TURN_TIMEOUT_SECONDS = 120
PROGRESS_EVERY_SECONDS = 5.0
MAX_ERROR_SAMPLES = 5

# Environment variables that would point our servers at shared stores (or demand a token).
SHARED_STORE_VARIABLES = ("DATABASE_URL", "TRACKER_DATABASE_URL", "REDIS_URL", "REST_CHANNEL_TOKEN")
DEMO_EMAILS = ("alice.moreau@example.com", "bob.okafor@example.com", "chloe.tan@example.com", "dev.patel@example.com")

Script = Sequence[str]

RAPPORT_SCRIPTS: Sequence[Script] = (
    ("hi", "how many points do I have?", "what tier am I in?", "how do I earn more points", "thanks!", "bye"),
    ("hey", "pts?", "am i gold yet", "how can i get more points", "thank you", "goodbye"),
    ("hello there", "hw many pts do i hav", "whats my vip status", "ways to earn pts?", "cheers", "bye bye"),
)
STOCK_SCRIPTS: Sequence[Script] = (
    ("hello", "I'm feeling sad", "yes it helped", "bye"),
    ("hey", "great", "goodbye"),
    ("hi", "i am unhappy", "no", "goodbye"),
)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class LevelStats:
    """What one concurrency level of one target measured."""

    target: str
    concurrency: int
    conversations: int
    turns: int = 0
    errors: int = 0
    wall_seconds: float = 0.0
    latencies_ms: List[float] = field(default_factory=list)
    error_samples: List[str] = field(default_factory=list)

    def record_error(self, description: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(description)

    @property
    def messages_per_second(self) -> float:
        return self.turns / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, q: float) -> Optional[float]:
        return percentile(self.latencies_ms, q)

    def summary(self) -> Dict[str, object]:
        latency = latency_summary(self.latencies_ms, digits=1)
        del latency["count"]
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "conversations": self.conversations,
            "turns": self.turns,
            "errors": self.errors,
            **latency,
            "wall_seconds": round(self.wall_seconds, 3),
            "messages_per_second": round(self.messages_per_second, 2),
            "error_samples": self.error_samples,
        }


# ---------------------------------------------------------------------------------------------
# Processes


def base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SHARED_STORE_VARIABLES}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def rapport_env(data_dir: Path, rasa_port: int, actions_port: int) -> Dict[str, str]:
    env = base_env()
    env["RAPPORT_DATA_DIR"] = str(data_dir)
    env["RASA_PORT"] = str(rasa_port)
    env["ACTIONS_PORT"] = str(actions_port)
    env["BIND_HOST"] = "127.0.0.1"
    return env


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"[bench] port {port} is already in use; pick others with --*-port")


def start_server(name: str, command: List[str], cwd: Path, env: Mapping[str, str]) -> ManagedProcess:
    server = ManagedProcess(name, command, cwd, env, log_path=LOG_DIR / f"{name}.log")
    log(f"starting {name} (log: {_relative(server.log_path)})")
    return server.start()


@contextmanager
def running() -> Iterator[List[ManagedProcess]]:
    """A list to start servers into; every one is stopped on the way out, whatever happens."""
    servers: List[ManagedProcess] = []
    try:
        yield servers
    except BaseException as error:
        # A ProcessFailed already shows the log tail of the server it is about.
        explained = error.process if isinstance(error, ProcessFailed) else None
        for server in servers:
            if server is not explained:
                print(f"--- last lines of {_relative(server.log_path)} ---", file=sys.stderr)
                print(server.log_tail(20), file=sys.stderr, flush=True)
        raise
    finally:
        stop_all(servers)


def _relative(path: Optional[Path]) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path is not None else "-"


def run_checked(command: List[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    result = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"[bench] {what} failed (exit code {result.returncode})")


# ---------------------------------------------------------------------------------------------
# Our stack


def seed_store(env: Mapping[str, str]) -> None:
    run_checked([sys.executable, "-m", "bot", "seed", "--demo"], PROJECT_ROOT, env, "seeding the demo shop")


def link_senders(database_url: str, senders: Sequence[str]) -> None:
    """Link each sender on the REST channel to a demo customer, round robin."""
    from sqlalchemy.orm import Session

    from bot.db import Database, transaction
    from bot.identity import customer_by_email, link_identity

    def link(session: Session) -> None:
        ids = [customer_by_email(session, email).id for email in DEMO_EMAILS]
        for index, sender in enumerate(senders):
            link_identity(session, ids[index % len(ids)], "rest", sender)

    database = Database(database_url)
    try:
        transaction(link, write=True, database=database)
    finally:
        database.dispose()
    log(f"linked {len(senders)} REST senders to the {len(DEMO_EMAILS)} demo customers")


@contextmanager
def rapport_stack(rasa_port: int, actions_port: int, senders: Sequence[str]) -> Iterator[str]:
    """Our action server and Rasa server on a fresh data dir; yields the REST webhook URL."""
    from bot.runner import action_server_command, rasa_server_command, server_env
    from bot.settings import Settings

    for port in (rasa_port, actions_port):
        ensure_port_free(port)
    data_dir = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    try:
        env = rapport_env(data_dir, rasa_port, actions_port)
        settings = Settings.from_env(env)
        seed_store(env)
        link_senders(settings.database_url, senders)
        env = server_env(env, settings)
        with running() as servers:
            servers.append(start_server("rapport-actions", action_server_command(settings), PROJECT_ROOT, env))
            servers.append(start_server("rapport-rasa", rasa_server_command(settings, RAPPORT_MODEL), PROJECT_ROOT, env))
            actions, rasa = servers
            started = time.monotonic()
            actions.wait_until_ready(f"http://127.0.0.1:{actions_port}/health", READY_TIMEOUT_SECONDS, also_watch=servers)
            rasa.wait_until_ready(f"http://127.0.0.1:{rasa_port}/", READY_TIMEOUT_SECONDS, also_watch=servers)
            log(f"rapport is up after {time.monotonic() - started:.0f} s")
            yield webhook_url(rasa_port)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


BENCH_CLUSTER_DATABASE = "rapport_bench_cluster"


def fresh_cluster_database() -> str:
    """The benchmark's own PostgreSQL database, dropped and made again (never anyone else's)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{BENCH_CLUSTER_DATABASE}'")
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{BENCH_CLUSTER_DATABASE}"')
        connection.exec_driver_sql(f'CREATE DATABASE "{BENCH_CLUSTER_DATABASE}"')
    admin.dispose()
    return server.set(database=BENCH_CLUSTER_DATABASE).render_as_string(hide_password=False)


@contextmanager
def cluster_stack(rasa_port: int, actions_port: int, web_port: int, senders: Sequence[str],
                  replicas: int, warm: Optional["Conversation"] = None) -> Iterator[str]:
    """The scaled-out layout with `replicas` Rasa servers behind HAProxy; yields the REST webhook URL."""
    from bot.cluster.runner import Cluster, Layout
    from bot.processes import free_port
    from bot.settings import Settings

    for port in (rasa_port, actions_port, web_port):
        ensure_port_free(port)
    data_dir = Path(tempfile.mkdtemp(prefix="rapport-bench-cluster-"))
    database_url = fresh_cluster_database()
    try:
        env = rapport_env(data_dir, rasa_port, actions_port)
        env.update({"WEB_PORT": str(web_port), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})
        seed_store(env)
        link_senders(database_url, senders)
        cluster = Cluster(Settings.from_env(env), Layout(replicas=replicas, action_servers=2, web_apps=1),
                          data_dir / "cluster", env, database_url=database_url, redis_port=free_port(),
                          model=RAPPORT_MODEL, report=log)
        log(f"starting the cluster: {replicas} Rasa replicas, 2 action servers, HAProxy (logs: {cluster.logs})")
        started = time.monotonic()
        cluster.start()
        try:
            cluster.wait_ready(READY_TIMEOUT_SECONDS)
            log(f"cluster is up after {time.monotonic() - started:.0f} s")
            if warm is not None:
                # The load balancer would warm only the replica it picks: warm each one directly.
                for index, port in enumerate(cluster.rasa_ports):
                    log(f"warming up rasa server {index + 1} directly (not measured)")
                    asyncio.run(warm_up(webhook_url(port), warm))
            yield webhook_url(rasa_port)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def webhook_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/webhooks/rest/webhook"


# ---------------------------------------------------------------------------------------------
# Stock `rasa init` bot


def prepare_stock_bot(stock_dir: Path = STOCK_DIR) -> Path:
    """The rasa init project with our config.yml, trained for it; returns the model path."""
    if not (stock_dir / "domain.yml").exists():
        # What `rasa init --no-prompt` does before it trains: copy Rasa's initial project. Its own
        # training (default config) is skipped, since the model is retrained on our config anyway.
        shutil.copytree(_rasa_initial_project(), stock_dir, dirs_exist_ok=True)
        log(f"created the stock rasa init project in {stock_dir.relative_to(PROJECT_ROOT)}")
    shutil.copyfile(PROJECT_ROOT / "config.yml", stock_dir / "config.yml")
    model = stock_dir / "models" / f"{STOCK_MODEL_NAME}.tar.gz"
    stamp = stock_dir / "models" / f"{STOCK_MODEL_NAME}.fingerprint"
    fingerprint = stock_fingerprint(stock_dir)
    if model.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        log(f"stock model is current: {model.relative_to(PROJECT_ROOT)}")
        return model
    log("training the stock bot with our config.yml (about a minute on 2 cores)")
    started = time.monotonic()
    run_checked(
        [sys.executable, "-m", "rasa", "train", "--fixed-model-name", STOCK_MODEL_NAME, "--out", "models"],
        stock_dir, base_env(), "training the stock bot",
    )
    stamp.write_text(fingerprint + "\n")
    log(f"stock model trained in {time.monotonic() - started:.0f} s")
    return model


def _rasa_initial_project() -> Path:
    spec = importlib.util.find_spec("rasa")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("[bench] rasa is not installed in this interpreter")
    return Path(list(spec.submodule_search_locations)[0]) / "cli" / "initial_project"


def stock_fingerprint(stock_dir: Path) -> str:
    digest = hashlib.sha256(f"rasa {importlib.metadata.version('rasa')}\n".encode())
    for name in STOCK_TRAINING_INPUTS:
        path = stock_dir / name
        for item in sorted(path.rglob("*.yml")) if path.is_dir() else [path]:
            digest.update(str(item.relative_to(stock_dir)).encode() + b"\0" + item.read_bytes() + b"\0")
    return digest.hexdigest()


@contextmanager
def stock_stack(port: int, model: Path, stock_dir: Path = STOCK_DIR) -> Iterator[str]:
    ensure_port_free(port)
    with running() as servers:
        servers.append(start_server(
            "stock-rasa",
            [sys.executable, "-m", "rasa", "run", "--port", str(port), "--interface", "127.0.0.1", "--model", str(model)],
            stock_dir, base_env(),
        ))
        started = time.monotonic()
        servers[0].wait_until_ready(f"http://127.0.0.1:{port}/", READY_TIMEOUT_SECONDS)
        log(f"stock is up after {time.monotonic() - started:.0f} s")
        yield webhook_url(port)


# ---------------------------------------------------------------------------------------------
# Load


@dataclass(frozen=True)
class Conversation:
    sender: str
    script: Script


def plan_conversations(target: str, level: int, count: int, scripts: Sequence[Script]) -> List[Conversation]:
    return [
        Conversation(f"bench-{target}-{level}-{index}-{uuid.uuid4().hex[:12]}", scripts[index % len(scripts)])
        for index in range(count)
    ]


async def send_turn(
    session: aiohttp.ClientSession, url: str, sender: str, message: str, stats: Optional[LevelStats]
) -> List[Dict[str, object]]:
    """POST one message and wait for the reply; records latency or an error into `stats`."""
    started = time.perf_counter()
    try:
        async with session.post(url, json={"sender": sender, "message": message}) as response:
            body = await response.text()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        if stats is not None:
            stats.turns += 1
            stats.record_error(f"{message!r}: {type(error).__name__}: {error}")
        return []
    elapsed_ms = (time.perf_counter() - started) * 1000
    reply = _parse_reply(body)
    if stats is not None:
        stats.turns += 1
        if status >= 400 or not reply:
            stats.record_error(f"{message!r}: HTTP {status}: {body[:200]}")
        else:
            stats.latencies_ms.append(elapsed_ms)
    return reply


def _parse_reply(body: str) -> List[Dict[str, object]]:
    try:
        reply = json.loads(body)
    except ValueError:
        return []
    return reply if isinstance(reply, list) else []


async def play(session: aiohttp.ClientSession, url: str, conversation: Conversation, stats: Optional[LevelStats]) -> None:
    for message in conversation.script:
        await send_turn(session, url, conversation.sender, message, stats)


def _client(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT_SECONDS),
        connector=aiohttp.TCPConnector(limit=max(concurrency, 1) * 2),
    )


async def warm_up(url: str, conversation: Conversation) -> None:
    """One conversation whose turns are discarded (first requests load models and connections)."""
    async with _client(1) as session:
        for message in conversation.script:
            reply = await send_turn(session, url, conversation.sender, message, None)
            texts = [str(item.get("text", "")).replace("\n", " ") for item in reply]
            log(f"  warm-up {message!r} -> {(' | '.join(texts) or '(no reply)')[:90]!r}")


async def run_level(target: str, url: str, concurrency: int, conversations: Sequence[Conversation]) -> LevelStats:
    stats = LevelStats(target, concurrency, len(conversations))
    expected = sum(len(c.script) for c in conversations)
    queue: asyncio.Queue[Conversation] = asyncio.Queue()
    for conversation in conversations:
        queue.put_nowait(conversation)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            await play(session, url, queue.get_nowait(), stats)

    async def progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            log(f"{target} c={concurrency}: {stats.turns}/{expected} turns")

    reporter = asyncio.create_task(progress())
    started = time.perf_counter()
    try:
        async with _client(concurrency) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    finally:
        stats.wall_seconds = time.perf_counter() - started
        reporter.cancel()
    log(f"{target} c={concurrency}: {stats.turns}/{expected} turns in {stats.wall_seconds:.1f} s, {stats.errors} errors")
    return stats


def conversations_for(level: int, fixed: Optional[int]) -> int:
    """--conversations, or by default 10 at concurrency 1 and two per concurrent user above that."""
    return fixed if fixed is not None else max(10, 2 * level)


async def bench_target(
    target: str, url: str, warm_up_conversation: Conversation, plans: Mapping[int, Sequence[Conversation]]
) -> List[LevelStats]:
    log(f"{target}: warm-up conversation (not measured)")
    await warm_up(url, warm_up_conversation)
    results = []
    for level, conversations in plans.items():
        log(f"{target} c={level}: {len(conversations)} conversations")
        results.append(await run_level(target, url, level, conversations))
    return results


# ---------------------------------------------------------------------------------------------
# Report


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_machine(machine: Mapping[str, object]) -> None:
    print("\nMachine")
    print(f"  nproc {machine['nproc']}, CPU {machine['cpu_model']}, memory {machine['memory_gib']} GiB")
    print(f"  Python {machine['python']}, Rasa {machine['rasa']}, rasa-sdk {machine['rasa_sdk']}, aiohttp {machine['aiohttp']}")


def print_results(results: Sequence[LevelStats]) -> None:
    print(f"\n{'target':<8} {'conc':>4} {'convs':>5} {'turns':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'msg/s':>7}")
    for item in results:
        print(
            f"{item.target:<8} {item.concurrency:>4} {item.conversations:>5} {item.turns:>6} {item.errors:>6} "
            f"{_ms(item.percentile(0.5)):>8} {_ms(item.percentile(0.95)):>8} {_ms(item.percentile(0.99)):>8} "
            f"{item.messages_per_second:>7.1f}"
        )
    for item in results:
        for sample in item.error_samples:
            print(f"  error {item.target} c={item.concurrency}: {sample}")


def ratios(results: Sequence[LevelStats]) -> List[Dict[str, object]]:
    by_key = {(item.target, item.concurrency): item for item in results}
    rows = []
    for (target, level), ours in sorted(by_key.items(), key=lambda pair: pair[0][1]):
        stock = by_key.get(("stock", level))
        if target == "stock" or stock is None:
            continue
        ours_p95, stock_p95 = ours.percentile(0.95), stock.percentile(0.95)
        rows.append({
            "target": target,
            "concurrency": level,
            "p95_ratio": round(ours_p95 / stock_p95, 2) if ours_p95 and stock_p95 else None,
            "throughput_ratio": round(ours.messages_per_second / stock.messages_per_second, 2)
            if stock.messages_per_second else None,
        })
    return rows


def print_ratios(rows: Sequence[Mapping[str, object]]) -> None:
    if not rows:
        return
    print("\nagainst stock (same concurrency)")
    for row in rows:
        print(f"  {row['target']:<8} c={row['concurrency']:<3} p95 ratio {row['p95_ratio']}x   "
              f"throughput ratio {row['throughput_ratio']}x")


def write_json(path: Path, machine: Mapping[str, object], results: Sequence[LevelStats], total_seconds: float) -> None:
    payload = {
        "machine": dict(machine),
        "results": [item.summary() for item in results],
        "ratios": ratios(results),
        "total_seconds": round(total_seconds, 1),
    }
    write_json_file(path, payload)
    log(f"results written to {path}")


# ---------------------------------------------------------------------------------------------
# Main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat",
        description="Chat latency/throughput of Rapport against a stock `rasa init` bot with the same "
        "NLU pipeline and policies. Starts its own servers on the ports below.",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20, 100], metavar="N",
                        help="concurrency levels: conversations in flight at once (default: 1 20 100)")
    parser.add_argument("--conversations", type=int, default=None, metavar="N",
                        help="conversations per level (default: max(10, 2 × concurrency): 10 at 1, 40 at 20)")
    parser.add_argument("--targets", nargs="+", choices=("rapport", "cluster", "stock"),
                        default=["rapport", "cluster", "stock"],
                        help="what to benchmark (default: rapport cluster stock)")
    parser.add_argument("--replicas", type=int, default=2, metavar="N",
                        help="Rasa replicas of the cluster target (default: 2)")
    parser.add_argument("--cluster-web-port", type=int, default=5405, metavar="PORT",
                        help="the cluster's web app frontend (default: 5405; its bot frontend is --rasa-port)")
    parser.add_argument("--rasa-port", type=int, default=5205, metavar="PORT", help="our Rasa server (default: 5205)")
    parser.add_argument("--actions-port", type=int, default=5255, metavar="PORT",
                        help="our action server (default: 5255)")
    parser.add_argument("--stock-port", type=int, default=5305, metavar="PORT",
                        help="the stock bot's Rasa server (default: 5305)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    return parser


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if any(level < 1 for level in args.concurrency):
        parser.error("--concurrency levels must be at least 1")
    if args.conversations is not None and args.conversations < 1:
        parser.error("--conversations must be at least 1")
    if len({args.rasa_port, args.actions_port, args.stock_port}) < 3:
        parser.error("the three ports must differ")
    if "rapport" in args.targets and not RAPPORT_MODEL.exists():
        parser.error(f"{RAPPORT_MODEL.relative_to(PROJECT_ROOT)} is missing: run `make train` first")


def plans_for(target: str, args: argparse.Namespace, scripts: Sequence[Script]) -> Dict[int, List[Conversation]]:
    return {
        level: plan_conversations(target, level, conversations_for(level, args.conversations), scripts)
        for level in dict.fromkeys(args.concurrency)
    }


def bench_rapport(args: argparse.Namespace) -> List[LevelStats]:
    plans = plans_for("rapport", args, RAPPORT_SCRIPTS)
    warm = plan_conversations("rapport", 0, 1, RAPPORT_SCRIPTS)[0]
    senders = [warm.sender] + [c.sender for conversations in plans.values() for c in conversations]
    with rapport_stack(args.rasa_port, args.actions_port, senders) as url:
        return asyncio.run(bench_target("rapport", url, warm, plans))


def bench_cluster(args: argparse.Namespace) -> List[LevelStats]:
    plans = plans_for("cluster", args, RAPPORT_SCRIPTS)
    warm = plan_conversations("cluster", 0, 1, RAPPORT_SCRIPTS)[0]
    senders = [warm.sender] + [c.sender for conversations in plans.values() for c in conversations]
    with cluster_stack(args.rasa_port, args.actions_port, args.cluster_web_port, senders, args.replicas, warm) as url:
        return asyncio.run(bench_target("cluster", url, warm, plans))


def bench_stock(args: argparse.Namespace) -> List[LevelStats]:
    model = prepare_stock_bot()
    plans = plans_for("stock", args, STOCK_SCRIPTS)
    warm = plan_conversations("stock", 0, 1, STOCK_SCRIPTS)[0]
    with stock_stack(args.stock_port, model) as url:
        return asyncio.run(bench_target("stock", url, warm, plans))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    started = time.monotonic()
    machine = describe_machine(("rasa", "rasa-sdk", "aiohttp"))
    print_machine(machine)
    results: List[LevelStats] = []
    # One target at a time, so the two never compete for the CPU.
    if "rapport" in args.targets:
        results += bench_rapport(args)
    if "cluster" in args.targets:
        results += bench_cluster(args)
    if "stock" in args.targets:
        results += bench_stock(args)
    total = time.monotonic() - started
    print_machine(machine)
    print_results(results)
    print_ratios(ratios(results))
    print(f"\ntotal time {total:.0f} s", flush=True)
    if args.json is not None:
        write_json(args.json, machine, results, total)
    return 1 if any(item.errors for item in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
