"""Run fake platform servers on a background event loop, for tests whose servers under test are other
processes (end-to-end) or whose own loop changes from test to test."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, Dict, Optional, TypeVar

T = TypeVar("T")


class ThreadedServers:
    """Fakes with async start()/stop(), started on one loop in a daemon thread."""

    def __init__(self, **servers: Any) -> None:
        self.servers: Dict[str, Any] = servers
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "ThreadedServers":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="platform-fakes", daemon=True)
        self._thread.start()
        for server in self.servers.values():
            self.call(server.start())
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the fakes' loop (their state is only touched there)."""
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is None:
            return
        for server in self.servers.values():
            self.call(server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None
