"""`python -m bot referrals …` against a real SQLite store: the list, one referral's decisions, the review
queue (approve / reject) and the totals."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

import pytest

from bot.advocacy.fingerprints import ip_hash
from bot.advocacy.friend_offers import record_click
from bot.advocacy.referrals import attribute_order, claim_in_chat, referral_code_for
from bot.cli import main
from bot.db import get_database
from bot.identity import create_customer
from bot.loyalty.ledger import balance
from bot.loyalty.orders import record_paid_order
from bot.loyalty.program import get_program

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
KEY = b"k" * 32


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _order(customer_id: int, order_id: str, total: str, ip: str, referral_code: Optional[str] = None,
           limit: int = 3) -> Optional[int]:
    program = get_program()
    program = replace(program, referrals=replace(program.referrals, max_referred_purchases_per_ip=limit))
    with get_database().session(write=True) as session:
        recorded = record_paid_order(session, program, customer_id, order_id, Decimal(total), NOW)
        recorded.order.ip_hash = ip_hash(ip, KEY)
        outcome = attribute_order(session, program, recorded.order, referral_code=referral_code, now=NOW)
        return outcome.referral_id if outcome else None


def _store() -> dict:
    """Ann refers three friends from one flat (the limit is 1: two are held), one friend orders too little,
    and a guest claims her code in chat."""
    assert main(["db", "upgrade"]) == 0
    with get_database().session(write=True) as session:
        ids = {email: create_customer(session, f"{email}@example.com", email.title()).id
               for email in ("ann", "cleo", "dan", "eve", "fay")}
        code = referral_code_for(session, ids["ann"], NOW).code
        record_click(session, get_program(), code, ip_hash("198.51.100.20", KEY), "Mozilla/5.0", NOW)
        claim_in_chat(session, get_program(), code, "telegram", "tg-guest", "telegram", NOW)
    _order(ids["ann"], "A1", "40.00", "203.0.113.7")
    referrals = {name: _order(ids[name], f"{name}-1", total, "192.0.2.44", code, limit=1)
                 for name, total in (("cleo", "60.00"), ("dan", "60.00"), ("eve", "60.00"), ("fay", "12.00"))}
    return {"ids": ids, "code": code, "referrals": referrals}


def test_list_show_approve_reject_and_stats(environment, capsys, clock) -> None:
    clock.at(NOW)
    store = _store()
    capsys.readouterr()
    dan, eve, fay = (store["referrals"][name] for name in ("dan", "eve", "fay"))

    code, out = _run(capsys, "referrals", "list")
    assert code == 0 and "[referrals] 5 shown" in out
    assert "guest telegram:tg-guest" in out and "cleo@example.com" in out and "ann@example.com" in out
    code, out = _run(capsys, "referrals", "list", "--status", "review")
    assert code == 0 and "[referrals] 2 shown (review)" in out and "held: more than 1 referred purchases" in out
    assert "dan@example.com" in out and "eve@example.com" in out and "cleo@example.com" not in out

    code, out = _run(capsys, "referrals", "show", str(fay))
    assert code == 0 and "ann@example.com referred fay@example.com (referral_code)" in out
    assert "rejected: friend's first order $12 was below the $30 minimum" in out
    assert "joined    by rules" in out and "rejected  by rules" in out

    ann = store["ids"]["ann"]
    with get_database().session() as session:
        before = balance(session, ann)
    code, out = _run(capsys, "referrals", "approve", str(dan), "--by", "Maya")
    assert code == 0 and f"referral {dan} approved: +500 points" in out
    code, out = _run(capsys, "referrals", "reject", str(eve), "--reason", "same card as dan", "--by", "Maya")
    assert code == 0 and f"referral {eve} rejected: same card as dan" in out
    with get_database().session() as session:
        assert balance(session, ann) == before + 500
    code, out = _run(capsys, "referrals", "show", str(dan))
    assert "held      by rules" in out and "approved  by merchant:Maya" in out and "approved after review" in out

    code, out = _run(capsys, "referrals", "stats")
    assert code == 0
    assert "[referrals] 5 referrals: joined 1, review 0, rewarded 2, rejected 2" in out
    assert "1 clicks; 2 friend offers issued, 0 used; 1,000 points paid to advocates" in out
    assert _run(capsys, "ledger", "verify")[0] == 0


def test_wrong_ids_and_statuses_are_explained(environment, capsys, clock) -> None:
    clock.at(NOW)
    store = _store()
    capsys.readouterr()
    cleo = store["referrals"]["cleo"]
    code, out = _run(capsys, "referrals", "show", "999")
    assert code == 1 and "error: no referral with id 999" in out
    code, out = _run(capsys, "referrals", "approve", "999")
    assert code == 1 and "no referral with id 999" in out
    code, out = _run(capsys, "referrals", "approve", str(cleo))
    assert code == 1 and f"referral {cleo} is rewarded; only a referral in review can be approved" in out
    fay = store["referrals"]["fay"]
    code, out = _run(capsys, "referrals", "reject", str(fay), "--reason", "no")
    assert code == 1 and f"referral {fay} is rejected; only a referral joined, in review or rewarded" in out
    code, out = _run(capsys, "referrals", "reject", str(store["referrals"]["dan"]), "--reason", "   ")
    assert code == 1 and "needs a reason" in out
    code, out = _run(capsys, "referrals", "reject", str(store["referrals"]["dan"]), "--reason", "x", "--by", " ")
    assert code == 1 and "--by needs a name" in out
    for wrong in ("99999999999999999999", "2147483648", "0", "x"):
        with pytest.raises(SystemExit) as exit_info:  # argparse, like every other malformed argument
            main(["referrals", "show", wrong])
        assert exit_info.value.code == 2
        assert f"{wrong!r} is not a whole number from 1 to 2147483647" in capsys.readouterr().err


def test_a_rewarded_referral_is_taken_back_by_the_merchant_or_a_cancelled_order(environment, capsys, clock) -> None:
    clock.at(NOW)
    store = _store()
    capsys.readouterr()
    ann, cleo = store["ids"]["ann"], store["referrals"]["cleo"]
    with get_database().session() as session:
        before = balance(session, ann)
    code, out = _run(capsys, "referrals", "reject", str(cleo), "--reason", "same card as Ann", "--by", "Maya")
    assert code == 0 and f"referral {cleo} rejected: same card as Ann; 500 points taken back" in out
    with get_database().session() as session:
        assert balance(session, ann) == before - 500

    # Dan's held referral, approved, then his order cancelled: the CLI takes the reward back too.
    dan = store["referrals"]["dan"]
    assert _run(capsys, "referrals", "approve", str(dan))[0] == 0
    code, out = _run(capsys, "orders", "refund", "--id", "dan-1", "--refund-id", "r1", "--amount", "20")
    assert code == 0 and "[referrals]" not in out  # $40 kept: still qualifies
    code, out = _run(capsys, "orders", "cancel", "--id", "dan-1")
    assert code == 0 and f"[referrals] referral {dan} rejected: friend's order dan-1 was cancelled; 500 points " \
                         "taken back" in out
    code, out = _run(capsys, "orders", "cancel", "--id", "dan-1")
    assert code == 0 and "[referrals]" not in out
    with get_database().session() as session:
        assert balance(session, ann) == before - 500
    assert _run(capsys, "ledger", "verify")[0] == 0
