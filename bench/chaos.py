"""`make chaos`: a bounded fault run on the scaled-out layout under chat and store-API load.

It starts the cluster (2 Rasa replicas, 2 action servers, 2 web apps behind HAProxy; PostgreSQL database
rapport_chaos, made afresh, reached through a TCP proxy this process controls; a redis-server of the
cluster's own), puts load on it, and injects, one after the other:

  kill -9 of a Rasa replica · kill -9 of an action server · kill -9 of a web app · a Redis restart ·
  PostgreSQL refusing connections for 10 s (the proxy closes and resets everything; the shared server runs on)

The supervisor restarts what was killed, as under `make run-cluster`. Then it stops the load and prints
messages sent / answered / apologised / silent / lost, 5xx seen, store-API errors, how long the service was
out after the replica's death, `python -m bot ledger verify` and a consistency check of every conversation
(bot/cluster/consistency.py). Exit code 1 when a target is missed: 0 lost, 0 silent, 0 ledger mismatches,
service back within 5 s of a replica's death.

Clients behave as the platforms do: a message whose request failed at the connection or got 502/503/504 is
sent again (Telegram and Meta redeliver; our widget resends) for up to RETRY_SECONDS; only then is it lost.

Load generators are classes with `run(until)` and `report()`; LOADS lists them. Store webhooks (Shopify,
WooCommerce) get one when their endpoints exist: add a WebhookLoad next to StoreApiLoad and to LOADS.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import aiohttp

from bot.processes import free_port, kill
from bot.rasa_hooks import APOLOGY
from bot.settings import PROJECT_ROOT

DATABASE = "rapport_chaos"
STORE_TOKEN = "chaos-store-token"
RETRY_SECONDS = 30.0
CHAT_CONVERSATIONS = 8
API_CLIENTS = 2
REPLICA_BACK_TARGET_SECONDS = 5.0
MESSAGES = ("hi", "how many points do I have?", "what tier am I in?", "how do I earn more points",
            "what rewards can I get", "thanks!")


def log(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


# -- load ------------------------------------------------------------------------------------------------


@dataclass
class ChatLoad:
    """CHAT_CONVERSATIONS shoppers chatting over REST through the load balancer, each message unique."""

    url: str
    senders: List[str]
    sent: int = 0
    answered: int = 0
    apologised: int = 0
    silent: int = 0
    lost: int = 0
    retried: int = 0
    status_5xx: Counter = field(default_factory=Counter)
    texts: Dict[str, List[str]] = field(default_factory=dict)
    replies: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    successes: List[float] = field(default_factory=list)  # monotonic times of answered messages

    async def _deliver(self, session: aiohttp.ClientSession, sender: str, text: str) -> Optional[List[str]]:
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                async with session.post(self.url, json={"sender": sender, "message": text},
                                        timeout=aiohttp.ClientTimeout(total=60)) as response:
                    if response.status >= 500:
                        self.status_5xx[response.status] += 1
                    if response.status == 200:
                        return [str(item.get("text") or "") for item in await response.json()]
                    if response.status not in (502, 503, 504):
                        return None  # a client error: not retried
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            if time.monotonic() > deadline:
                return None
            self.retried += 1
            await asyncio.sleep(0.5)

    async def _shopper(self, session: aiohttp.ClientSession, sender: str, until: float) -> None:
        number = 0
        self.texts[sender] = []
        self.replies[sender] = {}
        while time.monotonic() < until:
            text = f"{MESSAGES[number % len(MESSAGES)]} {number}"
            number += 1
            self.sent += 1
            self.texts[sender].append(text)
            replies = await self._deliver(session, sender, text)
            if replies is None:
                self.lost += 1
            elif not any(replies):
                self.silent += 1
            elif APOLOGY in replies:
                self.apologised += 1
                self.replies[sender][text] = replies
            else:
                self.answered += 1
                self.replies[sender][text] = replies
                self.successes.append(time.monotonic())
            await asyncio.sleep(0.2)

    async def run(self, until: float) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._shopper(session, sender, until) for sender in self.senders))

    def report(self) -> List[str]:
        return [
            f"chat: {self.sent} messages sent, {self.answered} answered, {self.apologised} apologised, "
            f"{self.silent} silent, {self.lost} lost ({self.retried} re-sends after a failed request)",
            f"chat 5xx seen by clients: {dict(self.status_5xx) or 0}",
        ]


@dataclass
class StoreApiLoad:
    """The store's back-end reporting paid orders (each order id once, re-sent on failure like a queue)."""

    url: str
    token: str
    emails: List[str]
    sent: int = 0
    accepted: int = 0
    errors: Counter = field(default_factory=Counter)
    lost: int = 0

    async def _client(self, session: aiohttp.ClientSession, number: int, until: float) -> None:
        index = 0
        while time.monotonic() < until:
            order_id = f"chaos-{number}-{index}-{uuid.uuid4().hex[:6]}"
            body = {"event": "paid", "order_id": order_id, "customer": {"email": self.emails[index % len(self.emails)]},
                    "total": "12.00", "currency": "USD"}
            index += 1
            self.sent += 1
            deadline = time.monotonic() + RETRY_SECONDS
            while True:
                try:
                    async with session.post(self.url, json=body, headers={"Authorization": f"Bearer {self.token}"},
                                            timeout=aiohttp.ClientTimeout(total=30)) as response:
                        if response.status in (200, 201):
                            self.accepted += 1
                            break
                        self.errors[response.status] += 1
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    self.errors[type(error).__name__] += 1
                if time.monotonic() > deadline:
                    self.lost += 1
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.3)

    async def run(self, until: float) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._client(session, number, until) for number in range(API_CLIENTS)))

    def report(self) -> List[str]:
        return [f"store API: {self.sent} orders sent, {self.accepted} accepted, {self.lost} lost; "
                f"errors on the way (re-sent): {dict(self.errors) or 0}"]


