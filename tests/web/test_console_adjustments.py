"""Points adjustments and the audit log through the real console endpoints on SQLite and PostgreSQL: a credit
or debit with a reason goes through the ledger once however often the form is sent, a debit below zero is
refused unless the program allows negative balances, agents adjust only when the store lets them, and the
audit log lists what merchants did (adjustments, handoff replies, exports, erasures) with who and when."""
from __future__ import annotations

import asyncio
import dataclasses
import re
from html import unescape
from pathlib import Path
from typing import Dict
from urllib.parse import unquote

from sqlalchemy import func, select

from bot.handoff import request_handoff
from bot.identity import create_customer
from bot.loyalty.ledger import post_entry, verify_balances
from bot.loyalty.program import Program
from bot.models import AuditEvent, Customer, LedgerEntry
from tests.web.console import Console, console_for, make_merchant

OWNER, AGENT = "olive@shop.example", "arlo@shop.example"
FORM_KEY = re.compile(r'name="form_key" value="([^"]+)"')


def flat(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def ann_with(db, points: int) -> int:
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        post_entry(session, ann, points, kind="earn", reason="Order 1001", source="order", idempotency_key="o-1001")
        return ann


async def adjust_form(console: Console, customer_id: int) -> str:
    html = await (await console.get(f"/console/customers/{customer_id}")).text()
    found = FORM_KEY.search(html)
    assert found, "the page has the adjustment form"
    return found.group(1)


def balance_and_entries(db, customer_id: int):
    with db.session() as session:
        balance = session.get(Customer, customer_id).points_balance
        adjusts = session.execute(select(func.count()).select_from(LedgerEntry)
                                  .where(LedgerEntry.kind == "adjust")).scalar_one()
        assert verify_balances(session) == []
    return balance, adjusts


async def test_a_double_submitted_credit_adjusts_once_and_is_in_the_ledger_and_the_audit_log(
        any_console: Console) -> None:
    db = any_console.db
    ann = ann_with(db, 100)
    make_merchant(db, OWNER, "owner", "Olive")
    await any_console.sign_in(OWNER)
    key = await adjust_form(any_console, ann)
    form: Dict[str, str] = {"direction": "credit", "points": "250", "reason": "Chair arrived late, sorry!",
                            "form_key": key}
    first, second = await asyncio.gather(*(any_console.post(f"/console/customers/{ann}/adjust", form)
                                           for _ in range(2)))
    said = sorted(unquote(r.headers["Location"]) for r in (first, second))
    assert any("+250 points recorded. Balance: 350." in s for s in said)
    assert any("Already recorded (this form was sent twice): nothing changed. Balance: 350." in s for s in said)
    assert balance_and_entries(db, ann) == (350, 1)

    page = flat(await (await any_console.get(f"/console/customers/{ann}")).text())
    assert "+250 Chair arrived late, sorry! (by Olive) (adjust, console) 350" in page
    audit = flat(await (await any_console.get("/console/audit")).text())
    assert "Olive <olive@shop.example> Points adjusted customer %d +250 points: Chair arrived late, sorry! " \
           "(balance after: 350)" % ann in audit and "1 action, newest first" in audit


async def test_a_debit_below_zero_is_refused_unless_the_program_allows_negative_balances(
        any_console: Console, program: Program, tmp_path: Path) -> None:
    db = any_console.db
    ann = ann_with(db, 100)
    make_merchant(db, OWNER, "owner", "Olive")
    await any_console.sign_in(OWNER)
    refused = await any_console.post(f"/console/customers/{ann}/adjust", {
        "direction": "debit", "points": "500", "reason": "Refund outside the store", "form_key": await adjust_form(any_console, ann)})
    assert "the balance is 100 points, so taking 500 would leave it below zero" in unquote(refused.headers["Location"])
    assert balance_and_entries(db, ann) == (100, 0)
    no_reason = await any_console.post(f"/console/customers/{ann}/adjust", {
        "direction": "debit", "points": "50", "reason": "  ", "form_key": await adjust_form(any_console, ann)})
    assert "Give a reason" in unquote(no_reason.headers["Location"])
    ok = await any_console.post(f"/console/customers/{ann}/adjust", {
        "direction": "debit", "points": "60", "reason": "Duplicate signup bonus", "form_key": await adjust_form(any_console, ann)})
    assert "-60 points recorded. Balance: 40." in unquote(ok.headers["Location"])

    lenient = dataclasses.replace(program, refunds_allow_negative_balance=True)
    async for other in console_for(db, lenient, tmp_path / "lenient"):
        await other.sign_in(OWNER)
        below = await other.post(f"/console/customers/{ann}/adjust", {
            "direction": "debit", "points": "100", "reason": "Returned the lamp after redeeming",
            "form_key": await adjust_form(other, ann)})
        assert "-100 points recorded. Balance: -60." in unquote(below.headers["Location"])
    assert balance_and_entries(db, ann) == (-60, 2)


async def test_agents_adjust_only_when_the_store_lets_them(console: Console, program: Program, tmp_path: Path) -> None:
    ann = ann_with(console.db, 100)
    make_merchant(console.db, AGENT, "agent", "Arlo")
    await console.sign_in(AGENT)
    html = await (await console.get(f"/console/customers/{ann}")).text()
    assert 'name="form_key"' not in html
    forbidden = await console.post(f"/console/customers/{ann}/adjust", {
        "direction": "credit", "points": "10", "reason": "nice", "form_key": "k" * 24})
    assert forbidden.status == 403
    assert (await console.get("/console/audit")).status == 403
    async for allowed in console_for(console.db, program, tmp_path / "agents", AGENTS_MAY_ADJUST_POINTS="1"):
        await allowed.sign_in(AGENT)
        done = await allowed.post(f"/console/customers/{ann}/adjust", {
            "direction": "credit", "points": "10", "reason": "Photo on Instagram", "form_key": await adjust_form(allowed, ann)})
        assert "+10 points recorded. Balance: 110." in unquote(done.headers["Location"])


async def test_the_audit_log_records_handoff_replies_exports_and_erasures(console: Console) -> None:
    db = console.db
    ann = ann_with(db, 100)
    with db.session(write=True) as session:
        request_id = request_handoff(session, "telegram", "100", ann, [{"role": "shopper", "text": "help"}]).id
    make_merchant(db, OWNER, "owner", "Olive")
    await console.sign_in(OWNER)
    await console.post(f"/console/handoffs/{request_id}/reply", {"text": "<b>Hi Ann</b>, on it"})
    await console.post(f"/console/handoffs/{request_id}/return")
    assert (await console.get("/console/customers/export.csv")).status == 200
    assert (await console.get("/console/feedback/export.csv")).status == 200
    await console.post(f"/console/customers/{ann}/erase", {"confirm": "ann@example.com"})
    html = await (await console.get("/console/audit")).text()
    text = flat(html)
    for line in (f"Handoff reply handoff {request_id} (erased with the customer's personal data)",
                 f"Handoff returned to the bot handoff {request_id}", "Customers exported customers 1 rows",
                 "Feedback exported feedback 0 rows", f"Personal data erased customer {ann}"):
        assert line in text, line
    assert "<b>Hi Ann" not in html and text.index("Personal data erased") < text.index("Handoff reply")
    with db.session() as session:
        assert session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 5
    only = flat(await (await console.get("/console/audit", {"action": "customers_exported"})).text())
    assert "1 action" in only and "Handoff reply" not in only.split("newest first")[1]
