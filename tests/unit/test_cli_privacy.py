"""`python -m bot customers erase` through the real CLI entry, on a temporary SQLite store and the default
SQLite tracker store under the data folder."""
from __future__ import annotations

from typing import List

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import func, select

from bot.cli import main
from bot.db import get_database
from bot.loyalty.program import get_program
from bot.loyalty.ledger import verify_balances
from bot.models import ChannelIdentity, Customer, Transcript
from tests.unit.test_privacy import EMAIL, GUEST_WEB, TELEGRAM, Store, save_conversation, seed


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _typed(monkeypatch, *answers: str) -> List[str]:
    """Answer the confirmation prompt with `answers`; the prompts asked."""
    asked: List[str] = []
    replies = iter(answers)

    def ask(prompt: str = "") -> str:
        asked.append(prompt)
        return next(replies)

    monkeypatch.setattr("builtins.input", ask)
    return asked


@pytest.fixture()
def store(environment, clock, capsys) -> Store:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    return seed(get_database(), get_program())


def _customer(customer_id: int) -> Customer:
    with get_database().session() as session:
        return session.get(Customer, customer_id)


def test_a_wrong_confirmation_erases_nothing(store: Store, capsys, monkeypatch) -> None:
    asked = _typed(monkeypatch, "ann@example.com")
    code, out = _run(capsys, "customers", "erase", "--email", EMAIL.upper())
    assert code == 1 and "nothing was erased" in out
    assert EMAIL in asked[0], "the prompt says what to type"
    assert f"customer #{store.ann}" in out and "telegram:" + TELEGRAM in out
    assert _customer(store.ann).email == EMAIL
    with get_database().session() as session:
        assert session.execute(select(func.count()).select_from(Transcript)).scalar_one() == 4


async def test_erasing_by_email_prints_what_went_and_takes_the_conversations(store: Store, environment, capsys,
                                                                              monkeypatch) -> None:
    trackers = SQLTrackerStore(dialect="sqlite", db=str(environment / "conversations.db"))
    for sender in (TELEGRAM, GUEST_WEB, "5550001"):
        await save_conversation(trackers, sender, "hello")
    _typed(monkeypatch, f"  {EMAIL.upper()} ")

    code, out = _run(capsys, "customers", "erase", "--email", EMAIL)

    assert code == 0, out
    assert f"erased customer #{store.ann}" in out
    assert "deleted          3  transcripts" in out and "deleted          4  chat identities" in out
    assert "anonymised       2  feedback (score kept, comment and links removed)" in out
    assert "anonymised       2  their visits through referral links (IP hash and browser removed)" in out
    assert "conversations erased from the tracker store: 2 of 4 known" in out
    customer = _customer(store.ann)
    assert (customer.email, customer.first_name, customer.points_balance) == (None, None, 0)
    assert await trackers.retrieve(TELEGRAM) is None and await trackers.retrieve(GUEST_WEB) is None
    assert await trackers.retrieve("5550001") is not None
    with get_database().session() as session:
        assert verify_balances(session) == []
        assert session.execute(select(func.count()).select_from(ChannelIdentity)
                               .where(ChannelIdentity.customer_id == store.ann)).scalar_one() == 0
    trackers.engine.dispose()


def test_yes_skips_the_question_and_a_second_run_finds_nothing_left(store: Store, capsys, monkeypatch) -> None:
    asked = _typed(monkeypatch)
    code, out = _run(capsys, "customers", "erase", "--id", str(store.ann), "--yes")
    assert code == 0 and asked == [] and "forfeited" in out

    code, out = _run(capsys, "customers", "erase", "--id", f"#{store.ann}", "--yes")
    assert code == 0 and "already erased" in out and "nothing was left to erase" in out
    assert "(no e-mail)" in out


def test_a_customer_without_email_is_confirmed_with_the_word_erase(store: Store, capsys, monkeypatch) -> None:
    main(["customers", "erase", "--id", str(store.ann), "--yes"])
    capsys.readouterr()
    asked = _typed(monkeypatch, "erase")
    code, out = _run(capsys, "customers", "erase", "--id", str(store.ann))
    assert code == 0 and "Type ERASE" in asked[0]


def test_unknown_customers_are_clear_errors(store: Store, capsys) -> None:
    code, out = _run(capsys, "customers", "erase", "--id", "4242", "--yes")
    assert code == 1 and "error: no customer with id 4242" in out
    code, out = _run(capsys, "customers", "erase", "--email", "nobody@example.com", "--yes")
    assert code == 1 and "error: no customer with e-mail nobody@example.com" in out
    with pytest.raises(SystemExit):
        main(["customers", "erase", "--id", "x1"])
    with pytest.raises(SystemExit):
        main(["customers", "erase", "--yes"])
