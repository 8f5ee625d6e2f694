"""Store webhooks in: `POST /webhooks/shopify` and `POST /webhooks/woocommerce` check the store's signature on
the raw body before reading anything of it (401 and nothing written otherwise), write the delivery to the
inbox once per delivery key and answer 200 at once; the inbox worker running in the web app applies it
(bot/integrations/).
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import re
import time
from contextlib import contextmanager
from typing import AsyncIterator, Awaitable, Callable, Dict, Iterator, List, Optional, Set, Tuple

from aiohttp import web

from bot import clock
from bot.app_context import DATABASE, EXECUTOR, PROGRAM, SETTINGS, WEBHOOK_REFUSALS, in_executor
from bot.db import transaction, transaction_in_thread
from bot.integrations import StoreContext, store_topics
from bot.integrations.inbox import (
    Accepted, Delivery, Topics, accept_deliveries, apply_due, delivery_key_of, forget_old_events,
)
from bot.integrations.shopify import SOURCE as SHOPIFY, TOPICS as SHOPIFY_TOPICS
from bot.integrations.woocommerce import (
    SOURCE as WOOCOMMERCE, TOPICS as WOOCOMMERCE_TOPICS, delivery_key as woocommerce_delivery_key,
)
from bot.log import get_logger
from bot.web.store_events_process import SPAWN, ChildProcessApplier

log = get_logger(__name__)

# Shopify's order payloads can be far larger than the store API's bodies (hundreds of lines).
MAX_WEBHOOK_BYTES = 4 * 1024 * 1024
WORKER = web.AppKey("store_events_worker", asyncio.Task)
WAKE = web.AppKey("store_events_wake", asyncio.Event)
# Deliveries arriving together are written together: one transaction (one commit) for a burst.
MAX_INTAKE_BATCH = 200
# Events claimed per worker run. Before each, the worker lets waiting acknowledgements be written first, but
# waits no longer than MAX_WORKER_WAIT_SECONDS (a steady stream of deliveries must not stop the applying).
WORKER_BATCH = 20
MAX_WORKER_WAIT_SECONDS = 0.5
INTAKE_QUIET_SECONDS = 0.05
_WOOCOMMERCE_PING = re.compile(rb"webhook_id=\d{1,20}")
# The worker looks for due retries this often even when no delivery woke it.
POLL_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 3600.0
_NOBODY, _INTAKE, _WORKER = 0, 1, 2  # who holds the write turn


async def shopify_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    shop = request.headers.get("X-Shopify-Shop-Domain", "").strip().lower()[:255]
    secret = settings.shopify_secret(shop) if shop else None
    body = await _raw_body(request)
    if body is None:
        return web.json_response({"error": "payload_too_large"}, status=413)
    if secret is None or not _signature_ok(secret, body, request.headers.get("X-Shopify-Hmac-Sha256", "")):
        log.warning("webhook.refused", source=SHOPIFY, shop=shop or None, known_shop=secret is not None,
                    had_signature=bool(request.headers.get("X-Shopify-Hmac-Sha256")))
        _refused(request, SHOPIFY, shop or "(no shop)")
        return web.json_response({"error": "unauthorized"}, status=401)
    topic = request.headers.get("X-Shopify-Topic", "").strip().lower()
    if topic not in SHOPIFY_TOPICS:
        log.info("webhook.ignored_topic", source=SHOPIFY, shop=shop, topic=topic[:100] or None)
        return web.json_response({"received": True, "ignored": "topic not handled"})
    key = delivery_key_of(request.headers.get("X-Shopify-Event-Id") or request.headers.get("X-Shopify-Webhook-Id"),
                          body)
    return await _accept(request, SHOPIFY, shop, key, topic, body)


async def _accept(request: web.Request, source: str, shop: str, key: str, topic: str, body: bytes) -> web.Response:
    """The verified delivery into the inbox (once per key: committed before the answer), the worker woken, 200."""
    accepted = await request.app[INTAKE].write(Delivery(source, shop, key, topic, body))
    log.info("webhook.received", source=source, shop=shop, topic=topic, event_id=accepted.event_id,
             duplicate=accepted.duplicate)
    if not accepted.duplicate and WAKE in request.app:
        request.app[WAKE].set()
    return web.json_response({"received": True, "duplicate": accepted.duplicate})


async def woocommerce_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await _raw_body(request)
    if body is None:
        return web.json_response({"error": "payload_too_large"}, status=413)
    topic = request.headers.get("X-WC-Webhook-Topic", "").strip().lower()
    if not topic and _WOOCOMMERCE_PING.fullmatch(body):
        # Sent once when the merchant saves the webhook, unsigned: answered, nothing written.
        log.info("webhook.ping", source=WOOCOMMERCE)
        return web.json_response({"received": True, "ping": True})
    secret = settings.woocommerce_webhook_secret
    if secret is None or not _signature_ok(secret, body, request.headers.get("X-WC-Webhook-Signature", "")):
        log.warning("webhook.refused", source=WOOCOMMERCE, configured=secret is not None,
                    had_signature=bool(request.headers.get("X-WC-Webhook-Signature")))
        _refused(request, WOOCOMMERCE, _site(request.headers.get("X-WC-Webhook-Source", "")))
        return web.json_response({"error": "unauthorized"}, status=401)
    shop = _site(request.headers.get("X-WC-Webhook-Source", ""))
    if topic not in WOOCOMMERCE_TOPICS:
        log.info("webhook.ignored_topic", source=WOOCOMMERCE, shop=shop, topic=topic[:100] or None)
        return web.json_response({"received": True, "ignored": "topic not handled"})
    key = woocommerce_delivery_key(topic, body)
    return await _accept(request, WOOCOMMERCE, shop, key, topic, body)


MAX_REFUSAL_KEYS = 100  # unknown shops are whatever a caller writes: the record stays small


def _refused(request: web.Request, source: str, shop: str) -> None:
    refusals = request.app[WEBHOOK_REFUSALS]
    key = (source, shop[:100])
    if key not in refusals and len(refusals) >= MAX_REFUSAL_KEYS:
        key = (source, "(other shops)")
    count, _ = refusals.get(key, (0, None))
    refusals[key] = (count + 1, clock.now())


def _site(source: str) -> str:
    """The store's site as WooCommerce names it (X-WC-Webhook-Source), without scheme and trailing slash."""
    site = source.strip().lower().split("://", 1)[-1].rstrip("/")
    return site[:255] or "woocommerce"


