"""A friend's order decides their referral the same way whichever door it comes in by: the store API, the
operator's CLI (`python -m bot orders …`) or the history importer (`python -m bot import`). Each scenario
runs once per entry point against one SQLite store and ends in the same state."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Dict, List, Sequence

import pytest
from sqlalchemy import select

from bot.advocacy.fingerprints import ip_hash
from bot.advocacy.friend_offers import record_click
from bot.advocacy.referrals import referral_code_for, register_signup
from bot.cli import main
from bot.db import Database, get_database
from bot.identity import create_customer
from bot.loyalty.ledger import balance, verify_balances
from bot.loyalty.program import Program
from bot.models import FriendOffer, Referral
from bot.web import create_app
from tests.web.conftest import Api, web_settings

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
PLACED = "2026-06-15 10:00:00 +0000"
ORDER_HEADER = ["Name", "Email", "Financial Status", "Paid at", "Currency", "Total", "Created at", "Discount Code",
                "Cancelled at", "Refunded Amount"]
ENTRY_POINTS = ("api", "cli", "import")


class Store:
    """One entry point into the store, and what it takes to tell it about an order."""

    def __init__(self, kind: str, api: Api, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
        self.kind, self.api, self.tmp_path, self.capsys = kind, api, tmp_path, capsys
        self.exports = 0

    async def paid(self, order_id: str, email: str, total: str, discount_codes: Sequence[str] = ()) -> None:
        if self.kind == "api":
            reply = await self.api.post("/api/orders", {
                "event": "paid", "order_id": order_id, "customer": {"email": email}, "total": total,
                "currency": "USD", "placed_at": "2026-06-15T10:00:00+00:00", "discount_codes": list(discount_codes)})
            assert reply.status == 201, reply.json
        elif self.kind == "cli":
            codes = [argument for code in discount_codes for argument in ("--discount-code", code)]
            self.cli("orders", "add", "--customer", email, "--id", order_id, "--total", total,
                     "--placed-at", "2026-06-15T10:00:00+00:00", *codes)
        else:
            self.import_orders([self.export_row(order_id, email, total, "paid", discount_codes)])

    async def refund(self, order_id: str, email: str, total: str, amount: str,
                     discount_codes: Sequence[str] = ()) -> None:
        if self.kind == "api":
            reply = await self.api.post("/api/orders", {"event": "refunded", "order_id": order_id, "refund_id": "r1",
                                                        "amount": amount, "currency": "USD"})
            assert reply.status == 201, reply.json
        elif self.kind == "cli":
            self.cli("orders", "refund", "--id", order_id, "--refund-id", "r1", "--amount", amount)
        else:  # a later export shows the order refunded
            status = "refunded" if amount == total else "partially_refunded"
            self.import_orders([self.export_row(order_id, email, total, status, discount_codes, refunded=amount)])

    async def cancel(self, order_id: str, email: str, total: str, discount_codes: Sequence[str] = ()) -> None:
        if self.kind == "api":
            reply = await self.api.post("/api/orders", {"event": "cancelled", "order_id": order_id})
            assert reply.status == 201, reply.json
        elif self.kind == "cli":
            self.cli("orders", "cancel", "--id", order_id)
        else:
            self.import_orders([self.export_row(order_id, email, total, "paid", discount_codes,
                                                cancelled="2026-06-15 11:00:00 +0000")])

    def cli(self, *argv: str) -> str:
        code = main(list(argv))
        captured = self.capsys.readouterr()
        assert code == 0, captured.out + captured.err
        return captured.out

    @staticmethod
    def export_row(order_id: str, email: str, total: str, status: str, discount_codes: Sequence[str],
                   refunded: str = "", cancelled: str = "") -> List[str]:
        return [f"#{order_id}", email, status, PLACED, "USD", total, PLACED, ", ".join(discount_codes), cancelled,
                refunded]

    def import_orders(self, rows: List[List[str]]) -> None:
        self.exports += 1
        path = self.tmp_path / f"orders-{self.exports}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(ORDER_HEADER)
            writer.writerows(rows)
        self.cli("import", "--orders", str(path))


@pytest.fixture(params=ENTRY_POINTS)
async def store(request: pytest.FixtureRequest, environment: Path, program: Program, tmp_path: Path, clock,
                capsys: pytest.CaptureFixture) -> AsyncIterator[Store]:
    """The process's own store (the CLI's), with the web app in front of it."""
    clock.at(NOW)
    database = get_database()
    database.create_schema()
    from aiohttp.test_utils import TestClient, TestServer

    app = create_app(web_settings(tmp_path), database, program=program)
    async with TestClient(TestServer(app)) as client:
        yield Store(request.param, Api(client, database), tmp_path, capsys)


def advocate_and_friend(database: Database, program: Program) -> Dict[str, int]:
    """Ann, an advocate with a code, and Cleo, a new customer; no points yet."""
    with database.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann")
        cleo = create_customer(session, "cleo@example.com", "Cleo")
        code = referral_code_for(session, ann.id, NOW).code
        return {"ann": ann.id, "cleo": cleo.id, "code": code}  # type: ignore[dict-item]


def the_referral(database: Database) -> Referral:
    with database.session() as session:
        return session.execute(select(Referral)).scalar_one()


def points(database: Database, customer_id: int) -> int:
    with database.session() as session:
        return balance(session, customer_id)


def assert_ledger_consistent(database: Database) -> None:
    with database.session() as session:
        assert verify_balances(session) == []


async def test_a_friend_who_joined_with_a_code_rewards_the_advocate_and_a_refund_takes_it_back(
        store: Store, program: Program) -> None:
    database = store.api.db
    people = advocate_and_friend(database, program)
    with database.session(write=True) as session:
        assert register_signup(session, program, people["cleo"], str(people["code"]), None, NOW).status == "joined"

    await store.paid("F1", "cleo@example.com", "60.00")
    referral = the_referral(database)
    assert (referral.status, referral.order_external_id, referral.points_awarded) == ("rewarded", "F1", 500)
    assert points(database, people["ann"]) == 500

    await store.refund("F1", "cleo@example.com", "60.00", "60.00")
    referral = the_referral(database)
    assert referral.status == "rejected", referral.reason
    assert referral.reason == "friend's order F1 was refunded; 500 points taken back"
    assert points(database, people["ann"]) == 0
    assert_ledger_consistent(database)


async def test_a_friend_offer_used_on_the_first_order_rewards_and_a_cancellation_takes_it_back(
        store: Store, program: Program) -> None:
    database = store.api.db
    people = advocate_and_friend(database, program)
    with database.session(write=True) as session:
        offer = record_click(session, program, str(people["code"]), ip_hash("198.51.100.20", b"x" * 32),
                             "Mozilla/5.0", NOW).offer_code
    assert offer is not None

    await store.paid("F1", "cleo@example.com", "60.00", discount_codes=[offer])
    referral = the_referral(database)
    assert (referral.status, referral.source, referral.friend_customer_id) == ("rewarded", "link", people["cleo"])
    assert points(database, people["ann"]) == 500
    with database.session() as session:
        used = session.execute(select(FriendOffer)).scalar_one()
        assert (used.status, used.used_order_ref, used.used_by_customer_id) == ("used", "F1", people["cleo"])

    await store.cancel("F1", "cleo@example.com", "60.00", discount_codes=[offer])
    referral = the_referral(database)
    assert referral.status == "rejected"
    assert referral.reason == "friend's order F1 was cancelled; 500 points taken back"
    assert points(database, people["ann"]) == 0
    assert_ledger_consistent(database)


async def test_a_partial_refund_takes_the_reward_back_only_below_the_minimum(store: Store, program: Program) -> None:
    database = store.api.db
    people = advocate_and_friend(database, program)
    with database.session(write=True) as session:
        register_signup(session, program, people["cleo"], str(people["code"]), None, NOW)
    await store.paid("F1", "cleo@example.com", "45.00")
    assert the_referral(database).status == "rewarded"

    await store.refund("F1", "cleo@example.com", "45.00", "20.00")  # $25 kept, the minimum is $30
    referral = the_referral(database)
    assert referral.status == "rejected"
    assert referral.reason == ("friend's order F1 was partly refunded: the $25 kept is below the $30 minimum; "
                               "500 points taken back")
    assert points(database, people["ann"]) == 0
    assert_ledger_consistent(database)
