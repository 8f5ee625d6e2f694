"""The customers pages: the list (sort, filters, CSV export for owners), finding a customer, one customer
whole (bot/customer_record.py: each part paged), and erasing their personal data (owners only).

GET  /console/customers                 the list: sort and filters (tier, balance, last order), paged
GET  /console/customers?q=…             find by name, e-mail, id (42 or #42), order number, chat sender id or
                                        social handle (a query with a control character such as NUL matches
                                        nothing: 400, said so); one match opens their page
GET  /console/customers/export.csv      the filtered list as CSV (owners)
GET  /console/customers/{id}            everything about them, each part paged (?orders_page=2 …), and, for
                                        owners, the "Erase personal data" form
POST /console/customers/{id}/erase      the owner types the customer's e-mail (or ERASE when there is none)
                                        to confirm; bot/privacy.py erases the store's rows and the tracker
                                        store's conversations, and the report is shown

The console guard has already refused a POST without the session's CSRF token, so nothing is erased then;
agents read customers (they answer them in handoffs) while `owner_only` keeps the export and the erasure
for owners.
"""
from __future__ import annotations

import csv
import io
import secrets
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import DATABASE, PROGRAM, SETTINGS, in_executor
from bot.audit import record
from bot.console.page import (
    ID, MERCHANT, PREFIX, SECURITY_HEADERS, error_page, has_nul, in_store, int_param, owner_only, render,
)
from bot.customer_record import (
    EXPORT_COLUMNS, PARTS, SORTS, CustomerFilter, customer_parts, export_cells, list_customers, search_customers,
    tier_names,
)
from bot.feedback.export import BOM, safe_cell
from bot.log import get_logger
from bot.loyalty.adjustments import Adjustment, AdjustmentRefused, adjust_points
from bot.models import Merchant
from bot.privacy import CustomerProfile, ErasureReport, UnknownCustomer, customer_profile, erase_customer_everywhere
from bot.shared.text import has_control_characters

log = get_logger(__name__)

CUSTOMERS = f"{PREFIX}/customers"
LIST_PAGE_SIZE = 50
EXPORT_BATCH = 500
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
    "handoff_messages": "Messages of their live handoffs",
    "audit_events": "Audit log lines quoting their handoffs (text removed)",
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
    app.router.add_get(CUSTOMERS + "/export.csv", export_csv, name="console_customers_export")
    app.router.add_get(CUSTOMERS + "/{id:" + ID + "}", profile, name="console_customer")
    app.router.add_post(CUSTOMERS + "/{id:" + ID + "}/erase", erase, name="console_customer_erase")
    app.router.add_post(CUSTOMERS + "/{id:" + ID + "}/adjust", adjust, name="console_customer_adjust")


async def search(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:MAX_QUERY_CHARS]
    wanted = CustomerFilter.from_params(request.query)
    page = int_param(request, "page", 1, 1, 100_000)
    base = {"query": query, "results": [], "searched": bool(query), "control_characters": False, "filter": wanted,
            "sorts": SORTS, "rows": [], "page": page, "has_more": False, "tiers": []}
    if has_control_characters(query):
        # No e-mail, id or sender id has one (and PostgreSQL refuses NUL): nothing matches, and the page says why.
        shown = "".join(char for char in query if not has_control_characters(char))
        return render(request, "customers.html", {**base, "query": shown, "searched": True,
                                                  "control_characters": True}, status=400)

    def work(session: Session) -> Dict[str, Any]:
        if query:
            return {"results": [
                {"id": customer.id, "email": customer.email, "name": _name(customer.first_name, customer.last_name),
                 "points": customer.points_balance, "created_at": customer.created_at}
                for customer in search_customers(session, query)]}
        rows = list_customers(session, wanted, clock.now(), LIST_PAGE_SIZE + 1, (page - 1) * LIST_PAGE_SIZE)
        return {"rows": rows[:LIST_PAGE_SIZE], "has_more": len(rows) > LIST_PAGE_SIZE, "tiers": tier_names(session)}

    found = await in_store(request, work)
    if len(found.get("results", [])) == 1:
        raise web.HTTPSeeOther(f"{CUSTOMERS}/{found['results'][0]['id']}")
    return render(request, "customers.html", {**base, **found}, status=400 if wanted.errors else 200)


