"""The tracker and lock stores endpoints.yml names, against real SQLite, PostgreSQL and Redis."""
from __future__ import annotations

import uuid

import pytest
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.conversation_stores import AppendOnlySQLTrackerStore, EnvironmentLockStore, EnvironmentTrackerStore
from bot.locks import RedisTicketLockStore
from bot.settings import reset_settings
from tests.services import POSTGRES_URL, REDIS_URL, require_service

DOMAIN = Domain.from_dict({"intents": ["greet"]})


async def _round_trip(store) -> None:
    sender = f"store-test-{uuid.uuid4().hex[:8]}"
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    tracker.update(UserUttered("hello there", {"name": "greet", "confidence": 1.0}))
    await store.save(tracker)
    loaded = await store.retrieve(sender)
    assert loaded is not None and loaded.latest_message.text == "hello there"


async def test_default_is_sqlite_under_the_data_folder(environment) -> None:
    store = EnvironmentTrackerStore(domain=DOMAIN)
    assert isinstance(store, SQLTrackerStore)
    await _round_trip(store)
    assert (environment / "conversations.db").exists()
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert isinstance(EnvironmentLockStore(), InMemoryLockStore)


async def test_tracker_database_url_selects_postgresql(environment, monkeypatch) -> None:
    require_service("PostgreSQL", 5432)
    monkeypatch.setenv("TRACKER_DATABASE_URL", POSTGRES_URL)
    reset_settings()
    store = EnvironmentTrackerStore(domain=DOMAIN)
    assert isinstance(store, SQLTrackerStore) and store.engine.dialect.name == "postgresql"
    await _round_trip(store)


async def test_redis_url_selects_redis_for_trackers_and_locks(environment, monkeypatch) -> None:
    require_service("Redis", 6379)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    reset_settings()
    store = EnvironmentTrackerStore(domain=DOMAIN)
    assert isinstance(store, RedisTrackerStore)
    await _round_trip(store)
    lock_store = EnvironmentLockStore()
    assert isinstance(lock_store, RedisTicketLockStore)
    conversation = f"lock-test-{uuid.uuid4().hex[:8]}"
    first = await lock_store.issue(conversation)
    assert await lock_store.try_acquire(conversation, first) == 1
    # A second process (another worker) sees the same lock through Redis and must wait its turn.
    other_worker = EnvironmentLockStore()
    second = await other_worker.issue(conversation)
    assert second > first and await other_worker.try_acquire(conversation, second) == 0
    await lock_store.release(conversation, first)
    assert await other_worker.try_acquire(conversation, second) == 1
    await other_worker.release(conversation, second)
    await lock_store.close()
    await other_worker.close()


async def test_tracker_database_url_with_redis_keeps_conversations_in_sql(environment, monkeypatch) -> None:
    require_service("Redis", 6379)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TRACKER_DATABASE_URL", f"sqlite:///{environment / 'conversations.db'}")
    reset_settings()
    store = EnvironmentTrackerStore(domain=DOMAIN)
    assert isinstance(store, AppendOnlySQLTrackerStore)
    assert isinstance(EnvironmentLockStore(), RedisTicketLockStore)


def test_bad_urls_are_refused(environment, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://cache:6379")
    reset_settings()
    with pytest.raises(ValueError, match="redis://"):
        EnvironmentTrackerStore(domain=DOMAIN)
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("TRACKER_DATABASE_URL", "mysql://x/y")
    reset_settings()
    with pytest.raises(ValueError, match="TRACKER_DATABASE_URL"):
        EnvironmentTrackerStore(domain=DOMAIN)


def test_urls_with_encoded_passwords_and_options() -> None:
    from bot.conversation_storage import redis_kwargs, sql_kwargs

    sql = sql_kwargs("postgresql+psycopg2://shop:p%40ss@db.internal:5433/convos?sslmode=require")
    assert (sql["dialect"], sql["host"], sql["port"], sql["db"]) == ("postgresql", "db.internal", 5433, "convos")
    assert (sql["username"], sql["password"], sql["query"]) == ("shop", "p@ss", {"sslmode": "require"})
    redis = redis_kwargs("rediss://:s%2Fcret@cache:6380/3")
    assert (redis["host"], redis["port"], redis["db"], redis["password"], redis["use_ssl"]) == ("cache", 6380, 3, "s/cret", True)
