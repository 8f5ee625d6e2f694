"""The channels' short-lived state, in memory and in a real Redis."""
from __future__ import annotations

import asyncio
import uuid
from typing import AsyncIterator

import pytest

from bot.channel_state import ChannelState, MemoryChannelState, RedisChannelState
from tests.services import REDIS_URL, require_service


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[ChannelState]:
    if request.param == "memory":
        store: ChannelState = MemoryChannelState()
    else:
        require_service("Redis", 6379)
        store = RedisChannelState(REDIS_URL)
    yield store
    await store.close()


def fresh(name: str) -> str:
    return f"test:{name}:{uuid.uuid4().hex}"


async def test_first_time_is_true_once_even_for_concurrent_callers(state: ChannelState) -> None:
    key = fresh("update")
    results = await asyncio.gather(*(state.first_time(key, 60) for _ in range(20)))
    assert results.count(True) == 1
    assert await state.first_time(key, 60) is False
    assert await state.first_time(fresh("other"), 60) is True


async def test_values_can_be_put_read_and_deleted(state: ChannelState) -> None:
    key = fresh("value")
    assert await state.get(key) is None
    await state.put(key, "/redeem_reward{\"reward\": \"ten-off\"}", 60)
    assert await state.get(key) == "/redeem_reward{\"reward\": \"ten-off\"}"
    await state.delete(key)
    assert await state.get(key) is None


async def test_a_queue_keeps_order_drops_the_oldest_beyond_its_size_and_empties_when_taken(state: ChannelState) -> None:
    key = fresh("pending")
    for number in range(5):
        await state.push(key, {"text": f"message {number}"}, 60, max_items=3)
    assert await state.pop_all(key) == [{"text": "message 2"}, {"text": "message 3"}, {"text": "message 4"}]
    assert await state.pop_all(key) == []


async def test_a_counter_counts_concurrent_increments_and_expires_from_the_first(state: ChannelState) -> None:
    key = fresh("attempts")
    counts = await asyncio.gather(*(state.increment(key, 60) for _ in range(10)))
    assert sorted(counts) == list(range(1, 11))
    assert await state.increment(key, 60) == 11
    await state.delete(key)
    assert await state.increment(key, 60) == 1


async def test_a_memory_counter_expires() -> None:
    now = [1000.0]
    store = MemoryChannelState(clock=lambda: now[0])
    assert [await store.increment("n", 10) for _ in range(2)] == [1, 2]
    now[0] += 11
    assert await store.increment("n", 10) == 1


async def test_memory_entries_expire_and_the_oldest_go_beyond_capacity() -> None:
    now = [1000.0]
    store = MemoryChannelState(capacity=2, clock=lambda: now[0])
    assert await store.first_time("a", 10)
    now[0] += 11
    assert await store.first_time("a", 10), "expired keys are new again"
    await store.put("b", "2", 100)
    await store.put("c", "3", 100)
    assert await store.get("b") == "2" and await store.get("c") == "3"
    assert await store.first_time("a", 10), "the oldest entry was dropped beyond capacity"


async def test_redis_entries_carry_their_time_to_live() -> None:
    require_service("Redis", 6379)
    store = RedisChannelState(REDIS_URL)
    key = fresh("ttl")
    await store.put(key, "x", 30)
    ttl = await store._redis.ttl("rapport:channel:" + key)
    await store.close()
    assert 0 < ttl <= 30
