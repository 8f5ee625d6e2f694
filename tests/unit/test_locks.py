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


def _issue_from_threads(issue, threads: int = 8, each: int = 100) -> List[int]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        batches = list(pool.map(lambda _: [issue() for _ in range(each)], range(threads)))
    return [ticket for batch in batches for ticket in batch]


def test_stock_redis_lock_store_issues_the_same_ticket_twice_and_ours_never_does(redis_url: str) -> None:
    """Rasa's RedisLockStore.issue_ticket reads the lock, adds a ticket in Python and writes it back: two
    replicas (here eight threads, each with its own client, as eight processes would be) issuing at once get
    the same ticket, and both are let in. Ours issues each ticket in one Lua script."""
    from urllib.parse import urlparse

    from rasa.core.lock_store import RedisLockStore

    parsed = urlparse(redis_url)
    conversation = f"race-{uuid.uuid4().hex[:8]}"
    prefix = f"testrace{uuid.uuid4().hex[:8]}"  # alphanumeric, as RedisLockStore requires
    stock_clients = [RedisLockStore(host=parsed.hostname, port=parsed.port, db=int(parsed.path.lstrip("/") or 0),
                                    key_prefix=prefix) for _ in range(8)]
    counter = iter(range(10**6))

    def stock_issue() -> int:
        return stock_clients[next(counter) % 8].issue_ticket(conversation, lock_lifetime=60)

    stock = _issue_from_threads(stock_issue)
    stock_clients[0].delete_lock(conversation)
    stock_duplicates = len(stock) - len(set(stock))

    ours_store = RedisTicketLockStore(redis_url, key_prefix=_prefix())

    def our_issue() -> int:
        return asyncio.run(_issue_once(redis_url, ours_store.key_prefix, conversation))

    ours = _issue_from_threads(our_issue, threads=8, each=25)
    print(f"stock RedisLockStore: {stock_duplicates} duplicate tickets of {len(stock)} issued from 8 clients at once; "
          f"ours: {len(ours) - len(set(ours))} of {len(ours)}")
    assert len(ours) == len(set(ours))
    assert stock_duplicates > 0


async def _issue_once(redis_url: str, prefix: str, conversation: str) -> int:
    store = RedisTicketLockStore(redis_url, key_prefix=prefix)
    try:
        return await store.issue(conversation)
    finally:
        await store.close()
