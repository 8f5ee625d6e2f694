"""`make chaos`: a bounded fault run on the scaled-out layout under chat, store webhook and store-API load.

It starts the cluster (2 Rasa replicas, 2 action servers, 2 web apps behind HAProxy; PostgreSQL database
rapport_chaos, made afresh, reached through a TCP proxy this process controls; a redis-server of the
cluster's own), puts load on it, and injects, one after the other:

  kill -9 of a web app · kill -9 of a Rasa replica · kill -9 of an action server · a Redis restart ·
  PostgreSQL refusing connections for 10 s (the proxy closes and resets everything; the shared server runs on)

The supervisor restarts what was killed, as under `make run-cluster`. Then it stops the load and prints
messages sent / answered / apologised / silent / lost, 5xx seen, store-API errors, how long the service was
out after the replica's death, `python -m bot ledger verify` and a consistency check of every conversation
(bot/cluster/consistency.py). Exit code 1 when a target is missed: 0 lost, 0 silent, 0 ledger mismatches,
service back within 5 s of a replica's death.

Clients behave as the platforms do: a message whose request failed at the connection or got 502/503/504 is
sent again (Telegram and Meta redeliver; our widget resends) for up to RETRY_SECONDS; only then is it lost.

Store webhooks behave as Shopify's: a delivery not answered 200 within 5 s is delivered again with the same
event id. After the load, every acknowledged event must be applied once (each its order, once): events a
killed web app's worker had claimed wait for the claim to lapse (bot/integrations/inbox.py CLAIM), so the
run waits for that at most.

Load generators are classes with `run(until)` and `report()`, listed in `main`.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
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
from typing import Any, Callable, Dict, List, Optional, Tuple

import aiohttp

from bot.processes import free_port, kill
from bot.rasa_hooks import APOLOGY
from bot.settings import PROJECT_ROOT

DATABASE = "rapport_chaos"
STORE_TOKEN = "chaos-store-token"
RETRY_SECONDS = 30.0
CHAT_CONVERSATIONS = 8
API_CLIENTS = 2
WEBHOOK_SENDERS = 2
SHOPIFY_TIMEOUT_SECONDS = 5.0  # Shopify counts a delivery not answered within 5 s as failed and retries it
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


async def post_until_accepted(session: aiohttp.ClientSession, url: str, errors: Counter, *, ok: Tuple[int, ...],
                              timeout: float, **request: Any) -> Optional[Dict[str, Any]]:
    """POST until answered with a status in `ok` (its JSON), sent again 0.5 s after any other answer or a failed
    connection, as a store's queue or Shopify does; None after RETRY_SECONDS (lost). Each failure is counted in
    `errors` by status or error name."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            async with session.post(url, timeout=aiohttp.ClientTimeout(total=timeout), **request) as response:
                if response.status in ok:
                    return await response.json(content_type=None) or {}
                errors[response.status] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            errors[type(error).__name__] += 1
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.5)


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
            reply = await post_until_accepted(session, self.url, self.errors, ok=(200, 201), timeout=30, json=body,
                                              headers={"Authorization": f"Bearer {self.token}"})
            if reply is None:
                self.lost += 1
            else:
                self.accepted += 1
            await asyncio.sleep(0.3)

    async def run(self, until: float) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._client(session, number, until) for number in range(API_CLIENTS)))

    def report(self) -> List[str]:
        return [f"store API: {self.sent} orders sent, {self.accepted} accepted, {self.lost} lost; "
                f"errors on the way (re-sent): {dict(self.errors) or 0}"]


@dataclass
class WebhookLoad:
    """The shop's Shopify webhooks: `orders/paid` deliveries, signed, each event once, re-delivered with the same
    event id until answered 200 (as Shopify retries), for up to RETRY_SECONDS. New shoppers' orders (joined by
    the webhook), so that every acknowledged event must end as one order."""

    url: str
    sent: int = 0
    acknowledged: int = 0
    duplicates: int = 0
    errors: Counter = field(default_factory=Counter)
    lost: int = 0
    order_names: List[str] = field(default_factory=list)
    _numbers: "itertools.count[int]" = field(default_factory=itertools.count)

    async def _shop(self, session: aiohttp.ClientSession, until: float) -> None:
        from bench.webhooks import FIXTURE, signed_headers

        template = json.loads(FIXTURE.read_text())
        while time.monotonic() < until:
            number = next(self._numbers)
            order = copy.deepcopy(template)
            order["id"], order["name"], order["order_number"] = 7_000_000_000_000 + number, f"#CH{number:06d}", number
            order["customer"]["id"] = 9_000_000_000_000 + number % 20
            order["customer"]["email"] = order["email"] = order["contact_email"] = f"chaos-shopper-{number % 20}@example.com"
            body = json.dumps(order).encode()
            headers = signed_headers(f"chaos-{uuid.uuid4().hex}", body)
            self.sent += 1
            reply = await post_until_accepted(session, self.url, self.errors, ok=(200,),
                                              timeout=SHOPIFY_TIMEOUT_SECONDS, data=body, headers=headers)
            if reply is None:
                self.lost += 1
            else:
                self.acknowledged += 1
                self.duplicates += bool(reply.get("duplicate"))
                self.order_names.append(order["name"].lstrip("#"))
            await asyncio.sleep(0.25)

    async def run(self, until: float) -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._shop(session, until) for _ in range(WEBHOOK_SENDERS)))

    def report(self) -> List[str]:
        return [f"store webhooks: {self.sent} Shopify deliveries, {self.acknowledged} acknowledged, {self.lost} lost; "
                f"redelivered after {sum(self.errors.values())} failed tries {dict(self.errors) or ''} "
                f"({self.duplicates} redeliveries found already stored)"]