# -- faults ----------------------------------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # seconds after the load started
    name: str
    inject: Callable[[], None]
    injected_at: Optional[float] = None


def build_faults(cluster, proxy) -> List[Fault]:  # noqa: ANN001 - bot.cluster.runner.Cluster, TcpProxy
    return [
        Fault(10, "kill -9 rasa server 1", lambda: kill(cluster.rasa[0], signal.SIGKILL)),
        Fault(30, "kill -9 action server 1", lambda: kill(cluster.actions[0], signal.SIGKILL)),
        Fault(45, "kill -9 web app 1", lambda: kill(cluster.web[0], signal.SIGKILL)),
        Fault(60, "restart redis (SIGTERM; the supervisor starts it again)", lambda: kill(cluster.redis, signal.SIGTERM)),
        Fault(80, "PostgreSQL refuses connections for 10 s", lambda: proxy.outage(10)),
    ]


# -- checks ----------------------------------------------------------------------------------------------


def ledger_verify(env: Dict[str, str]) -> tuple:
    result = subprocess.run([sys.executable, "-m", "bot", "ledger", "verify"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    return result.returncode, (result.stdout + result.stderr).strip()


def fresh_database(server_url: str) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DATABASE}'")
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}"')  # the chaos run's own database
        connection.exec_driver_sql(f'CREATE DATABASE "{DATABASE}"')
    admin.dispose()
    return server.set(database=DATABASE).render_as_string(hide_password=False)


