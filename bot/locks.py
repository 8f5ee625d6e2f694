"""Per-conversation locks shared by every Rasa replica: a Redis ticket lock whose every step is one Lua script.

Rasa's own RedisLockStore reads the lock, adds a ticket in Python and writes it back: two replicas that
read at once issue the same ticket and both go in. Here issuing, acquiring, renewing and releasing a
ticket are each one script, which Redis runs atomically:

- tickets come from INCR, never below the Redis server's clock in microseconds, so they only grow, even
  after Redis restarts with no data: a ticket is also a fencing token (bot/conversation_stores.py refuses a
  tracker save carrying a ticket older than one already saved);
- the queue is a sorted set of tickets: the lowest live ticket holds the lock (FIFO per conversation);
- every ticket is a lease (its expiry, on Redis's clock, in a hash): the holder renews it in the background
  and waiters renew theirs each time they poll, so only a replica that died (or stalled for a whole lease)
  loses its place. A holder whose lease ran out cannot write: the fence stops its save.

The ticket being served is published to the task in CURRENT_TICKET, where the tracker store reads its fence.
"""
from __future__ import annotations

import asyncio
import contextvars
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Optional, Tuple

import redis.asyncio as aioredis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, LockStore
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.log import get_logger

log = get_logger(__name__)

KEY_PREFIX = "rapport:lock:"
DEFAULT_LEASE_SECONDS = 10.0
# Keys of a conversation nobody has locked for this long are dropped by Redis (the ticket counter too:
# the clock floor keeps new tickets above old ones).
KEYS_TTL_SECONDS = 24 * 3600
FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.05
# How long a turn waits for Redis to come back (a restart) before it fails.
REDIS_OUTAGE_SECONDS = 8.0
# Waiting for the lock at all: Rasa's own lock has no bound; a conversation stuck this long is an incident.
MAX_WAIT_SECONDS = 120.0

# (conversation id, ticket) being served in this task; the tracker store fences its save with it.
CURRENT_TICKET: contextvars.ContextVar[Optional[Tuple[str, int]]] = contextvars.ContextVar(
    "rapport_current_ticket", default=None
)

# KEYS: seq, queue (zset ticket->ticket), expiry (hash ticket->ms). ARGV: lease ms, keys ttl ms.
_ISSUE = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local now_ms = math.floor(now_us / 1000)
local t = redis.call('INCR', KEYS[1])
if t < now_us then
  t = now_us
  redis.call('SET', KEYS[1], string.format('%.0f', t))
end
local ts = string.format('%.0f', t)
redis.call('ZADD', KEYS[2], ts, ts)
redis.call('HSET', KEYS[3], ts, string.format('%.0f', now_ms + tonumber(ARGV[1])))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return ts
"""

# KEYS as above. ARGV: ticket, lease ms, keys ttl ms. Returns 1 = holds the lock, 0 = waiting,
# -1 = the ticket is gone (its lease ran out).
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local mine = redis.call('HGET', KEYS[3], ARGV[1])
if (not mine) or tonumber(mine) < now_ms then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return -1
end
local head
while true do
  local first = redis.call('ZRANGE', KEYS[2], 0, 0)
  head = first[1]
  if head == ARGV[1] then break end
  local expires = redis.call('HGET', KEYS[3], head)
  if expires and tonumber(expires) >= now_ms then break end
  redis.call('ZREM', KEYS[2], head)
  redis.call('HDEL', KEYS[3], head)
end
redis.call('HSET', KEYS[3], ARGV[1], string.format('%.0f', now_ms + tonumber(ARGV[2])))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
if head == ARGV[1] then return 1 end
return 0
"""

# KEYS as above. ARGV: ticket, lease ms. 1 = renewed, 0 = the lease had already run out.
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local mine = redis.call('HGET', KEYS[3], ARGV[1])
if (not mine) or tonumber(mine) < now_ms then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], string.format('%.0f', now_ms + tonumber(ARGV[2])))
return 1
"""

# KEYS: queue, expiry. ARGV: ticket.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""


@dataclass(frozen=True)
class _Keys:
    seq: str
    queue: str
    expiry: str

    @property
    def all(self) -> Tuple[str, str, str]:
        return (self.seq, self.queue, self.expiry)


class LockLost(LockError):
    """The ticket's lease ran out before it was served (its replica stalled for a whole lease)."""


