"""One customer whole in the console, and the customer list: through the real HTTP endpoints on SQLite and
PostgreSQL, with Ann from tests/unit/test_privacy.py (every kind of row the store keeps about a shopper)."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape

from sqlalchemy import select

from bot.loyalty.ledger import post_entry
from bot.loyalty.program import Program
from bot.models import Customer, RewardCode
from tests.unit.test_privacy import EMAIL, NOW, TELEGRAM, seed
from tests.web.console import Console, make_merchant

OWNER, AGENT = "olive@shop.example", "arlo@shop.example"


def flat(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def page(console: Console, path: str, params=None, status: int = 200) -> str:
    response = await console.get(path, params)
    html = await response.text()
    assert response.status == status, html[:1500]
    return html


async def test_an_agent_sees_everything_about_a_customer_with_codes_masked(any_console: Console, program: Program) -> None:
    store = seed(any_console.db, program)
    make_merchant(any_console.db, AGENT, "agent")
    await any_console.sign_in(AGENT)
    with any_console.db.session() as session:
        code = session.execute(select(RewardCode.code).where(RewardCode.customer_id == store.ann)).scalar_one()
        balance = session.get(Customer, store.ann).points_balance
    html = await page(any_console, f"/console/customers/{store.ann}")
    text = flat(html)
    assert code not in html and code[-4:] in html, "a reward code shows only its last 4"
    assert "RW-••••-••••-" + code[-4:] in text
    for part in ("Orders 1", "Points history", "Reward codes 1", "Reviews 2", "Photos, videos and follows 1",
                 "Referrals 2", "Feedback 1", "Quiz runs 1", "Handoffs 1", "Consent 1"):
        assert part in text, part
    assert "#A-1001 paid 240.00 USD" in text
    referrals = text.split("Referrals 2")[1].split("Feedback 1")[0]
    assert "advocate a guest on telegram joined" in referrals and "friend Bo joined" in referrals, referrals
    assert "the glaze chipped." in text, text.split("Reviews 2")[1][:300]
    assert "follow on tiktok (telegram) quixotic.ann" in text, text.split("follows 1")[1][:400]
    assert "Yes, email Annabelle tips" in text and EMAIL in text
    assert f"{TELEGRAM}" in text and "Annabelle Quixotic, call me please" not in text  # the request has no reason
    # The newest ledger entry's balance after is the balance.
    first_row = re.search(r'id="ledger".*?<tbody>(.*?)</tr>', html, re.S).group(1)
    assert f"{balance:,}" in flat(first_row)
    assert 'action="/console/customers/%d/erase"' % store.ann not in html, "erasing is for owners"
    assert (await any_console.get("/console/customers/export.csv")).status == 403


async def test_every_part_pages_and_the_balance_after_runs_through_history(console: Console, program: Program) -> None:
    store = seed(console.db, program)
    with console.db.session(write=True) as session:
        for day in range(25):
            post_entry(session, store.ann, 10, kind="adjust", reason=f"goodwill {day}", source="test",
                       idempotency_key=f"goodwill-{day}", at=NOW + timedelta(days=day + 1))
        balance = session.get(Customer, store.ann).points_balance
    make_merchant(console.db, OWNER, "owner")
    await console.sign_in(OWNER)
    newest = flat(await page(console, f"/console/customers/{store.ann}"))
    # The seed's redemption happened today, after the goodwill: it comes first, with the balance after it.
    assert f"Redeemed: Free shipping (redeem, redemption) {balance:,}" in newest
    assert f"goodwill 24 (adjust, test) {balance + 400:,}" in newest
    assert "page 1 of 3" in newest
    oldest = flat(await page(console, f"/console/customers/{store.ann}", {"ledger_page": "3"}))
    history = oldest.split("Points history")[1].split("Reward codes")[0]
    assert "page 3 of 3" in history and "goodwill 5 " in history and "goodwill 6 " not in history
    assert history.split("← Newer")[0].rstrip().endswith("Order A-1001 (earn, order) 1,200"), "the first entry"
    middle = flat(await page(console, f"/console/customers/{store.ann}", {"ledger_page": "2"}))
    assert f"goodwill 14 (adjust, test) {balance + 400 - 100:,}" in middle


async def test_customers_are_found_by_name_order_number_handle_and_chat(any_console: Console, program: Program) -> None:
    store = seed(any_console.db, program)
    make_merchant(any_console.db, AGENT, "agent")
    await any_console.sign_in(AGENT)
    for query in ("quixotic", "Annabelle Q", "#A-1001", "A-1001", "@annabelle.quixotic", "annabelle.quixotic",
                  TELEGRAM, EMAIL.upper()):
        response = await any_console.get("/console/customers", {"q": query})
        assert response.status == 303 and response.headers["Location"] == f"/console/customers/{store.ann}", query
    several = flat(await page(any_console, "/console/customers", {"q": "B"}))  # one letter: a name needs two
    assert "No customer matches" in several
    with any_console.db.session(write=True) as session:
        session.get(Customer, store.cy).last_name = "Quixote"  # now two customers answer to "quixot"
    two = flat(await page(any_console, "/console/customers", {"q": "QUIXOT"}))
    assert EMAIL in two and "cy@example.com" in two and "bo@example.com" not in two
    nobody = flat(await page(any_console, "/console/customers", {"q": "zz-nobody-zz"}))
    assert "No customer matches “zz-nobody-zz”" in nobody
    like = flat(await page(any_console, "/console/customers", {"q": "%"}))
    assert "No customer matches" in like, "LIKE wildcards are text"


async def test_the_list_sorts_filters_and_exports_for_owners(any_console: Console, program: Program, clock) -> None:
    store = seed(any_console.db, program)
    make_merchant(any_console.db, OWNER, "owner")
    await any_console.sign_in(OWNER)
    html = await page(any_console, "/console/customers", {"sort": "balance"})
    ids = [int(found) for found in re.findall(r'id="customer-(\d+)"', html)]
    with any_console.db.session() as session:
        balances = {c.id: c.points_balance for c in session.execute(select(Customer)).scalars()}
    assert ids == sorted(balances, key=lambda i: (-balances[i], i))
    ordered = await page(any_console, "/console/customers", {"ordered_within": "90", "sort": "last_order"})
    assert re.findall(r'id="customer-(\d+)"', ordered) == [str(store.ann)]
    never = await page(any_console, "/console/customers", {"no_order_for": "30"})
    assert str(store.ann) not in re.findall(r'id="customer-(\d+)"', never)
    rich = await page(any_console, "/console/customers", {"min_balance": str(balances[store.ann])})
    assert str(store.ann) in re.findall(r'id="customer-(\d+)"', rich)
    bad = await any_console.get("/console/customers", {"min_balance": "lots"})
    assert bad.status == 400 and "Minimum balance must be a whole number" in await bad.text()

    export = await any_console.get("/console/customers/export.csv", {"sort": "balance"})
    assert export.status == 200 and export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await export.read()).decode("utf-8-sig"))))
    assert rows[0] == ["id", "name", "email", "tier", "balance", "orders", "last_order_at", "customer_since", "chats"]
    assert [int(row[0]) for row in rows[1:]] == ids
    ann = next(row for row in rows if row[0] == str(store.ann))
    assert ann[1:3] == ["Annabelle Quixotic", EMAIL] and ann[5] == "1" and "telegram" in ann[8]
