"""What handlers share: the app's settings, database and program, and service calls off the event loop.

The database drivers (sqlite3, psycopg2) block, so every service call runs in the app's thread pool,
inside one transaction (bot/db.py): a request that fails for any reason writes nothing.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

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


async def in_executor(app: web.Application, work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], work)


async def in_store(request: web.Request, work: Callable[[Session, Program], T], *, write: bool) -> T:
    """`work(session, program)` in one transaction on a worker thread; its result, or its exception."""
    app = request.app
    return await transaction_in_thread(lambda session: work(session, app[PROGRAM]()), write=write,
                                       database=app[DATABASE], executor=app[EXECUTOR])
