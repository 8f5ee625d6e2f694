from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import select

from bot.db import Database
from bot.handoff import open_requests, request_handoff
from bot.models import HandoffRequest


def test_one_open_request_per_sender_even_when_asked_concurrently(any_db: Database) -> None:
    workers = 6
    barrier = Barrier(workers)

    def ask(index: int) -> int:
        barrier.wait()
        with any_db.session(write=True) as session:
            return request_handoff(session, "rest", "ann", None, [{"role": "shopper", "text": f"help {index}"}]).id

    with ThreadPoolExecutor(workers) as pool:
        ids = set(pool.map(ask, range(workers)))
    assert len(ids) == 1
    with any_db.session() as session:
        [request] = open_requests(session)
        assert request.last_messages[0]["text"].startswith("help ")


def test_a_closed_request_does_not_block_a_new_one(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        first = request_handoff(session, "rest", "ann", None, [])
        first.status = "closed"
    with any_db.session(write=True) as session:
        second = request_handoff(session, "rest", "ann", None, [{"role": "shopper", "text": "again"}])
    assert second.id != first.id
    with any_db.session() as session:
        assert len(session.execute(select(HandoffRequest)).scalars().all()) == 2


def test_context_is_capped_to_the_last_ten_messages(sqlite_db: Database) -> None:
    messages = [{"role": "shopper", "text": str(i)} for i in range(25)]
    with sqlite_db.session(write=True) as session:
        request = request_handoff(session, "telegram", "42", None, messages)
    assert [m["text"] for m in request.last_messages] == [str(i) for i in range(15, 25)]