def main(argv: Optional[List[str]] = None) -> int:
    from sqlalchemy.engine import make_url

    from bench.chat import DEMO_EMAILS, link_senders, seed_store
    from bot.cluster.consistency import check_events, load_events
    from bot.cluster.runner import Cluster, Layout
    from bot.cluster.tcp_proxy import TcpProxy
    from bot.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-seconds", type=float, default=110.0, help="how long the load runs (default 110)")
    args = parser.parse_args(argv)
    if args.load_seconds > 170:
        parser.error("the fault run is bounded: --load-seconds at most 170")

    server_url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    direct_url = fresh_database(server_url)
    parsed = make_url(direct_url)
    proxy = TcpProxy(free_port(), parsed.host or "127.0.0.1", parsed.port or 5432).start()
    proxied_url = parsed.set(host="127.0.0.1", port=proxy.listen_port).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="rapport-chaos-"))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TRACKER_DATABASE_URL", "REST_CHANNEL_TOKEN")}
    env.update({"RAPPORT_DATA_DIR": str(work / "var"), "DATABASE_URL": proxied_url, "RASA_PORT": str(free_port()),
                "ACTIONS_PORT": str(free_port()), "WEB_PORT": str(free_port()), "STORE_API_TOKEN": STORE_TOKEN,
                "LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "2"})
    senders = [f"chaos-{index}-{uuid.uuid4().hex[:6]}" for index in range(CHAT_CONVERSATIONS)]
    seed_store({**env, "DATABASE_URL": direct_url})
    link_senders(direct_url, senders)
    settings = Settings.from_env(env)
    cluster = Cluster(settings, Layout(replicas=2, action_servers=2, web_apps=2), work / "cluster", env,
                      database_url=proxied_url, redis_port=free_port(), report=log)
    log(f"starting the cluster (logs: {cluster.logs})")
    started = time.monotonic()
    cluster.start()
    failed = False
    try:
        cluster.wait_ready(600)
        log(f"cluster ready after {time.monotonic() - started:.0f} s; load for {args.load_seconds:.0f} s with faults")
        chat = ChatLoad(f"http://127.0.0.1:{settings.rasa_port}/webhooks/rest/webhook", senders)
        api = StoreApiLoad(f"http://127.0.0.1:{settings.web_port}/api/orders", STORE_TOKEN, list(DEMO_EMAILS))
        loads = [chat, api]  # store webhooks: add their load generator here
        faults = build_faults(cluster, proxy)

        async def run() -> None:
            load_started = time.monotonic()
            until = load_started + args.load_seconds

            async def injector() -> None:
                for fault in faults:
                    await asyncio.sleep(max(0.0, load_started + fault.at - time.monotonic()))
                    fault.injected_at = time.monotonic()
                    log(f"t={fault.at:>4.0f} s  {fault.name}")
                    fault.inject()

            async def supervising() -> None:
                while time.monotonic() < until + RETRY_SECONDS:
                    cluster.supervisor.poll()
                    await asyncio.sleep(0.2)

            supervisor = asyncio.ensure_future(supervising())
            await asyncio.gather(injector(), *(load.run(until) for load in loads))
            supervisor.cancel()

        asyncio.run(run())

        # How long no chat message was answered after the replica died (the other one answers meanwhile),
        # until the next fault.
        death = faults[0].injected_at or 0.0
        next_fault = faults[1].injected_at or float("inf")
        after = [moment for moment in sorted(chat.successes) if death <= moment < next_fault]
        back_after = (after[0] - death) if after else float("inf")
        longest_gap = max((b - a for a, b in zip([death] + after, after)), default=float("inf"))

        code, ledger_output = ledger_verify({**env, "DATABASE_URL": direct_url})
        reports = [check_events(sender, load_events(direct_url, sender), sent=chat.texts[sender],
                                replies=chat.replies[sender]) for sender in senders]
        inconsistent = [report for report in reports if not report.ok]
        print("\n== make chaos: results")
        for load in loads:
            for line in load.report():
                print(f"  {line}")
        print(f"  first answer after the replica's death: {back_after:.2f} s; longest gap between answers until "
              f"the next fault: {longest_gap:.2f} s")
        print(f"  restarts by the supervisor: {cluster.supervisor.restarts}")
        print(f"  ledger verify (exit {code}): {ledger_output.splitlines()[-1] if ledger_output else ''}")
        print(f"  conversations checked: {len(reports)}, consistent {len(reports) - len(inconsistent)}")
        for report in inconsistent:
            print(f"    {report.summary()}")
        targets = [
            ("0 lost messages", chat.lost == 0 and api.lost == 0),
            ("0 silent replies", chat.silent == 0),
            ("0 ledger mismatches", code == 0),
            (f"service back within {REPLICA_BACK_TARGET_SECONDS:.0f} s of a replica's death",
             longest_gap <= REPLICA_BACK_TARGET_SECONDS),
            ("every conversation consistent", not inconsistent),
        ]
        for name, met in targets:
            print(f"  {'PASS' if met else 'MISS'}  {name}")
        failed = not all(met for _, met in targets)
    finally:
        cluster.stop()
        proxy.stop()
        log(f"stopped; total {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
