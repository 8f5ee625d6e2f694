"""bot/locks.py against a real Redis: one holder at a time across "replicas" (separate clients), FIFO,
leases that only run out for a holder that stopped renewing, tickets that only grow; and the tracker
store's fence and append-only saves under concurrency (bot/conversation_stores.py)."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import List

import pytest
import redis.asyncio as aioredis
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

from bot.conversation_stores import AppendOnlySQLTrackerStore, StaleLockHolder
from bot.locks import CURRENT_TICKET, LockLost, RedisTicketLockStore
from tests.services import REDIS_URL, require_service

DOMAIN = Domain.from_dict({"intents": ["greet"]})


@pytest.fixture()
def redis_url() -> str:
    require_service("Redis", 6379)
    return REDIS_URL


def _prefix() -> str:
    return f"test:lock:{uuid.uuid4().hex[:8]}:"


async def test_one_holder_at_a_time_in_ticket_order_across_replicas(redis_url: str) -> None:
    prefix = _prefix()
    replicas = [RedisTicketLockStore(redis_url, key_prefix=prefix) for _ in range(3)]
    conversation = "one-conversation"
    inside = 0
    most_inside = 0
    served: List[int] = []
    issued: List[int] = []

    async def turn(store: RedisTicketLockStore) -> None:
        nonlocal inside, most_inside
        async with store.lock(conversation):
            _, ticket = CURRENT_TICKET.get()
            inside += 1
            most_inside = max(most_inside, inside)
            served.append(ticket)
            await asyncio.sleep(0.002)
            inside -= 1

    original_issue = RedisTicketLockStore.issue

    async def recording_issue(self: RedisTicketLockStore, conversation_id: str) -> int:
        ticket = await original_issue(self, conversation_id)
        issued.append(ticket)
        return ticket

    RedisTicketLockStore.issue = recording_issue  # type: ignore[assignment]
    try:
        await asyncio.gather(*(turn(replicas[index % 3]) for index in range(60)))
    finally:
        RedisTicketLockStore.issue = original_issue  # type: ignore[assignment]
    assert most_inside == 1
    assert len(set(issued)) == 60  # no ticket issued twice
    assert served == sorted(issued)  # served in the order the tickets were issued
    for store in replicas:
        await store.close()


async def test_a_dead_holders_lease_runs_out_and_the_next_ticket_goes_in(redis_url: str) -> None:
    prefix = _prefix()
    dead = RedisTicketLockStore(redis_url, lease_seconds=0.5, key_prefix=prefix)
    alive = RedisTicketLockStore(redis_url, lease_seconds=0.5, key_prefix=prefix)
    first = await dead.issue("c")
    assert await dead.try_acquire("c", first) == 1  # and then its replica dies: no renewal, no release
    second = await alive.issue("c")
    assert await alive.try_acquire("c", second) == 0
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(alive.acquire("c", second), timeout=3)  # polling renews the waiter's own lease
    assert asyncio.get_running_loop().time() - started >= 0.3
    # The dead holder, had it only stalled, finds its ticket gone: it cannot renew nor wait on.
    assert not await dead.renew("c", first)
    assert await dead.try_acquire("c", first) == -1
    await dead.close()
    await alive.close()


async def test_a_renewing_holder_keeps_the_lock_past_its_lease(redis_url: str) -> None:
    prefix = _prefix()
    holder = RedisTicketLockStore(redis_url, lease_seconds=0.3, key_prefix=prefix)
    waiter = RedisTicketLockStore(redis_url, lease_seconds=0.3, key_prefix=prefix)
    entered = asyncio.Event()
    order: List[str] = []

    async def long_turn() -> None:
        async with holder.lock("c"):
            entered.set()
            await asyncio.sleep(1.0)  # more than three leases
            order.append("holder done")

    async def next_turn() -> None:
        await entered.wait()
        async with waiter.lock("c"):
            order.append("waiter in")

    await asyncio.gather(long_turn(), next_turn())
    assert order == ["holder done", "waiter in"]
    await holder.close()
    await waiter.close()


async def test_a_waiter_whose_lease_ran_out_is_told(redis_url: str) -> None:
    prefix = _prefix()
    store = RedisTicketLockStore(redis_url, lease_seconds=0.2, key_prefix=prefix)
    holder = await store.issue("c")
    assert await store.try_acquire("c", holder) == 1
    waiter = await store.issue("c")
    await asyncio.sleep(0.3)  # the waiter's replica stalled for longer than its lease
    with pytest.raises(LockLost):
        await store.acquire("c", waiter)
    await store.close()


async def test_tickets_only_grow_even_when_redis_loses_its_data(redis_url: str) -> None:
    prefix = _prefix()
    store = RedisTicketLockStore(redis_url, key_prefix=prefix)
    before = await store.issue("c")
    await store.release("c", before)
    client = aioredis.Redis.from_url(redis_url)
    keys = await client.keys(prefix + "*")
    if keys:
        await client.delete(*keys)  # what a restart without persistence does
    await client.close()
    after = await store.issue("c")
    assert after > before
    await store.release("c", after)
    await store.close()


# -- the tracker store under concurrency ----------------------------------------------------------------


def _store(tmp_path: Path) -> AppendOnlySQLTrackerStore:
    return AppendOnlySQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(tmp_path / "conversations.db"))


async def test_concurrent_saves_of_one_conversation_keep_every_event_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sender = "racing"
    await store.create_tracker(sender)
    # Two replicas that loaded the same tracker (no lock at all): Rasa's count-based save would write the
    # second one's events over the first one's count and lose or repeat some.
    first, second = await store.retrieve(sender), await store.retrieve(sender)
    first.update(UserUttered("one", {"name": "greet", "confidence": 1.0}))
    first.update(BotUttered("reply one"))
    second.update(UserUttered("two", {"name": "greet", "confidence": 1.0}))
    second.update(BotUttered("reply two"))
    second.update(ActionExecuted("action_listen"))
    await asyncio.gather(store.save(first), store.save(second))
    texts = [event.text for event in (await store.retrieve(sender)).events if hasattr(event, "text")]
    assert sorted(texts) == ["one", "reply one", "reply two", "two"]


async def test_a_save_fenced_by_an_older_ticket_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sender = "fenced"
    await store.create_tracker(sender)
    stale, current = await store.retrieve(sender), await store.retrieve(sender)
    current.update(UserUttered("newer holder", {"name": "greet", "confidence": 1.0}))
    token = CURRENT_TICKET.set((sender, 200))
    try:
        await store.save(current)
    finally:
        CURRENT_TICKET.reset(token)
    stale.update(UserUttered("lease ran out", {"name": "greet", "confidence": 1.0}))
    token = CURRENT_TICKET.set((sender, 100))
    try:
        with pytest.raises(StaleLockHolder):
            await store.save(stale)
    finally:
        CURRENT_TICKET.reset(token)
    texts = [event.text for event in (await store.retrieve(sender)).events if isinstance(event, UserUttered)]
    assert texts == ["newer holder"]