class RedisTicketLockStore(LockStore):
    """Rasa lock store (endpoints.yml via bot.conversation_stores) with atomic FIFO tickets; see module doc."""

    def __init__(
        self,
        url: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        key_prefix: str = KEY_PREFIX,
        client: Optional[aioredis.Redis] = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.lease_ms = int(lease_seconds * 1000)
        self.key_prefix = key_prefix
        self._client = client
        self._scripts: dict = {}

    # Rasa's polling API over TicketLock objects is not used: lock() is the whole protocol.
    def get_lock(self, conversation_id: str) -> Optional[TicketLock]:
        return None

    def delete_lock(self, conversation_id: str) -> None:
        return None

    def save_lock(self, lock: TicketLock) -> None:
        return None

    @property
    def client(self) -> aioredis.Redis:
        # Made on first use, inside the server's event loop.
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
            )
        return self._client

    def _keys(self, conversation_id: str) -> _Keys:
        # One hash tag per conversation, so a Redis Cluster keeps a conversation's keys on one node.
        base = f"{self.key_prefix}{{{conversation_id}}}"
        return _Keys(base + ":seq", base + ":queue", base + ":expiry")

    async def _run(self, name: str, source: str, keys: Tuple[str, ...], *args: object) -> object:
        """One script, retried while Redis is unreachable (a restart) for up to REDIS_OUTAGE_SECONDS."""
        deadline = time.monotonic() + REDIS_OUTAGE_SECONDS
        delay = 0.05
        while True:
            try:
                script = self._scripts.get(name)
                if script is None:
                    script = self._scripts[name] = self.client.register_script(source)
                return await script(keys=list(keys), args=list(args))
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if time.monotonic() + delay > deadline:
                    raise LockError(f"the lock store is unreachable: {error}") from error
                log.warning("lock.redis_unavailable", script=name, error=str(error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def issue(self, conversation_id: str) -> int:
        keys = self._keys(conversation_id)
        ticket = await self._run("issue", _ISSUE, keys.all, self.lease_ms, KEYS_TTL_SECONDS * 1000)
        return int(ticket)  # type: ignore[arg-type]

    async def try_acquire(self, conversation_id: str, ticket: int) -> int:
        keys = self._keys(conversation_id)
        result = await self._run("acquire", _ACQUIRE, keys.all, str(ticket), self.lease_ms, KEYS_TTL_SECONDS * 1000)
        return int(result)  # type: ignore[arg-type]

    async def renew(self, conversation_id: str, ticket: int) -> bool:
        keys = self._keys(conversation_id)
        return int(await self._run("renew", _RENEW, keys.all, str(ticket), self.lease_ms)) == 1  # type: ignore[arg-type]

    async def release(self, conversation_id: str, ticket: int) -> None:
        keys = self._keys(conversation_id)
        await self._run("release", _RELEASE, (keys.queue, keys.expiry), str(ticket))

    async def acquire(self, conversation_id: str, ticket: int) -> None:
        """Waits until `ticket` is the oldest live one. Raises LockLost if its lease ran out meanwhile."""
        delay = FIRST_POLL_SECONDS
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while True:
            state = await self.try_acquire(conversation_id, ticket)
            if state == 1:
                return
            if state == -1:
                raise LockLost(f"the lock ticket of conversation {conversation_id!r} expired while waiting")
            if time.monotonic() > deadline:
                raise LockError(f"waited {MAX_WAIT_SECONDS:.0f} s for the lock of conversation {conversation_id!r}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)

    async def _keep_renewing(self, conversation_id: str, ticket: int) -> None:
        interval = self.lease_ms / 1000 / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.renew(conversation_id, ticket):
                    log.error("lock.lease_lost", conversation=conversation_id, ticket=ticket)
                    return
            except LockError as error:
                log.error("lock.renew_failed", conversation=conversation_id, error=str(error))

    @asynccontextmanager
    async def lock(  # type: ignore[override]
        self, conversation_id: str, lock_lifetime: float = 0, wait_time_in_seconds: float = 0
    ) -> AsyncIterator[TicketLock]:
        """Holds the conversation's lock for the block (Rasa's lock_lifetime / wait time are not used:
        the lease is renewed while the block runs, and waiters poll in milliseconds)."""
        ticket = await self.issue(conversation_id)
        renewing: Optional[asyncio.Task] = None
        token = None
        try:
            await self.acquire(conversation_id, ticket)
            renewing = asyncio.ensure_future(self._keep_renewing(conversation_id, ticket))
            token = CURRENT_TICKET.set((conversation_id, ticket))
            yield TicketLock(conversation_id)
        finally:
            if token is not None:
                CURRENT_TICKET.reset(token)
            if renewing is not None:
                renewing.cancel()
            try:
                await self.release(conversation_id, ticket)
            except LockError as error:  # the lease runs out by itself
                log.warning("lock.release_failed", conversation=conversation_id, error=str(error))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def current_fence(conversation_id: str) -> Optional[int]:
    """The ticket this task holds for `conversation_id`, if it holds one."""
    held = CURRENT_TICKET.get()
    if held is None or held[0] != conversation_id:
        return None
    return held[1]
