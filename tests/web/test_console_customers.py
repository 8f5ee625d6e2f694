"""The console's customer lookup and personal-data erasure (bot/console/pages/customers.py), signed in through
the real login form, on SQLite and PostgreSQL; conversations in a real Rasa SQL tracker store."""
from __future__ import annotations

from pathlib import Path

from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import func, select

from bot.loyalty.ledger import verify_balances
from bot.loyalty.program import Program
from bot.models import ChannelIdentity, Customer, Feedback, Transcript
from tests.unit.test_privacy import EMAIL, GUEST_WEB, INSTAGRAM, TELEGRAM, save_conversation, seed
from tests.web.console import Console, make_merchant

OWNER, AGENT = "olive@shop.example", "arlo@shop.example"


def _still_there(console: Console, customer_id: int) -> bool:
    """Nothing of her was erased: her e-mail, her chats and her transcripts are all in place."""
    with console.db.session() as session:
        customer = session.get(Customer, customer_id)
        identities = session.execute(select(func.count()).select_from(ChannelIdentity)
                                     .where(ChannelIdentity.customer_id == customer_id)).scalar_one()
        transcripts = session.execute(select(func.count()).select_from(Transcript)
                                      .where(Transcript.customer_id == customer_id)).scalar_one()
    return customer.email == EMAIL and identities == 4 and transcripts == 2


async def test_an_owner_finds_a_customer_and_erases_them(any_console: Console, program: Program,
                                                         tmp_path: Path) -> None:
    store = seed(any_console.db, program)
    make_merchant(any_console.db, OWNER, "owner")
    (tmp_path / "var").mkdir(exist_ok=True)
    trackers = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "var" / "conversations.db"))
    for sender in (TELEGRAM, INSTAGRAM, "5550001"):
        await save_conversation(trackers, sender, "hello")
    assert (await any_console.sign_in(OWNER)).status == 303

    found = await any_console.get("/console/customers", params={"q": EMAIL.upper()})
    assert found.status == 303 and found.headers["Location"] == f"/console/customers/{store.ann}"
    by_sender = await any_console.get("/console/customers", params={"q": TELEGRAM})
    assert by_sender.headers["Location"] == f"/console/customers/{store.ann}"
    page = await any_console.get(f"/console/customers/{store.ann}")
    html = await page.text()
    assert page.status == 200 and "Customer #%d · Annabelle Quixotic" % store.ann in html
    assert EMAIL in html and TELEGRAM in html and GUEST_WEB in html and "1,100" in html
    assert 'action="/console/customers/%d/erase"' % store.ann in html and 'name="csrf_token"' in html
    assert "style=" not in html and "<script" not in html, "the CSP allows neither"
    none = await any_console.get("/console/customers", params={"q": "nobody@example.com"})
    assert none.status == 200 and "No customer matches" in await none.text()

    erased = await any_console.post(f"/console/customers/{store.ann}/erase", {"confirm": f" {EMAIL.upper()} "})

    html = await erased.text()
    assert erased.status == 200, html
    assert "personal data erased" in html and "Transcripts" in html and "forfeited" in html
    assert "Conversations erased from the bot's conversation store: 2" in html
    assert "Their visits through referral links (IP hash and browser removed)" in html
    assert EMAIL not in html and "Quixotic" not in html
    with any_console.db.session() as session:
        customer = session.get(Customer, store.ann)
        assert (customer.email, customer.first_name, customer.points_balance) == (None, None, 0)
        assert session.execute(select(func.count()).select_from(Transcript)).scalar_one() == 1  # Bo's
        assert session.execute(select(func.count()).select_from(Feedback)).scalar_one() == 3  # scores kept
        assert verify_balances(session) == []
    assert await trackers.retrieve(TELEGRAM) is None and await trackers.retrieve(INSTAGRAM) is None
    assert await trackers.retrieve("5550001") is not None
    after = await any_console.get(f"/console/customers/{store.ann}")
    assert "Erased customer #%d" % store.ann in await after.text()
    # Erasing again is harmless; with no e-mail left, the word ERASE confirms.
    again = await any_console.post(f"/console/customers/{store.ann}/erase", {"confirm": "erase"})
    assert again.status == 200 and "Nothing was left to erase" in await again.text()
    trackers.engine.dispose()


