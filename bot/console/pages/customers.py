"""The customers page: finding a customer and erasing their personal data (owners only).

GET  /console/customers?q=…             find by e-mail, id (42 or #42) or chat sender id (a query with a
                                        control character such as NUL matches nothing: 400, said so)
GET  /console/customers/{id}            the profile: points, tier, chats, what is kept about them, and the
                                        "Erase personal data" form
POST /console/customers/{id}/erase      the owner types the customer's e-mail (or ERASE when there is none)
                                        to confirm; bot/privacy.py erases the store's rows and the tracker
                                        store's conversations, and the report is shown

The console guard has already refused a POST without the session's CSRF token, so nothing is erased then;
`owner_only` answers 403 to agents on every route here.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import DATABASE, PROGRAM, SETTINGS, in_executor
from bot.console.page import ID, MERCHANT, PREFIX, error_page, in_store, owner_only, render
from bot.identity import find_customers
from bot.log import get_logger
from bot.privacy import CustomerProfile, ErasureReport, UnknownCustomer, customer_profile, erase_customer_everywhere
from bot.shared.text import has_control_characters

log = get_logger(__name__)

CUSTOMERS = f"{PREFIX}/customers"
CONFIRM_WORD = "ERASE"
MAX_QUERY_CHARS = 320
COUNT_LABELS = (
    ("orders", "Orders"), ("feedback", "Feedback"), ("transcripts", "Transcripts"), ("handoffs", "Handoff requests"),
    ("reviews", "Reviews"), ("content", "Photos and videos"), ("quiz_runs", "Quiz runs"),
    ("searches", "Product searches"),
)
TABLE_LABELS = {
    "customers": "Customer's e-mail, names, birthday and store id",
    "channel_identities": "Chat identities",
    "transcripts": "Transcripts",
    "feedback": "Feedback (score and topics kept; comment, search text and links removed)",
    "feedback_notes": "Merchant notes on their feedback",
    "handoff_requests": "Handoff requests (messages removed)",
    "reviews": "Reviews (text and media removed; the rating and its points kept)",
    "content_submissions": "Photos and videos",
    "social_follow_claims": "Social follow claims (their handle removed)",
    "quiz_runs": "Quiz runs (e-mail and consent removed, answers kept for statistics)",
    "product_searches": "Product searches (typed text removed)",
    "link_codes": "Account link codes",
    "link_attempts": "Wrong link code tries",
    "outbound_messages": "Queued and sent notices",
    "orders": "Orders (address and IP hashes removed; amounts kept for the accounts)",
    "referrals": "Referrals as the friend (chat and IP hash removed)",
    "referral_clicks": "Their visits through referral links (IP hash and browser removed)",
}

# Where the deleted rows of a table are not what its anonymised rows are.
DELETED_LABELS = {"reviews": "Reviews awaiting moderation (withdrawn)",
                  "social_follow_claims": "Social follow claims awaiting moderation (withdrawn)"}


def add_routes(app: web.Application) -> None:
    """This page's routes (bot/console/app.py calls it)."""
    app.router.add_get(CUSTOMERS, search, name="console_customers")
    app.router.add_get(CUSTOMERS + "/{id:" + ID + "}", profile, name="console_customer")
    app.router.add_post(CUSTOMERS + "/{id:" + ID + "}/erase", erase, name="console_customer_erase")


@owner_only
async def search(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:MAX_QUERY_CHARS]
    if has_control_characters(query):
        # No e-mail, id or sender id has one (and PostgreSQL refuses NUL): nothing matches, and the page says why.
        shown = "".join(char for char in query if not has_control_characters(char))
        return render(request, "customers.html", {"query": shown, "results": [], "searched": True,
                                                  "control_characters": True}, status=400)

    def work(session: Session) -> List[Dict[str, Any]]:
        return [
            {"id": customer.id, "email": customer.email, "name": _name(customer.first_name, customer.last_name),
             "points": customer.points_balance, "created_at": customer.created_at}
            for customer in find_customers(session, query)
        ]

    results = await in_store(request, work) if query else []
    if len(results) == 1:
        raise web.HTTPSeeOther(f"{CUSTOMERS}/{results[0]['id']}")
    return render(request, "customers.html", {"query": query, "results": results, "searched": bool(query),
                                              "control_characters": False})


@owner_only
async def profile(request: web.Request) -> web.StreamResponse:
    found = await _profile(request, _customer_id(request))
    if found is None:
        return _not_found(request)
    return _profile_page(request, found)


@owner_only
async def erase(request: web.Request) -> web.StreamResponse:
    customer_id = _customer_id(request)
    form = await request.post()
    typed = str(form.get("confirm", "")).strip()
    if has_control_characters(typed):
        typed = ""  # no e-mail has one (and neither has ERASE): not a confirmation
    found = await _profile(request, customer_id)
    if found is None:
        return _not_found(request)
    expected = found.email or CONFIRM_WORD
    if typed.lower() != expected.lower():
        log.info("console.erasure_not_confirmed", customer_id=customer_id, merchant_id=request[MERCHANT].id)
        error = (f"Type the customer's e-mail ({found.email}) to confirm." if found.email
                 else f"Type {CONFIRM_WORD} to confirm.")
        return _profile_page(request, found, status=400, error=error)

    merchant = request[MERCHANT]
    actor = f"console:{merchant.email}"
    now = clock.now()

    def work() -> ErasureReport:
        return erase_customer_everywhere(request.app[DATABASE], request.app[SETTINGS], customer_id, actor=actor, now=now)

    try:
        report = await in_executor(request.app, work)
    except UnknownCustomer:  # erased and removed meanwhile: there is no such customer any more
        return _not_found(request)
    rows = [(DELETED_LABELS.get(table) or TABLE_LABELS.get(table, table), "deleted", count)
            for table, count in report.deleted.items()]
    rows += [(TABLE_LABELS.get(table, table), "anonymised", count) for table, count in report.anonymised.items()]
    return render(request, "customers_erased.html", {"report": report, "rows": rows})


async def _profile(request: web.Request, customer_id: int) -> Optional[CustomerProfile]:
    now = clock.now()

    program = request.app[PROGRAM]()

    def work(session: Session) -> Optional[CustomerProfile]:
        try:
            return customer_profile(session, customer_id, program, now)
        except UnknownCustomer:
            return None

    return await in_store(request, work)


def _profile_page(request: web.Request, found: CustomerProfile, *, status: int = 200,
                  error: str = "") -> web.Response:
    context = {
        "customer": found,
        "name": _name(found.first_name, found.last_name),
        "counts": [(label, found.counts.get(key, 0)) for key, label in COUNT_LABELS],
        "confirm_word": found.email or CONFIRM_WORD,
        "error": error,
    }
    return render(request, "customers_profile.html", context, status=status)


def _customer_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route's ID: 1 to 9 ASCII digits, within any database's integer


def _not_found(request: web.Request) -> web.Response:
    return error_page(request, 404, "No such customer", "There is no customer with that id.")


def _name(first: Optional[str], last: Optional[str]) -> str:
    return " ".join(part for part in (first, last) if part)