def _signature_ok(secret: str, body: bytes, given: str) -> bool:
    """Shopify's and WooCommerce's signature alike: base64(HMAC-SHA256(secret, raw body))."""
    expected = base64.b64encode(hmac.digest(secret.encode(), body, "sha256"))  # one-shot: OpenSSL's, no HMAC object
    # compare_digest on bytes: constant time whatever the input.
    return hmac.compare_digest(expected, given.strip().encode("utf-8", errors="replace"))


async def _raw_body(request: web.Request) -> Optional[bytes]:
    """The body as sent (the signature is over these bytes); None past MAX_WEBHOOK_BYTES."""
    if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            return None
    return bytes(body)


class WriterTurns:
    """The web app's two writers of the inbox, the intake and the worker, take turns at SQLite's one write lock
    through this. While deliveries are being acknowledged (from the first that waits to be written until none
    has come for INTAKE_QUIET_SECONDS) the worker waits before its next write, but never longer than
    MAX_WORKER_WAIT_SECONDS: a steady stream of deliveries must not stop the applying. Whoever waits is woken
    the moment the other's transaction ends, instead of polling in SQLite's busy handler (which sleeps up to
    100 ms between tries). Other processes (the CLI, another replica) still meet at SQLite's lock. On
    PostgreSQL, where writers do not exclude each other, nobody waits here.

    Made of multiprocessing's primitives (spawn's), so that the worker may apply in a child process of the web
    app (bot/web/store_events_process.py) and still take its turns; they work between threads alike."""

    def __init__(self, serial: bool) -> None:
        self.serial = serial
        self._changed = SPAWN.Condition()
        # Shared memory, read and written only under _changed's lock.
        self._holder = SPAWN.RawValue("b", _NOBODY)
        self._intake_active = SPAWN.RawValue("b", 0)
        self._intake_idle_since = SPAWN.RawValue("d", 0.0)  # time.monotonic(): one clock for the whole machine

    def intake_active(self, active: bool) -> None:
        """Deliveries are waiting to be written or being written (True), or none is left (False)."""
        with self._changed:
            self._intake_active.value = int(active)
            if not active:
                self._intake_idle_since.value = time.monotonic()
            self._changed.notify_all()

    @contextmanager
    def intake(self) -> Iterator[None]:
        if not self.serial:
            yield
            return
        with self._changed:
            self._changed.wait_for(lambda: self._holder.value == _NOBODY)
            self._holder.value = _INTAKE
        try:
            yield
        finally:
            self._done()

    @contextmanager
    def worker(self) -> Iterator[None]:
        if not self.serial:
            yield
            return
        deadline = time.monotonic() + MAX_WORKER_WAIT_SECONDS
        with self._changed:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self._holder.value != _NOBODY or self._intake_active.value:
                    self._changed.wait(left)
                    continue
                # Deliveries arriving together leave gaps of a few ms between their writes: only a pause
                # of INTAKE_QUIET_SECONDS means the burst is over.
                quiet = time.monotonic() - self._intake_idle_since.value
                if quiet >= INTAKE_QUIET_SECONDS:
                    break
                self._changed.wait(min(left, INTAKE_QUIET_SECONDS - quiet))
            self._changed.wait_for(lambda: self._holder.value == _NOBODY)
            self._holder.value = _WORKER
        try:
            yield
        finally:
            self._done()

    def worker_died(self) -> None:
        """The worker's process died, perhaps inside its turn: the turn is free again (SQLite has already
        released the dead process's lock)."""
        with self._changed:
            if self._holder.value == _WORKER:
                self._holder.value = _NOBODY
            self._changed.notify_all()

    def _done(self) -> None:
        with self._changed:
            self._holder.value = _NOBODY
            self._changed.notify_all()


