"""A job a channel's process runs every few seconds while started (the team's replies, the outbox, Telegram's
notices): start, a loop that backs off while the store or the platform is unreachable, and a stop that lets a
tick in progress finish sending what it has claimed."""
from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Dict, Optional

from bot.log import get_logger

log = get_logger(__name__)


class PeriodicTask(ABC):
    """Runs `run_once()` every `interval` seconds while started; after repeated failures the wait doubles, up to
    `max_delay`. `stop()` ends a sleeping loop at once and gives a running tick `stop_grace` seconds to finish
    (a tick that claims work in batches checks `stopping` between them) before cancelling it. Subclasses set
    `interval` and name the task, which also prefixes its log events."""

    interval: float
    max_delay: float = 60.0
    stop_grace: float = 5.0
    _task: Optional["asyncio.Task[None]"] = None
    _stopping: Optional[asyncio.Event] = None

    @abstractmethod
    async def run_once(self) -> int:
        """One tick; how much it did."""

    @abstractmethod
    def task_name(self) -> str:
        """The asyncio task's name, also its log events' prefix ("instagram-outbox")."""

    def log_fields(self) -> Dict[str, Any]:
        return {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stopping(self) -> bool:
        """stop() was called: a tick should not claim more work."""
        return self._stopping is not None and self._stopping.is_set()

    def start(self) -> None:
        if self.interval <= 0 or self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping), name=self.task_name())
        log.info("periodic.started", task=self.task_name(), interval=self.interval, **self.log_fields())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None or task.done():
            return
        assert self._stopping is not None
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_grace)
        except asyncio.TimeoutError:
            task.cancel()
            try:
                await task
            except BaseException:  # cancelled (or failed) while stopping: nothing more to do
                pass
        except BaseException:  # the tick failed as it ended: stopped all the same
            pass
        log.info("periodic.stopped", task=self.task_name(), **self.log_fields())

    def delay(self, failures: int) -> float:
        """The wait before the next tick: the interval, doubling from the second failure in a row on."""
        return min(self.interval * 2 ** min(max(failures - 1, 0), 16), max(self.max_delay, self.interval))

    async def _run(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), self.delay(failures))
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the store or the platform unreachable: next tick, backing off
                failures += 1
                log.warning("periodic.tick_failed", task=self.task_name(), failures=failures, exc_info=True,
                            **self.log_fields())
