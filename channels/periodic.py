"""A job a channel's process runs every few seconds while started (the team's replies, the outbox): start, stop,
and a loop that backs off while the store is unreachable."""
from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Dict, Optional

from bot.log import get_logger

log = get_logger(__name__)


class PeriodicTask(ABC):
    """Runs `run_once()` every `interval` seconds while started; after failures the wait doubles, up to
    `max_delay`. Subclasses set `interval` and name the task and its failure log event."""

    interval: float
    max_delay: float = 60.0
    _task: Optional["asyncio.Task[None]"] = None

    @abstractmethod
    async def run_once(self) -> int:
        """One tick; how much it did."""

    @abstractmethod
    def task_name(self) -> str:
        """The asyncio task's name, also the log event's prefix ("instagram-outbox")."""

    def log_fields(self) -> Dict[str, Any]:
        return {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.interval > 0 and not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # cancelled while stopping: nothing more to do
                pass

    async def _run(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(min(self.interval * 2 ** min(failures, 6), self.max_delay))
            try:
                await self.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the store unreachable: next tick, backing off
                failures += 1
                log.warning("periodic.tick_failed", task=self.task_name(), failures=failures, exc_info=True,
                            **self.log_fields())
