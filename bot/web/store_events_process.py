"""The inbox worker's applying, in a child process of the web app. Applying one order is tens of milliseconds of
Python (the ORM, the ledger, tiers); on a thread of the web app it shared the interpreter lock with the event
loop acknowledging deliveries, which stretched it to about 150 ms — and a burst of acknowledgements waiting
for its turn at SQLite's write lock waited that long. The child has an interpreter of its own; the two still
take turns at the write lock through the process-shared WriterTurns. The web app keeps the loop (waking,
polling, pruning) and only sends "apply what is due"; a child that dies is replaced at the next run, and the
events it had claimed are claimed again when their claim lapses (bot/integrations/inbox.py CLAIM).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ContextManager, Dict, Optional, Protocol, Set

from bot import clock
from bot.db import Database
from bot.integrations import StoreContext, store_topics
from bot.integrations.inbox import Topics, apply_due
from bot.log import get_logger
from bot.loyalty.program import get_program
from bot.settings import Settings

log = get_logger(__name__)

PARENT_CHECK_SECONDS = 1.0
# Never fork the web app (it has threads and an event loop): the child and the primitives it shares are spawn's.
SPAWN = multiprocessing.get_context("spawn")


class WorkerTurns(Protocol):
    """The worker's side of the web app's WriterTurns (bot/web/webhooks.py)."""

    def worker(self) -> ContextManager[None]: ...

    def worker_died(self) -> None: ...


class ChildProcessApplier:
    """`apply_due` run in one child process, started at the first call."""

    def __init__(self, settings: Settings, turns: WorkerTurns) -> None:
        self.settings = settings
        self.turns = turns
        self._pool: Optional[ProcessPoolExecutor] = None

    async def apply_due(self, limit: int) -> Dict[str, int]:
        attempt = 1
        while True:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=SPAWN, initializer=_start_child,
                                                 initargs=(self.settings, self.turns, os.getpid()))
            try:
                return await asyncio.get_running_loop().run_in_executor(self._pool, _apply_due, limit)
            except BrokenProcessPool:
                # The child died (killed, out of memory): its turn is freed and a new child takes over. A child
                # that died while idle costs nothing; one that died applying leaves its claimed events to be
                # claimed again when the claim lapses.
                log.error("store_events.child_died", attempt=attempt)
                self._pool.shutdown(wait=False)
                self._pool = None
                self.turns.worker_died()
                if attempt == 2:
                    raise
                attempt += 1

    def close(self) -> None:
        """Let the running batch finish (it commits or rolls back) and stop the child."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --- in the child ------------------------------------------------------------------------------------------

_database: Optional[Database] = None
_topics: Optional[Topics] = None
_turns: Optional[WorkerTurns] = None
_unfinished: Set[int] = set()  # claimed, not finished when the database went away: released at the next run


def _start_child(settings: Settings, turns: WorkerTurns, parent_pid: int) -> None:
    global _database, _topics, _turns
    from bot.log import configure_logging  # the child's own output, as the web app's

    # Ctrl-C in a terminal reaches the whole process group: the web app decides when its child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging()
    _database = Database(settings.database_url)
    _topics = store_topics(StoreContext(_database, lambda: get_program(settings.program_file), settings, clock.now))
    _turns = turns
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """A web app killed with SIGKILL cannot stop its child: the child notices it was orphaned and leaves."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _apply_due(limit: int) -> Dict[str, int]:
    assert _database is not None and _topics is not None and _turns is not None
    return apply_due(_database, _topics, clock.now, limit=limit, turn=_turns.worker, unfinished=_unfinished).as_dict()