@owner_only
async def export_csv(request: web.Request) -> web.StreamResponse:
    """The list as filtered, every row, streamed in batches (a transaction each)."""
    wanted = CustomerFilter.from_params(request.query)
    if wanted.errors:
        return error_page(request, 400, "Export not started", "Some filters could not be used: "
                          + "; ".join(wanted.errors) + ".")
    now = clock.now()
    response = web.StreamResponse(headers={
        **SECURITY_HEADERS, "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="customers-{now.date().isoformat()}.csv"'})
    batch = await in_store(request, lambda session: list_customers(session, wanted, now, EXPORT_BATCH, 0))
    await response.prepare(request)
    written = 0
    try:
        await response.write((BOM + _csv_lines([list(EXPORT_COLUMNS)])).encode())
        while True:
            await response.write(_csv_lines([[safe_cell(cell) for cell in export_cells(row)] for row in batch]).encode())
            written += len(batch)
            if len(batch) < EXPORT_BATCH:
                break
            offset = written
            batch = await in_store(request, lambda session: list_customers(session, wanted, now, EXPORT_BATCH, offset))
        await response.write_eof()
    except ConnectionResetError:
        return response
    log.info("console.customers_export", rows=written, merchant_id=request[MERCHANT].id)
    merchant_id = request[MERCHANT].id
    await in_store(request, lambda session: record(
        session, session.get(Merchant, merchant_id), "customers_exported", "customers",
        f"{written:,} rows" + (f"; filters: {wanted.query_string()}" if wanted.query_string() else ""), clock.now()),
        write=True)
    return response


def _csv_lines(rows: List[List[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


async def profile(request: web.Request) -> web.StreamResponse:
    customer_id = _customer_id(request)
    found = await _profile(request, customer_id)
    if found is None:
        return _not_found(request)
    pages = _part_pages(request)
    parts = await in_store(request, lambda session: customer_parts(session, customer_id, pages))
    return _profile_page(request, found, parts=parts)


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
    await in_store(request, lambda session: record(
        session, session.get(Merchant, merchant.id), "customer_erased", f"customer {customer_id}",
        f"{sum(report.deleted.values()):,} rows deleted, {sum(report.anonymised.values()):,} anonymised", clock.now()),
        write=True)
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


def may_adjust(request: web.Request) -> bool:
    """Owners, and agents when AGENTS_MAY_ADJUST_POINTS is on."""
    return request[MERCHANT].role == "owner" or request.app[SETTINGS].agents_may_adjust_points


async def adjust(request: web.Request) -> web.StreamResponse:
    """Credit or debit points with a reason (bot/loyalty/adjustments.py); back to the customer's page with
    what happened."""
    customer_id = _customer_id(request)
    if not may_adjust(request):
        return error_page(request, 403, "Not allowed", "Adjusting points is for owners on this store.")
    form = await request.post()
    text = str(form.get("points", "")).strip().replace(",", "").replace(" ", "")
    direction = str(form.get("direction", "credit"))
    reason, key = str(form.get("reason", "")), str(form.get("form_key", ""))
    merchant_id = request[MERCHANT].id
    program = request.app[PROGRAM]()
    if has_nul(reason):  # PostgreSQL refuses NUL in text: no reason, said so
        reason = ""
    amount = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None

    def work(session: Session) -> Adjustment:
        if amount is None:
            raise AdjustmentRefused("Points must be a whole number, such as 250.")
        signed = -amount if direction == "debit" else amount
        return adjust_points(session, program, customer_id, signed, reason, session.get(Merchant, merchant_id),
                             key, clock.now())

    try:
        done = await in_store(request, work, write=True)
    except AdjustmentRefused as refused:
        log.info("console.adjustment_refused", customer_id=customer_id, merchant_id=merchant_id)
        raise web.HTTPSeeOther(f"{CUSTOMERS}/{customer_id}?adjust_error={quote(str(refused))}#adjust")
    log.info("console.points_adjusted", customer_id=customer_id, merchant_id=merchant_id, created=done.created)
    said = (f"{done.entry.points:+,} points recorded" if done.created else
            "Already recorded (this form was sent twice): nothing changed") + f". Balance: {done.balance:,}."
    raise web.HTTPSeeOther(f"{CUSTOMERS}/{customer_id}?adjusted={quote(said)}#ledger")


def _part_pages(request: web.Request) -> Dict[str, int]:
    """Which page of each part to show (?orders_page=2 …)."""
    return {name: int_param(request, f"{name}_page", 1, 1, 100_000) for name in PARTS}


def _profile_page(request: web.Request, found: CustomerProfile, *, status: int = 200, error: str = "",
                  parts: Optional[Dict[str, Any]] = None) -> web.Response:
    pages = _part_pages(request)
    context = {
        "may_adjust": may_adjust(request), "form_key": secrets.token_urlsafe(24),
        "adjusted": request.query.get("adjusted", "")[:300], "adjust_error": request.query.get("adjust_error", "")[:300],
        "customer": found,
        "parts": parts,
        "pages": pages,
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
