"""What every part of the web app (store API, referral redirects, the merchant console) reads from the aiohttp
application — its settings, database, program and worker threads — how a handler runs store work off the
event loop (one transaction on the app's threads: a request that fails writes nothing), and who the client
is behind our proxies. bot/web builds the app; bot/web and bot/console both import this, not each other."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from bot.db import Database, transaction_in_thread
from bot.loyalty.program import Program
from bot.settings import Settings

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
# A function rather than a Program: by default the program file is re-read when a merchant edits it.
PROGRAM = web.AppKey[Callable[[], Program]]("program")
# Store webhook deliveries this process refused (bad or missing signature, unknown shop), by (source, shop):
# (how many, the latest's time). The webhook handlers write it, the console's Integrations page reads it.
WEBHOOK_REFUSALS = web.AppKey("webhook_refusals", dict)


async def in_executor(app: web.Application, work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], work)


async def in_store(request: web.Request, work: Callable[[Session, Program], T], *, write: bool) -> T:
    """`work(session, program)` in one transaction on a worker thread; its result, or its exception."""
    app = request.app
    return await transaction_in_thread(lambda session: work(session, app[PROGRAM]()), write=write,
                                       database=app[DATABASE], executor=app[EXECUTOR])


def client_ip(request: web.Request, settings: Settings) -> Optional[str]:
    """The visitor's address: the connection's, or behind TRUSTED_PROXY_HOPS = N proxies that each append
    the address they were reached from, the Nth X-Forwarded-For entry from the right — the one our outermost
    proxy wrote. Entries left of it come from the client, who can write anything there. With fewer entries
    than N the request did not come through all our proxies: the connection's address."""
    hops = settings.trusted_proxy_hops
    if hops:
        # Several X-Forwarded-For headers are one list, in order.
        entries = [entry.strip() for entry in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
        if len(entries) >= hops and entries[-hops]:
            return entries[-hops]
    return request.remote
