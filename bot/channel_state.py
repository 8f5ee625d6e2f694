"""Short-lived state the channels keep between requests: seen update ids (replay protection), long
button payloads behind short keys, when a shopper last wrote, messages waiting for a shopper.

Two stores with one interface, chosen from the settings like the tracker store
(bot/conversation_stores.py):
  REDIS_URL set → RedisChannelState: shared by every Rasa process and kept across restarts;
  otherwise     → MemoryChannelState: one process (the `make run` default), bounded, lost on restart.

Keys are namespaced by the caller ("telegram:update:…"); every entry has a time to live, so nothing
grows without bound.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from bot.settings import Settings

KEY_PREFIX = "rapport:channel:"


class ChannelState(Protocol):
    async def first_time(self, key: str, ttl_seconds: int) -> bool:
        """True the first time `key` is seen within its time to live (atomic: of two concurrent callers
        exactly one gets True)."""

    async def put(self, key: str, value: str, ttl_seconds: int) -> None: ...

    async def get(self, key: str) -> Optional[str]: ...

    async def increment(self, key: str, ttl_seconds: int) -> int:
        """Add one to the counter at `key` (0 when absent) and return it; the time to live starts at the first
        increment."""

    async def delete(self, key: str) -> None: ...

    async def push(self, key: str, value: Any, ttl_seconds: int, max_items: int) -> None:
        """Append a JSON-able value to the list at `key` (the oldest dropped beyond `max_items`)."""

    async def pop_all(self, key: str) -> List[Any]:
        """Take every value of the list at `key`, oldest first, and empty it (atomic)."""

    async def close(self) -> None: ...


Clock = Callable[[], float]


class MemoryChannelState:
    """In-process store: bounded (the oldest entries go first) with per-entry expiry."""

    def __init__(self, capacity: int = 100_000, clock: Clock = time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._items: "OrderedDict[str, Tuple[float, Any]]" = OrderedDict()

    def _live(self, key: str) -> Optional[Any]:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._items[key]
            return None
        return value

    def _set(self, key: str, value: Any, ttl_seconds: int) -> None:
        self._items.pop(key, None)
        self._items[key] = (self._clock() + ttl_seconds, value)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    async def first_time(self, key: str, ttl_seconds: int) -> bool:
        if self._live(key) is not None:
            return False
        self._set(key, "1", ttl_seconds)
        return True

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self._set(key, value, ttl_seconds)

    async def get(self, key: str) -> Optional[str]:
        value = self._live(key)
        return value if isinstance(value, str) else None

    async def increment(self, key: str, ttl_seconds: int) -> int:
        current = self._live(key)
        if isinstance(current, int):
            expires, _ = self._items[key]
            self._items[key] = (expires, current + 1)
            return current + 1
        self._set(key, 1, ttl_seconds)
        return 1

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def push(self, key: str, value: Any, ttl_seconds: int, max_items: int) -> None:
        current = self._live(key)
        items: List[str] = list(current) if isinstance(current, list) else []
        items.append(json.dumps(value))
        self._set(key, items[-max_items:], ttl_seconds)

    async def pop_all(self, key: str) -> List[Any]:
        current = self._live(key)
        self._items.pop(key, None)
        return [json.loads(item) for item in current] if isinstance(current, list) else []

    async def close(self) -> None:
        self._items.clear()


class RedisChannelState:
    """Redis store (redis.asyncio): SET NX EX for first_time, lists for queues."""

    def __init__(self, url: str) -> None:
        from redis import asyncio as redis_asyncio

        self._redis = redis_asyncio.Redis.from_url(url, decode_responses=True)

    async def first_time(self, key: str, ttl_seconds: int) -> bool:
        return bool(await self._redis.set(KEY_PREFIX + key, "1", nx=True, ex=ttl_seconds))

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        await self._redis.set(KEY_PREFIX + key, value, ex=ttl_seconds)

    async def get(self, key: str) -> Optional[str]:
        return await self._redis.get(KEY_PREFIX + key)

    async def increment(self, key: str, ttl_seconds: int) -> int:
        name = KEY_PREFIX + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, ttl_seconds, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def delete(self, key: str) -> None:
        await self._redis.delete(KEY_PREFIX + key)

    async def push(self, key: str, value: Any, ttl_seconds: int, max_items: int) -> None:
        name = KEY_PREFIX + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(name, json.dumps(value))
            pipe.ltrim(name, -max_items, -1)
            pipe.expire(name, ttl_seconds)
            await pipe.execute()

    async def pop_all(self, key: str) -> List[Any]:
        name = KEY_PREFIX + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(name, 0, -1)
            pipe.delete(name)
            items, _ = await pipe.execute()
        return [json.loads(item) for item in items]

    async def close(self) -> None:
        await self._redis.close()


_shared: Dict[str, ChannelState] = {}


def channel_state_for(settings: Settings) -> ChannelState:
    """The store for these settings, one per process (channels of one Rasa server share it)."""
    key = settings.redis_url or "memory"
    if key not in _shared:
        _shared[key] = RedisChannelState(settings.redis_url) if settings.redis_url else MemoryChannelState()
    return _shared[key]
