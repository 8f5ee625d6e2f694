"""A TCP forwarder that can refuse connections for a while: `make chaos` puts the cluster's PostgreSQL
connections through one, so that "the database refuses connections for 10 s" is real (connections reset,
new ones refused) without stopping the PostgreSQL server other people share.

TcpProxy runs its own event loop in a thread: start(), outage(seconds) (closes the listening socket and
every open connection, reopens after `seconds`), stop().
"""
from __future__ import annotations

import asyncio
import threading
from typing import Optional, Set


class TcpProxy:
    def __init__(self, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: Set[asyncio.StreamWriter] = set()
        self.refusing = False

    def start(self) -> "TcpProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=10)
        return self

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port, reuse_address=True)
        self.refusing = False

    async def _close(self) -> None:
        self.refusing = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # reset, as a crashed server's connections would be
        self._writers.clear()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort() if self.refusing else writer.close()
                self._writers.discard(writer)

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    def outage(self, seconds: float) -> None:
        """Refuse (and reset) every connection for `seconds`; returns at once."""
        async def run() -> None:
            await self._close()
            await asyncio.sleep(seconds)
            await self._open()

        asyncio.run_coroutine_threadsafe(run(), self._loop)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