class IntakeWriter:
    """Writes verified deliveries to the inbox: those that arrive while a write is under way wait for the next
    one and go in together, so a burst costs a few commits instead of one each (SQLite has one writer at a
    time and every commit is a disk flush). A delivery's request is answered only after its batch committed;
    a batch that fails fails each of its requests (500: the store sends them again)."""

    def __init__(self, app: web.Application, turns: WriterTurns) -> None:
        self.app = app
        self.turns = turns
        self.waiting: List[Tuple[Delivery, "asyncio.Future[Accepted]"]] = []
        self.writing = False

    async def write(self, delivery: Delivery) -> Accepted:
        future: "asyncio.Future[Accepted]" = asyncio.get_running_loop().create_future()
        self.waiting.append((delivery, future))
        if not self.writing:
            self.writing = True
            self.turns.intake_active(True)
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_INTAKE_BATCH], self.waiting[MAX_INTAKE_BATCH:]
                items = [delivery for delivery, _ in batch]
                try:
                    results = await in_executor(self.app, lambda: self._write(items))
                except Exception as error:  # noqa: BLE001 - each request answers it (500)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), accepted in zip(batch, results):
                    if not future.done():
                        future.set_result(accepted)
        finally:
            self.writing = False
            self.turns.intake_active(False)

    def _write(self, items: List[Delivery]) -> List[Accepted]:
        with self.turns.intake():
            return transaction(lambda session: accept_deliveries(session, items, clock.now()), write=True,
                               database=self.app[DATABASE])


INTAKE = web.AppKey("store_events_intake", IntakeWriter)


# --- the inbox worker --------------------------------------------------------------------------------


def setup_store_events_worker(app: web.Application, *, in_child_process: bool = False) -> None:
    """Apply the inbox's due events while the app runs: at once when a delivery arrives, and every
    POLL_SECONDS for retries that came due. Several web app replicas may run it: events are claimed.
    Acknowledging comes first: the worker steps aside while deliveries are being written. With
    `in_child_process` (the served web app) the applying runs in a child process
    (bot/web/store_events_process.py); otherwise on the app's threads (an app made in a test, with its own
    clock, program or in-memory database)."""
    turns = WriterTurns(serial=app[DATABASE].engine.dialect.name == "sqlite")
    app[INTAKE] = IntakeWriter(app, turns)
    app.cleanup_ctx.append(_running_worker(in_child_process))


def _running_worker(in_child_process: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        wake = asyncio.Event()
        app[WAKE] = wake
        turns = app[INTAKE].turns
        child = ChildProcessApplier(app[SETTINGS], turns) if in_child_process else None
        if child is not None:
            apply: Callable[[int], Awaitable[Dict[str, int]]] = child.apply_due
        else:
            topics = store_topics(StoreContext(app[DATABASE], app[PROGRAM], app[SETTINGS], clock.now))
            unfinished: Set[int] = set()

            async def apply(limit: int) -> Dict[str, int]:
                return (await in_executor(app, lambda: apply_due(app[DATABASE], topics, clock.now, limit=limit,
                                                                 turn=turns.worker, unfinished=unfinished))).as_dict()

        task = asyncio.ensure_future(_work(app, wake, apply))
        app[WORKER] = task
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        if child is not None:
            await asyncio.get_running_loop().run_in_executor(None, child.close)

    return context


async def _work(app: web.Application, wake: asyncio.Event,
                apply: Callable[[int], Awaitable[Dict[str, int]]]) -> None:
    loop = asyncio.get_running_loop()
    pruned_at = 0.0
    while True:
        try:
            counts = await apply(WORKER_BATCH)
            if counts["claimed"]:
                log.info("store_events.applied", **counts)
                continue  # more may be due
            if loop.time() - pruned_at > PRUNE_EVERY_SECONDS:
                pruned_at = loop.time()
                await transaction_in_thread(lambda session: forget_old_events(session, clock.now()), write=True,
                                            database=app[DATABASE], executor=app[EXECUTOR])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the database may be down: logged, tried again at the next poll
            log.exception("store_events.worker_failed")
        try:
            await asyncio.wait_for(wake.wait(), POLL_SECONDS)
        except asyncio.TimeoutError:
            pass
        wake.clear()
