"""`python -m bot campaigns …` against a real SQLite store: create, dry run (nothing queued), send (queued in
the outbox, the holdout left out, once) and results, a poll's with its answers per segment."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from bot.cli import main
from bot.db import get_database
from bot.identity import create_customer, link_identity
from bot.models import OutboundMessage

NOON = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def _run(capsys: Any, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _queued() -> int:
    with get_database().session() as session:
        return session.execute(select(func.count()).select_from(OutboundMessage)).scalar_one()


def test_create_dry_run_send_and_results(environment: Any, clock: Any, capsys: Any) -> None:
    clock.at(NOON)
    database = get_database()
    database.create_schema()
    with database.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", first_name="Ann")
        link_identity(session, ann.id, "telegram", "777")
        create_customer(session, "bo@example.com", first_name="Bo")

    code, out = _run(capsys, "campaigns", "create", "--name", "Poll", "--text", "{first_name}, what next?",
                     "--customers", "ann@example.com,bo@example.com", "--option", "Lamps", "--option", "Desks",
                     "--holdout", "0", "--bonus", "10")
    assert code == 0 and "campaign 1 (poll) created: 2 chosen customers, holdout 0 %" in out
    code, out = _run(capsys, "campaigns", "dry-run", "1")
    assert code == 0 and "send     telegram   Ann, what next?" in out
    assert "wait     -          no linked chat yet; Bo, what next?" in out
    assert "audience 2: send 1, wait 1; channels: telegram 1 (nothing was queued)" in out and _queued() == 0
    code, out = _run(capsys, "campaigns", "send", "1")
    assert code == 0 and "campaign 1: 2 messages queued in the outbox, 0 held out" in out and _queued() == 2
    code, out = _run(capsys, "campaigns", "send", "1")
    assert "was already sent" in out and _queued() == 2
    code, out = _run(capsys, "campaigns", "results", "1")
    assert code == 0 and "outbox     queued 2" in out and "option     Lamps" in out
    code, out = _run(capsys, "campaigns", "create", "--name", "x", "--text", "{nope}", "--customers", "1")
    assert code == 1 and "unknown personal field {nope}" in out


def test_a_segment_is_the_audience(environment: Any, clock: Any, capsys: Any) -> None:
    clock.at(NOON)
    database = get_database()
    database.create_schema()
    with database.session(write=True) as session:
        rich = create_customer(session, "rich@example.com", first_name="Ria")
        rich.points_balance = 900
        link_identity(session, rich.id, "telegram", "778")
        create_customer(session, "poor@example.com", first_name="Pat")
    code, out = _run(capsys, "segments", "save", "Has points", "--filter", '[{"kind": "points_balance", "min": 1}]')
    assert code == 0
    code, out = _run(capsys, "campaigns", "create", "--name", "Spend", "--text", "{first_name}: {balance} points",
                     "--segment", "has points", "--button", "redeem", "--holdout", "0")
    assert code == 0 and "created: segment Has points, holdout 0 %" in out
    code, out = _run(capsys, "campaigns", "dry-run", "1")
    assert "Ria: 900 points" in out and "poor@example.com" not in out and "audience 1: send 1" in out
    code, out = _run(capsys, "campaigns", "create", "--name", "x", "--text", "x", "--segment", "nobody")
    assert code == 1 and "no segment 'nobody'" in out


def test_results_show_a_polls_answers_per_segment(environment: Any, clock: Any, capsys: Any) -> None:
    from bot.campaigns.service import record_response
    from bot.loyalty.program import get_program

    clock.at(NOON)
    database = get_database()
    database.create_schema()
    with database.session(write=True) as session:
        ids = []
        for n, points in enumerate((900, 700, 0)):
            customer = create_customer(session, f"c{n}@example.com", first_name=f"C{n}")
            customer.points_balance = points
            link_identity(session, customer.id, "telegram", str(780 + n))
            ids.append(customer.id)
    assert _run(capsys, "segments", "save", "Has points", "--filter", '[{"kind": "points_balance", "min": 1}]')[0] == 0
    _run(capsys, "campaigns", "create", "--name", "Poll", "--text", "Which?", "--customers",
         ",".join(map(str, ids)), "--option", "Lamps", "--option", "Desks", "--holdout", "0")
    _run(capsys, "campaigns", "send", "1")
    with database.session(write=True) as session:
        for customer_id, option in zip(ids, (1, 2, 2)):
            record_response(session, get_program(), 1, customer_id, clock.current, option=option)
    code, out = _run(capsys, "campaigns", "results", "1", "--segment", "has points")
    assert code == 0 and "option     Desks                    2" in out
    assert "segment    Has points: 2 members, 2 messaged, 2 answered: Lamps 1 (50 %), Desks 1 (50 %)" in out
    code, out = _run(capsys, "campaigns", "results", "1", "--segment", "nobody")
    assert code == 1 and "no segment 'nobody'" in out
