"""The webhook intake's write path: a burst of deliveries written in one transaction keeps one row per delivery
key (repeats within the burst and keys already stored are duplicates), also when another replica writes the
same key at the same moment (PostgreSQL); and the web app's two writers take turns at SQLite's write lock with
waiting acknowledgements first, without stopping the worker for longer than its limit, also when the worker
applies in a child process."""
from __future__ import annotations

import multiprocessing.synchronize
import os
import signal
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.cluster.tcp_proxy import TcpProxy
from bot.integrations.inbox import Delivery, Outcome, Topic, accept_deliveries, apply_due
from bot.processes import free_port
from bot.models import StoreEvent
from bot.web.store_events_process import SPAWN
from bot.web.webhooks import MAX_WORKER_WAIT_SECONDS, WriterTurns

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def delivery(key: str, shop: str = "a.myshopify.com") -> Delivery:
    return Delivery("shopify", shop, key, "orders/paid", b'{"id": 1}')


def rows_by_key(database: Database) -> dict:
    with database.session() as session:
        return dict(session.execute(select(StoreEvent.delivery_key, func.count()).group_by(StoreEvent.delivery_key)).all())


def test_a_burst_writes_each_key_once(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        first = accept_deliveries(session, [delivery("e1"), delivery("e2"), delivery("e1"),
                                            delivery("e1", shop="b.myshopify.com")], NOW)
    assert [item.duplicate for item in first] == [False, False, True, False]
    assert first[0].event_id == first[2].event_id
    assert len({first[0].event_id, first[1].event_id, first[3].event_id}) == 3

    with any_db.session(write=True) as session:
        second = accept_deliveries(session, [delivery("e2"), delivery("e3")], NOW)
    assert [item.duplicate for item in second] == [True, False]
    assert second[0].event_id == first[1].event_id
    assert rows_by_key(any_db) == {"e1": 2, "e2": 1, "e3": 1}
    with any_db.session() as session:
        stored = session.get(StoreEvent, second[1].event_id)
        assert (stored.state, stored.attempts, stored.payload, stored.next_attempt_at) == ("pending", 0, '{"id": 1}', NOW)


def test_two_replicas_writing_the_same_key_at_once_store_it_once(postgres_db: Database) -> None:
    results = {}
    first_wrote = threading.Event()

    def first() -> None:
        with postgres_db.session(write=True) as session:
            results["first"] = accept_deliveries(session, [delivery("race")], NOW)
            first_wrote.set()
            time.sleep(0.5)  # the second's insert waits on this uncommitted row, then meets the conflict

    def second() -> None:
        first_wrote.wait(5)
        with postgres_db.session(write=True) as session:
            results["second"] = accept_deliveries(session, [delivery("race"), delivery("other")], NOW)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [item.duplicate for item in results["first"]] == [False]
    assert [item.duplicate for item in results["second"]] == [True, False]
    assert results["second"][0].event_id == results["first"][0].event_id
    assert rows_by_key(postgres_db) == {"race": 1, "other": 1}


def test_the_worker_writes_after_waiting_acknowledgements_but_is_never_stopped_for_long() -> None:
    turns = WriterTurns(serial=True)
    order = []

    def worker() -> None:
        with turns.worker():
            order.append(("worker", time.monotonic()))

    turns.intake_active(True)  # deliveries are waiting to be written
    started = time.monotonic()
    waiting_worker = threading.Thread(target=worker)
    waiting_worker.start()
    time.sleep(0.1)
    with turns.intake():
        order.append(("intake", time.monotonic()))
    turns.intake_active(False)
    waiting_worker.join(5)
    assert [who for who, _ in order] == ["intake", "worker"]

    # A stream that never pauses: the worker still writes once its wait is over.
    order.clear()
    turns.intake_active(True)
    started = time.monotonic()
    waiting_worker = threading.Thread(target=worker)
    waiting_worker.start()
    waiting_worker.join(5)
    turns.intake_active(False)
    assert [who for who, _ in order] == ["worker"]
    assert MAX_WORKER_WAIT_SECONDS - 0.05 <= order[0][1] - started < MAX_WORKER_WAIT_SECONDS + 1.0


def test_writers_exclude_each_other_on_sqlite_only() -> None:
    for serial, expected_overlap in ((True, False), (False, True)):
        turns = WriterTurns(serial=serial)
        inside = threading.Event()
        leave = threading.Event()
        overlapped = []

        def intake() -> None:
            with turns.intake():
                inside.set()
                leave.wait(5)

        holder = threading.Thread(target=intake)
        holder.start()
        inside.wait(5)

        def worker() -> None:
            with turns.worker():
                overlapped.append(not leave.is_set())

        other = threading.Thread(target=worker)
        other.start()
        other.join(MAX_WORKER_WAIT_SECONDS + 0.5)
        leave.set()
        holder.join(5)
        other.join(5)
        assert overlapped == [expected_overlap]


def _hold_the_worker_turn(turns: WriterTurns, inside: "multiprocessing.synchronize.Event") -> None:
    with turns.worker():
        inside.set()
        time.sleep(60)  # killed before it leaves


def test_the_turns_hold_across_processes_and_a_killed_workers_turn_is_freed() -> None:
    """The worker may apply in a child process (bot/web/store_events_process.py): its turn excludes the intake
    there too, and when it is killed inside its turn, the web app frees the turn."""
    turns = WriterTurns(serial=True)
    inside = SPAWN.Event()
    child = SPAWN.Process(target=_hold_the_worker_turn, args=(turns, inside))
    child.start()
    try:
        assert inside.wait(60)
        entered = threading.Event()

        def intake() -> None:
            with turns.intake():
                entered.set()

        waiting = threading.Thread(target=intake)
        waiting.start()
        assert not entered.wait(0.5)  # the child's turn excludes the intake
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert not entered.wait(0.2)  # a dead holder frees nothing by itself...
        turns.worker_died()
        assert entered.wait(5)  # ...until the web app learns it died
        waiting.join(5)
    finally:
        if child.is_alive():
            child.kill()


def test_events_claimed_when_the_database_went_away_are_released_at_the_next_run(postgres_db: Database) -> None:
    """The worker reaches PostgreSQL through a proxy that cuts every connection in the middle of a batch: the
    event being applied cannot even be marked failed. The events it claimed are released at its next run (the
    same moment: no claim could have lapsed) and applied then, not two minutes later."""
    with postgres_db.session(write=True) as session:
        accept_deliveries(session, [delivery(f"cut-{number}") for number in range(3)], NOW)
    url = postgres_db.engine.url
    proxy = TcpProxy(free_port(), url.host or "127.0.0.1", url.port or 5432).start()
    through_proxy = Database(url.set(host="127.0.0.1", port=proxy.listen_port).render_as_string(hide_password=False))
    applied = []

    def apply(session: object, event: StoreEvent) -> Outcome:
        if not applied and not proxy.refusing:
            proxy.outage(1.0)  # this transaction's connection is reset; the next ones are refused for 1 s
            while not proxy.refusing:
                time.sleep(0.01)
        applied.append(event.delivery_key)
        return Outcome("applied")

    def topics(source: str, topic: str) -> Topic:
        return Topic(apply)

    unfinished: set = set()
    try:
        with pytest.raises(Exception):
            apply_due(through_proxy, topics, lambda: NOW, limit=10, unfinished=unfinished)
        assert len(unfinished) == 3
        with postgres_db.session() as session:  # all three still claimed, none applied
            assert session.execute(select(func.count()).where(StoreEvent.claimed_until.is_not(None),
                                                              StoreEvent.state == "pending")).scalar_one() == 3
        time.sleep(1.5)  # the proxy lets connections through again
        counts = apply_due(through_proxy, topics, lambda: NOW, limit=10, unfinished=unfinished)
        assert (counts.claimed, counts.applied, unfinished) == (3, 3, set())
        with postgres_db.session() as session:
            assert set(session.execute(select(StoreEvent.state)).scalars()) == {"applied"}
    finally:
        through_proxy.dispose()
        proxy.stop()
