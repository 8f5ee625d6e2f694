"""One-time link codes: issue, redeem once, expire, refuse guessing — on SQLite and PostgreSQL."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from threading import Barrier

from sqlalchemy import func, select

from bot.db import Database
from bot.identity import create_customer, customer_for_sender, link_identity
from bot.identity.linking import (
    CODE_ALPHABET,
    MAX_WRONG_CODES,
    find_code,
    WRONG_CODE_WINDOW,
    issue_link_code,
    looks_like_code,
    normalize_code,
    redeem_link_code,
)
from bot.models import LinkAttempt, LinkCode

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def _customer(db: Database, email: str = "maya@example.com") -> int:
    with db.session(write=True) as session:
        return create_customer(session, email, "Maya").id


def _issue(db: Database, customer_id: int, at: datetime = NOW) -> str:
    with db.session(write=True) as session:
        return issue_link_code(session, customer_id, at).code


def _redeem(db: Database, code: str, sender: str, at: datetime = NOW, channel: str = "telegram") -> str:
    with db.session(write=True) as session:
        return redeem_link_code(session, code, channel, sender, at).status


def test_codes_are_short_readable_unguessable_and_only_their_hash_is_stored(any_db: Database) -> None:
    customer_id = _customer(any_db)
    codes = {_issue(any_db, customer_id) for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert len(code) == 9 and code[4] == "-"
        assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
        assert looks_like_code(code) and looks_like_code(code.lower().replace("-", " "))
    with any_db.session() as session:
        stored = session.execute(select(LinkCode.code_hash)).scalars().all()
    assert not any(normalize_code(code) in stored or code in stored for code in codes)


def test_a_code_links_the_chat_once_and_gives_it_the_customers_balance(any_db: Database) -> None:
    customer_id = _customer(any_db)
    with any_db.session(write=True) as session:
        link_identity(session, customer_id, "rest", "maya-web")
    code = _issue(any_db, customer_id)

    assert _redeem(any_db, code.lower().replace("-", ""), "tg-42", NOW + timedelta(minutes=14)) == "linked"
    with any_db.session() as session:
        assert customer_for_sender(session, "telegram", "tg-42").id == customer_id
        assert customer_for_sender(session, "rest", "maya-web").id == customer_id
    assert _redeem(any_db, code, "tg-42") == "already_linked"
    assert _redeem(any_db, code, "ig-7", channel="instagram") == "used"


def test_an_expired_or_replaced_code_is_refused(any_db: Database) -> None:
    customer_id = _customer(any_db)
    old = _issue(any_db, customer_id)
    assert _redeem(any_db, old, "tg-1", NOW + timedelta(minutes=15)) == "expired"
    replaced = _issue(any_db, customer_id, NOW + timedelta(minutes=20))
    newer = _issue(any_db, customer_id, NOW + timedelta(minutes=21))
    assert _redeem(any_db, replaced, "tg-1", NOW + timedelta(minutes=22)) == "expired"
    assert _redeem(any_db, newer, "tg-1", NOW + timedelta(minutes=22)) == "linked"


def test_a_chat_linked_to_someone_else_is_not_moved(any_db: Database) -> None:
    maya, noor = _customer(any_db), _customer(any_db, "noor@example.com")
    assert _redeem(any_db, _issue(any_db, maya), "tg-5") == "linked"
    assert _redeem(any_db, _issue(any_db, noor), "tg-5") == "linked_elsewhere"
    with any_db.session() as session:
        assert customer_for_sender(session, "telegram", "tg-5").id == maya


def test_wrong_codes_are_rate_limited_per_chat_then_allowed_again(any_db: Database) -> None:
    customer_id = _customer(any_db)
    good = _issue(any_db, customer_id)
    for attempt in range(MAX_WRONG_CODES):
        assert _redeem(any_db, "AAAA-AAAA", "guesser", NOW + timedelta(seconds=attempt)) == "invalid"
    with any_db.session(write=True) as session:
        limited = redeem_link_code(session, good, "telegram", "guesser", NOW + timedelta(minutes=1))
    assert limited.status == "rate_limited" and timedelta(0) < limited.retry_after <= WRONG_CODE_WINDOW
    assert _redeem(any_db, good, "someone-else", NOW + timedelta(minutes=1)) == "linked", "other chats are not blocked"
    later = NOW + WRONG_CODE_WINDOW + timedelta(seconds=10)
    assert _redeem(any_db, "BBBB-BBBB", "guesser", later) == "invalid", "the window has passed"


def test_two_chats_racing_for_one_code_link_exactly_one(any_db: Database) -> None:
    customer_id = _customer(any_db)
    code = _issue(any_db, customer_id)
    barrier = Barrier(6)

    def attempt(index: int) -> str:
        barrier.wait()
        try:
            return _redeem(any_db, code, f"racer-{index}")
        except Exception as error:  # a lost race may surface as a database conflict, never two links
            return type(error).__name__

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert results.count("linked") == 1, results
    with any_db.session() as session:
        assert session.execute(select(func.count()).select_from(LinkCode).where(LinkCode.used_at.isnot(None))).scalar() == 1


def test_used_and_expired_codes_count_as_wrong_tries(any_db: Database) -> None:
    customer_id = _customer(any_db)
    used = _issue(any_db, customer_id)
    assert _redeem(any_db, used, "owner") == "linked"
    for attempt in range(MAX_WRONG_CODES):
        assert _redeem(any_db, used, "prober", NOW + timedelta(seconds=attempt)) == "used"
    fresh_code = _issue(any_db, customer_id, NOW + timedelta(minutes=1))
    assert _redeem(any_db, fresh_code, "prober", NOW + timedelta(minutes=1)) == "rate_limited"


def test_many_new_chats_guessing_together_pause_linking_on_that_channel(any_db: Database, monkeypatch) -> None:
    monkeypatch.setattr("bot.identity.linking.MAX_WRONG_CODES_PER_CHANNEL", 12)
    customer_id = _customer(any_db)
    for sender in range(12):  # a fresh chat for every guess: the per-chat limit never trips
        assert _redeem(any_db, "ZZZZ-2ZZZ", f"throwaway-{sender}", NOW + timedelta(seconds=sender)) == "invalid"
    code = _issue(any_db, customer_id, NOW + timedelta(minutes=1))
    assert _redeem(any_db, code, "honest", NOW + timedelta(minutes=1)) == "rate_limited"
    assert _redeem(any_db, code, "ig-honest", NOW + timedelta(minutes=1), channel="instagram") == "linked"
    later = NOW + WRONG_CODE_WINDOW + timedelta(seconds=30)
    code = _issue(any_db, customer_id, later)
    assert _redeem(any_db, code, "honest", later) == "linked", "the window moved on"
    assert _redeem(any_db, "YYYY-2YYY", "late-guesser", later) == "invalid"
    with any_db.session() as session:
        assert session.execute(select(func.count()).select_from(LinkAttempt)).scalar() == 1, "old tries are forgotten"


def test_two_words_before_a_code_are_not_read_as_the_code() -> None:
    assert find_code("can i link with k7pm-q2zx?") == "K7PMQ2ZX"
    assert find_code("link with my code please 2") is None
    assert find_code("my code: K7PM Q2ZX") == "K7PMQ2ZX"
    assert find_code("code AAAA-2AAA") == "AAAA2AAA"
