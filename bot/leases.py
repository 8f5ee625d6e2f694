"""Leases: which one of several processes does a job (the web app's scheduled jobs run in one replica).

RedisLease (REDIS_URL set): the holder is whoever SET the key NX with its random token; it renews the
lease (compare-and-PEXPIRE in one Lua script) every third of its time to live, so a holder that dies
loses it within one TTL and a standby takes over at its next try. Renewal and release check the token:
a process never extends or drops a lease it no longer holds. LocalLease: one process, always the holder.
"""
from __future__ import annotations

import asyncio
import secrets
from typing import Optional, Protocol

import redis.asyncio as aioredis

from bot.log import get_logger

log = get_logger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease(Protocol):
    held: bool

    async def refresh(self) -> bool:
        """Take the lease if free, renew it if ours; whether we hold it now."""

    async def release(self) -> None: ...


class LocalLease:
    """A single process: it always holds the lease."""

    held = True

    async def refresh(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class RedisLease:
    def __init__(self, url: str, name: str, ttl_seconds: float = 30.0,
                 client: Optional[aioredis.Redis] = None) -> None:
        self.key = f"rapport:lease:{name}"
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = secrets.token_hex(16)
        self.held = False
        self._url = url
        self._client = client

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self._url, socket_timeout=3, socket_connect_timeout=2)
        return self._client

    async def refresh(self) -> bool:
        was_held = self.held
        try:
            if self.held and int(await self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)) == 1:
                self.held = True
            else:
                self.held = bool(await self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except (OSError, aioredis.RedisError) as error:
            # Unreachable: we cannot know whether it is still ours, so act as if it is not.
            log.warning("lease.unreachable", lease=self.key, error=str(error))
            self.held = False
        if self.held != was_held:
            log.info("lease.acquired" if self.held else "lease.lost", lease=self.key)
        return self.held

    async def release(self) -> None:
        if self.held:
            try:
                await self.client.eval(_RELEASE, 1, self.key, self.token)
            except (OSError, aioredis.RedisError):
                pass  # it runs out by itself
            self.held = False
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def keep(self, stop: asyncio.Event) -> None:
        """Refresh every third of the TTL until `stop` is set."""
        interval = self.ttl_ms / 1000 / 3
        while not stop.is_set():
            await self.refresh()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass


def lease_for(redis_url: Optional[str], name: str, ttl_seconds: float = 30.0) -> "Lease":
    return RedisLease(redis_url, name, ttl_seconds) if redis_url else LocalLease()
