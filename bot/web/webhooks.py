"""Store webhooks in: `POST /webhooks/shopify` checks the shop's signature on the raw body before reading
anything of it (401 and nothing written otherwise), writes the delivery to the inbox once per event id and
answers 200 at once; the inbox worker running in the web app applies it (bot/integrations/).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from typing import AsyncIterator, Optional

from aiohttp import web

from bot import clock
from bot.app_context import DATABASE, EXECUTOR, PROGRAM, SETTINGS, in_executor
from bot.db import transaction_in_thread
from bot.integrations import StoreContext, store_topics
from bot.integrations.inbox import Topics, accept_delivery, apply_due, delivery_key_of, forget_old_events
from bot.integrations.shopify import SOURCE as SHOPIFY, TOPICS as SHOPIFY_TOPICS
from bot.log import get_logger

log = get_logger(__name__)

# Shopify's order payloads can be far larger than the store API's bodies (hundreds of lines).
MAX_WEBHOOK_BYTES = 4 * 1024 * 1024
WORKER = web.AppKey("store_events_worker", asyncio.Task)
WAKE = web.AppKey("store_events_wake", asyncio.Event)
# The worker looks for due retries this often even when no delivery woke it.
POLL_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 3600.0


async def shopify_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    shop = request.headers.get("X-Shopify-Shop-Domain", "").strip().lower()[:255]
    secret = settings.shopify_secret(shop) if shop else None
    body = await _raw_body(request)
    if body is None:
        return web.json_response({"error": "payload_too_large"}, status=413)
    if secret is None or not _shopify_signature_ok(secret, body, request.headers.get("X-Shopify-Hmac-Sha256", "")):
        log.warning("webhook.refused", source=SHOPIFY, shop=shop or None, known_shop=secret is not None,
                    had_signature=bool(request.headers.get("X-Shopify-Hmac-Sha256")))
        return web.json_response({"error": "unauthorized"}, status=401)
    topic = request.headers.get("X-Shopify-Topic", "").strip().lower()
    if topic not in SHOPIFY_TOPICS:
        log.info("webhook.ignored_topic", source=SHOPIFY, shop=shop, topic=topic[:100] or None)
        return web.json_response({"received": True, "ignored": "topic not handled"})
    key = delivery_key_of(request.headers.get("X-Shopify-Event-Id") or request.headers.get("X-Shopify-Webhook-Id"),
                          body)
    accepted = await transaction_in_thread(
        lambda session: accept_delivery(session, SHOPIFY, shop, key, topic, body, clock.now()),
        write=True, database=request.app[DATABASE], executor=request.app[EXECUTOR])
    log.info("webhook.received", source=SHOPIFY, shop=shop, topic=topic, event_id=accepted.event_id,
             duplicate=accepted.duplicate)
    if not accepted.duplicate and WAKE in request.app:
        request.app[WAKE].set()
    return web.json_response({"received": True, "duplicate": accepted.duplicate})


def _shopify_signature_ok(secret: str, body: bytes, given: str) -> bool:
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
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


# --- the inbox worker --------------------------------------------------------------------------------


def setup_store_events_worker(app: web.Application) -> None:
    """Apply the inbox's due events while the app runs: at once when a delivery arrives, and every
    POLL_SECONDS for retries that came due. Several web app replicas may run it: events are claimed."""
    app.cleanup_ctx.append(_running_worker)


async def _running_worker(app: web.Application) -> AsyncIterator[None]:
    wake = asyncio.Event()
    app[WAKE] = wake
    context = StoreContext(app[DATABASE], app[PROGRAM], app[SETTINGS], clock.now)
    topics = store_topics(context)
    task = asyncio.ensure_future(_work(app, wake, topics))
    app[WORKER] = task
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def _work(app: web.Application, wake: asyncio.Event, topics: Topics) -> None:
    loop = asyncio.get_running_loop()
    pruned_at = 0.0
    while True:
        try:
            counts = await in_executor(app, lambda: apply_due(app[DATABASE], topics, clock.now))
            if counts.claimed:
                log.info("store_events.applied", **counts.as_dict())
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
