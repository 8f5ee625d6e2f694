"""`make run-cluster` / `python -m bot run --replicas N`: the scaled-out layout on one machine.

    HAProxy ─┬─ bot :RASA_PORT ──────► N Rasa servers ──► actions (HAProxy, 127.0.0.1:ACTIONS_PORT) ──► M action servers
             └─ web :WEB_PORT  ──────► K web apps (one runs the scheduled jobs: the Redis lease)
    PostgreSQL (DATABASE_URL, default database rapport_cluster): the loyalty store and the conversations
    Redis (REDIS_URL, default: a redis-server of the cluster's own on 127.0.0.1:6390): locks, channel state, lease

Every child runs under one Supervisor (bot/processes.py): one that exits is restarted with backoff while
the others, and HAProxy's health checks, keep the service up. Cluster (the class) is what `make run-cluster`,
the cluster tests, `make bench-chat` and `make chaos` start and stop.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import shutil
import socket
import string
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from sqlalchemy.engine import make_url

from bot.processes import ManagedProcess, ProcessFailed, Supervisor, free_port
from bot.runner import (action_server_command, local_address, rasa_server_command, server_env,
                        web_app_command, with_development_defaults)
from bot.settings import PROJECT_ROOT, Settings

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/rapport_cluster"
DEFAULT_REDIS_PORT = 6390
HAPROXY_TEMPLATE = PROJECT_ROOT / "deploy" / "haproxy.cfg.template"
MODEL_LOAD_TIMEOUT = 600.0


@dataclass(frozen=True)
class Layout:
    replicas: int = 2
    action_servers: int = 2
    web_apps: int = 2


def ensure_database(url: str) -> None:
    """Creates the PostgreSQL database of `url` if it does not exist (never drops anything)."""
    from sqlalchemy import create_engine, text

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"the scaled-out layout keeps its data in PostgreSQL; DATABASE_URL is {parsed.get_backend_name()}")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": parsed.database}).first()
            if exists is None:
                connection.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
    finally:
        admin.dispose()


def haproxy_config(bind: str, rasa_port: int, actions_port: int, web_port: int, rasa: List[int],
                   actions: List[int], web: List[int], stats_socket: Path) -> str:
    def servers(prefix: str, ports: List[int]) -> str:
        return "\n".join(f"    server {prefix}{index + 1} 127.0.0.1:{port} check" for index, port in enumerate(ports))

    template = string.Template(HAPROXY_TEMPLATE.read_text())
    return template.substitute(
        bind=bind, rasa_port=rasa_port, actions_port=actions_port, web_port=web_port, stats_socket=stats_socket,
        rasa_servers=servers("rasa", rasa), action_servers=servers("actions", actions), web_servers=servers("web", web),
    )


@dataclass
class Cluster:
    """The processes of one scaled-out layout. `start()`, `wait_ready()`, `stop()`; `supervisor.poll()`
    keeps them running (the caller's loop, or `run_forever()`)."""

    settings: Settings
    layout: Layout
    work_dir: Path
    base_env: Mapping[str, str]
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: Optional[str] = None  # None: start a redis-server of our own on redis_port
    redis_port: int = DEFAULT_REDIS_PORT
    model: Optional[Path] = None
    report: Optional[Callable[[str], None]] = None  # where restart lines go (default: stderr)
    processes: List[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.work_dir / "logs"
        self.stats_socket = stats_socket_path(self.work_dir)
        self.own_redis = self.redis_url is None
        if self.redis_url is None:
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.rasa_ports = [free_port() for _ in range(self.layout.replicas)]
        self.action_ports = [free_port() for _ in range(self.layout.action_servers)]
        self.web_ports = [free_port() for _ in range(self.layout.web_apps)]
        env = dict(self.base_env)
        env.update({
            "DATABASE_URL": self.database_url,
            "TRACKER_DATABASE_URL": self.database_url,
            "TRACKER_STORE": "sql",
            "REDIS_URL": self.redis_url,
            "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL") or f"http://localhost:{self.settings.web_port}",
        })
        if env.get("TELEGRAM_MODE", "webhook").strip().lower() == "polling":
            raise SystemExit("TELEGRAM_MODE=polling cannot run on several Rasa replicas (each would fetch the same "
                             "updates): use the webhook in the scaled-out layout")
        self.env = server_env(env, self.settings)
        self.settings = with_development_defaults(self.settings, self.env)
        self._build()
        say = self.report or (lambda line: print(f"[cluster] {line}", file=sys.stderr, flush=True))
        self.supervisor = Supervisor(self.processes, report=say)

    # -- the processes ------------------------------------------------------------------------------

    def _settings_with(self, **ports: int) -> Settings:
        return dataclasses.replace(self.settings, **ports)

    def _build(self) -> None:
        config = self.work_dir / "haproxy.cfg"
        config.write_text(haproxy_config(
            self.settings.bind_host, self.settings.rasa_port, self.settings.actions_port, self.settings.web_port,
            self.rasa_ports, self.action_ports, self.web_ports, self.stats_socket,
        ))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.haproxy = ManagedProcess("load balancer", [haproxy, "-W", "-db", "-f", str(config)],
                                      cwd=PROJECT_ROOT, env=self.env, log_path=self.logs / "haproxy.log")
        self.redis: Optional[ManagedProcess] = None
        if self.own_redis:
            redis_dir = self.work_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            self.redis = ManagedProcess(
                "redis", [shutil.which("redis-server") or "redis-server", "--port", str(self.redis_port),
                          "--bind", "127.0.0.1", "--dir", str(redis_dir), "--save", "", "--appendonly", "yes",
                          "--appendfsync", "everysec", "--protected-mode", "yes"],
                cwd=PROJECT_ROOT, env=self.env, log_path=self.logs / "redis.log",
            )
        self.actions = [
            ManagedProcess(f"action server {index + 1}", action_server_command(self._settings_with(actions_port=port)),
                           cwd=PROJECT_ROOT, env=self.env, log_path=self.logs / f"actions-{index + 1}.log")
            for index, port in enumerate(self.action_ports)
        ]
        # The replicas reach the action servers through HAProxy's actions frontend (settings.actions_port).
        self.rasa = [
            ManagedProcess(f"rasa server {index + 1}",
                           rasa_server_command(self._settings_with(rasa_port=port), self.model),
                           cwd=PROJECT_ROOT, env=self.env, log_path=self.logs / f"rasa-{index + 1}.log")
            for index, port in enumerate(self.rasa_ports)
        ]
        self.web = [
            ManagedProcess(f"web app {index + 1}", web_app_command(), cwd=PROJECT_ROOT,
                           env={**self.env, "WEB_PORT": str(port)}, log_path=self.logs / f"web-{index + 1}.log")
            for index, port in enumerate(self.web_ports)
        ]
        self.processes = ([self.redis] if self.redis else []) + [self.haproxy] + self.actions + self.rasa + self.web

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self) -> "Cluster":
        ensure_database(self.database_url)
        self.supervisor.start_all()
        return self

    def wait_ready(self, timeout: float = MODEL_LOAD_TIMEOUT) -> None:
        host = local_address(self.settings)
        for process, url in self.ready_urls():
            process.wait_until_ready(url.replace("{host}", host), timeout=timeout, also_watch=self.processes)
        # Through the load balancer too: its health checks have seen every replica up.
        self.haproxy.wait_until_ready(f"http://{host}:{self.settings.rasa_port}/webhooks/health/ready", timeout=30)

    def ready_urls(self) -> List[tuple]:
        urls: List[tuple] = []
        urls += [(p, f"http://{{host}}:{port}/health") for p, port in zip(self.actions, self.action_ports)]
        urls += [(p, f"http://{{host}}:{port}/ready") for p, port in zip(self.web, self.web_ports)]
        urls += [(p, f"http://{{host}}:{port}/webhooks/health/ready") for p, port in zip(self.rasa, self.rasa_ports)]
        return urls

    def stop(self) -> None:
        self.supervisor.stop()

    def server_states(self) -> Dict[Tuple[str, str], str]:
        """What HAProxy's health checks say of each server now: {(backend, server): "UP" | "DOWN" | …}."""
        return server_states(self.stats_socket)

    def all_servers_up(self) -> bool:
        """Every server of every backend is in the load balancer (a replica restarted after a kill has
        passed its checks again, not only answered its own ready URL)."""
        states = self.server_states()
        return bool(states) and all(state == "UP" for state in states.values())

    def describe(self) -> str:
        host = "localhost"
        lines = [
            "The scaled-out layout is running:",
            f"  load balancer  HAProxy: bot http://{host}:{self.settings.rasa_port} · web http://{host}:{self.settings.web_port}"
            f" · actions 127.0.0.1:{self.settings.actions_port} (config {self.work_dir / 'haproxy.cfg'})",
            *(f"  {p.name:<17}127.0.0.1:{port}  (ready: /webhooks/health/ready)" for p, port in zip(self.rasa, self.rasa_ports)),
            *(f"  {p.name:<17}127.0.0.1:{port}  (ready: /health)" for p, port in zip(self.actions, self.action_ports)),
            *(f"  {p.name:<17}127.0.0.1:{port}  (ready: /ready)" for p, port in zip(self.web, self.web_ports)),
            f"  PostgreSQL     {_without_password(self.database_url)} (loyalty store and conversations)",
            f"  Redis          {_without_password(self.redis_url or '')}"
            + (" (the cluster's own redis-server)" if self.own_redis else "") + " (locks, channel state, jobs lease)",
            f"  logs           {self.logs}/",
        ]
        return "\n".join(lines)