def webhooks_applied(database_url: str, order_names: List[str], deadline: float) -> Dict[str, object]:
    """Waits until no store event is pending (or `deadline`); then the events by state, and how many of the
    acknowledged orders are in the store and whether any is there twice."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        while True:
            with engine.connect() as connection:
                states = dict(connection.execute(text("SELECT state, count(*) FROM store_events GROUP BY state")).all())
            if not states.get("pending") or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT external_id, count(*) FROM orders WHERE external_id LIKE 'CH%' GROUP BY external_id")).all()
    finally:
        engine.dispose()
    counts = dict(found)
    return {"states": {state: int(count) for state, count in states.items()},
            "orders": sum(1 for name in order_names if counts.get(name) == 1),
            "twice": sum(1 for count in counts.values() if count > 1)}


# -- faults ----------------------------------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # seconds after the load started
    name: str
    inject: Callable[[], None]
    injected_at: Optional[float] = None


REPLICA_DEATH = "kill -9 rasa server 1"


def build_faults(cluster, proxy) -> List[Fault]:  # noqa: ANN001 - bot.cluster.runner.Cluster, TcpProxy
    # The web app first: events its worker had claimed when it died wait for the claim to lapse (2 minutes),
    # which then falls within the run instead of after it.
    return [
        Fault(5, "kill -9 web app 1", lambda: kill(cluster.web[0], signal.SIGKILL)),
        Fault(15, REPLICA_DEATH, lambda: kill(cluster.rasa[0], signal.SIGKILL)),
        Fault(35, "kill -9 action server 1", lambda: kill(cluster.actions[0], signal.SIGKILL)),
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
    from bench.webhooks import SECRET as SHOPIFY_SECRET, SHOP as SHOPIFY_SHOP
    env["SHOPIFY_WEBHOOK_SECRETS"] = f"{SHOPIFY_SHOP}={SHOPIFY_SECRET}"
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
        webhooks = WebhookLoad(f"http://127.0.0.1:{settings.web_port}/webhooks/shopify")
        loads = [chat, webhooks, api]
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
        replica = next(index for index, fault in enumerate(faults) if fault.name == REPLICA_DEATH)
        death = faults[replica].injected_at or 0.0
        next_fault = faults[replica + 1].injected_at or float("inf")
        after = [moment for moment in sorted(chat.successes) if death <= moment < next_fault]
        back_after = (after[0] - death) if after else float("inf")
        longest_gap = max((b - a for a, b in zip([death] + after, after)), default=float("inf"))

        # Events a killed web app's worker had claimed are claimed again when the claim lapses.
        from bot.integrations.inbox import CLAIM
        from bot.web.webhooks import POLL_SECONDS

        web_killed = next((fault.injected_at for fault in faults if fault.name.startswith("kill -9 web app")), None)
        settle_by = max(time.monotonic() + 30, (web_killed or 0.0) + CLAIM.total_seconds() + POLL_SECONDS + 20)
        settle_started = time.monotonic()
        applied = webhooks_applied(direct_url, webhooks.order_names, settle_by)
        log(f"store events settled after {time.monotonic() - settle_started:.0f} s: {applied['states']}")
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
        print(f"  store webhooks applied: {applied['orders']} of {webhooks.acknowledged} acknowledged orders in the "
              f"store once, {applied['twice']} twice; events by state {applied['states']}")
        print(f"  restarts by the supervisor: {cluster.supervisor.restarts}")
        print(f"  ledger verify (exit {code}): {ledger_output.splitlines()[-1] if ledger_output else ''}")
        print(f"  conversations checked: {len(reports)}, consistent {len(reports) - len(inconsistent)}")
        for report in inconsistent:
            print(f"    {report.summary()}")
        targets = [
            ("0 lost messages", chat.lost == 0 and api.lost == 0 and webhooks.lost == 0),
            ("every acknowledged webhook applied once",
             applied["orders"] == webhooks.acknowledged and applied["twice"] == 0
             and set(applied["states"]) <= {"applied"}),
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