async def test_agents_read_customers_but_get_403_on_export_and_erasure(console: Console, program: Program) -> None:
    store = seed(console.db, program)
    make_merchant(console.db, AGENT, "agent")
    await console.sign_in(AGENT)
    # Agents read customers (they answer them in handoffs), but neither export nor erase them.
    found = await console.get("/console/customers", params={"q": EMAIL})
    assert found.status == 303 and found.headers["Location"] == f"/console/customers/{store.ann}"
    html = await (await console.get(f"/console/customers/{store.ann}")).text()
    assert EMAIL in html and "/erase" not in html
    response = await console.get("/console/customers/export.csv")
    assert response.status == 403 and "Owners only" in await response.text()
    response = await console.post(f"/console/customers/{store.ann}/erase", {"confirm": EMAIL})
    assert response.status == 403
    assert _still_there(console, store.ann)


async def test_a_post_without_the_csrf_token_is_refused_and_erases_nothing(console: Console, program: Program) -> None:
    store = seed(console.db, program)
    make_merchant(console.db, OWNER, "owner")
    await console.sign_in(OWNER)
    for token in ("", "not-the-session-token"):
        response = await console.post(f"/console/customers/{store.ann}/erase", {"confirm": EMAIL}, csrf=token)
        assert response.status == 403 and "Form expired" in await response.text()
    assert _still_there(console, store.ann)


async def test_a_wrong_confirmation_is_refused_and_erases_nothing(console: Console, program: Program) -> None:
    store = seed(console.db, program)
    make_merchant(console.db, OWNER, "owner")
    await console.sign_in(OWNER)
    for typed in ("", "ERASE", "bo@example.com", EMAIL + "x"):
        response = await console.post(f"/console/customers/{store.ann}/erase", {"confirm": typed})
        html = await response.text()
        assert response.status == 400 and f"Type the customer&#39;s e-mail ({EMAIL}) to confirm." in html
    assert _still_there(console, store.ann)


async def test_signed_out_unknown_and_oversized_ids(console: Console, program: Program) -> None:
    store = seed(console.db, program)
    signed_out = await console.get(f"/console/customers/{store.ann}")
    assert signed_out.status == 303 and signed_out.headers["Location"].startswith("/console/login")
    make_merchant(console.db, OWNER, "owner")
    await console.sign_in(OWNER)
    # Too many digits for int() (5,000), or digits that are not ASCII ("٣" is Arabic-Indic 3, Cy's id):
    # no route, so 404 rather than a server error or another customer's page.
    for customer_id in ("4242", "99999999999999999999999", "9" * 5000, "%D9%A3", "0000000003"):
        assert (await console.get(f"/console/customers/{customer_id}")).status == 404, customer_id[:20]
        response = await console.post(f"/console/customers/{customer_id}/erase", {"confirm": "ERASE"})
        assert response.status == 404, customer_id[:20]
    assert (await console.get(f"/console/customers/{store.cy:09d}")).status == 200
    assert _still_there(console, store.ann)


async def test_odd_searches_match_nobody_instead_of_failing(any_console: Console, program: Program) -> None:
    """Digits int() refuses ("²", "①"), and control characters, which PostgreSQL refuses (NUL)."""
    store = seed(any_console.db, program)
    make_merchant(any_console.db, OWNER, "owner")
    await any_console.sign_in(OWNER)
    for query in ("²", "#①", "9" * 5000):
        response = await any_console.get("/console/customers", params={"q": query})
        assert response.status == 200 and "No customer matches" in await response.text(), query[:20]
    for query in ("a\x00b", EMAIL + "\x00", f"#{store.ann}\x00", f"{TELEGRAM}\x1b"):
        response = await any_console.get("/console/customers", params={"q": query})
        html = await response.text()
        assert response.status == 400, (repr(query), html[:300])
        assert "the search contained a control character (such as NUL)" in html and "\x00" not in html
    page = await any_console.get("/console/customers", params={"q": "a\x00b"})
    assert 'value="ab"' in await page.text(), "the search box keeps what was typed, without the NUL"


async def test_a_confirmation_with_control_characters_is_refused(any_console: Console, program: Program) -> None:
    store = seed(any_console.db, program)
    make_merchant(any_console.db, OWNER, "owner")
    await any_console.sign_in(OWNER)
    for typed in (EMAIL + "\x00", "\x00" + EMAIL, EMAIL + "\x07"):
        response = await any_console.post(f"/console/customers/{store.ann}/erase", {"confirm": typed})
        html = await response.text()
        assert response.status == 400 and f"Type the customer&#39;s e-mail ({EMAIL}) to confirm." in html
    assert _still_there(any_console, store.ann)