def stats_socket_path(work_dir: Path) -> Path:
    """HAProxy's stats socket in `work_dir`, or under the temporary directory when that path is longer than a
    Unix socket's address may be (108 bytes)."""
    path = work_dir / "haproxy.sock"
    if len(os.fsencode(str(path))) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="rapport-lb-")) / "haproxy.sock"


def server_states(stats_socket: Path, timeout: float = 2.0) -> Dict[Tuple[str, str], str]:
    """`show stat` on HAProxy's stats socket: each real server's status by (backend, server) — "UP", "DOWN",
    or on the way ("DOWN 1/2": one of the two checks it needs passed); {} while the socket is not there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(stats_socket))
            connection.sendall(b"show stat\n")
            chunks = []
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8", "replace").lstrip("# ")))
    return {(row["pxname"], row["svname"]): row["status"] for row in rows
            if row.get("svname") not in ("FRONTEND", "BACKEND", None) and row.get("status")}


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1]


def run_cluster(settings: Settings, layout: Layout, console_login: Optional[str] = None) -> int:
    """`make run-cluster`: start, print where everything is, keep it running until Ctrl-C."""
    import signal

    from bot.runner import channel_status, how_to_chat

    cluster = Cluster(settings, layout, settings.data_dir / "cluster", os.environ,
                      database_url=cluster_database_url(settings), redis_url=cluster_redis_url(settings))

    def on_signal(_signum: int, _frame: Optional[object]) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster.start()
        try:
            cluster.wait_ready()
            print(cluster.describe(), flush=True)
            print(how_to_chat(cluster.settings, channel_status(cluster.settings), console_login), flush=True)
        except ProcessFailed as error:
            print(f"[cluster] {error}", file=sys.stderr, flush=True)
        while True:
            cluster.supervisor.poll()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n[cluster] stopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()


def cluster_database_url(settings: Settings) -> str:
    """DATABASE_URL when it names PostgreSQL, else the cluster's default database on the local server."""
    return settings.database_url if settings.database_url.startswith("postgresql") else DEFAULT_DATABASE_URL


def cluster_redis_url(settings: Settings) -> Optional[str]:
    """REDIS_URL when set (an external Redis, as in production), else None: the cluster starts its own."""
    return settings.redis_url



