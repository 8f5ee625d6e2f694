"""The feedback inbox page (filters, pages, a feedback with its transcript, status and notes) and its CSV
export (owners only: every matching customer's e-mail and conversation in one file). The queries are
bot/feedback/inbox.py, the CSV text bot/feedback/export.py."""
from __future__ import annotations

from typing import Awaitable, Dict, List, Optional
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.audit import record
from bot.console.page import ID, MERCHANT, PREFIX, SECURITY_HEADERS, error_page, in_store, owner_only, render
from bot.feedback import export
from bot.feedback.inbox import (
    CHANNELS, EXPORT_BATCH_SIZE, KINDS, MAX_ID, MAX_NOTE_CHARS, MAX_QUERY_CHARS, SCALES, SENTIMENTS, STATUSES,
    TOPICS, Cursor, ExportRow, FeedbackDetail, InboxError, InboxFilter, InboxPage, NoteOutcome, PageRequest,
    add_note, export_batch, feedback_detail, inbox_page, set_status,
)
from bot.log import get_logger
from bot.models import Merchant
from bot.shared.text import without_control_characters

log = get_logger(__name__)

INBOX = f"{PREFIX}/feedback"
FILTER_PARAMS = ("from", "to", "channel", "kind", "band", "score_min", "score_max", "sentiment", "topic",
                 "with_comment", "status", "q")
MAX_BACK_CHARS = 2000
STATUS_LABELS = {"new": "New", "in_progress": "In progress", "done": "Done"}
BAND_LABELS = {"low": "Low (CSAT 1–2 · NPS 0–6)", "medium": "Medium (CSAT 3 · NPS 7–8)",
               "high": "High (CSAT 4–5 · NPS 9–10)"}
# One click to what needs attention first.
QUICK_FILTERS = (
    ("Low scores", {"band": "low"}),
    ("Low scores, not yet handled", {"band": "low", "status": "new"}),
    ("Negative comments", {"sentiment": "negative", "with_comment": "1"}),
    ("In progress", {"status": "in_progress"}),
)


def add_routes(app: web.Application) -> None:
    """This page's routes (bot/console/app.py calls it)."""
    app.router.add_get(INBOX, inbox, name="console_feedback")
    app.router.add_get(f"{INBOX}/export.csv", export_csv, name="console_feedback_export")
    app.router.add_get(INBOX + "/{id:" + ID + "}", detail, name="console_feedback_detail")
    app.router.add_post(INBOX + "/{id:" + ID + "}/status", change_status, name="console_feedback_status")
    app.router.add_post(INBOX + "/{id:" + ID + "}/notes", post_note, name="console_feedback_notes")


def inbox_url(params: Dict[str, str]) -> str:
    query = urlencode(params)
    return f"{INBOX}?{query}" if query else INBOX


async def inbox(request: web.Request) -> web.StreamResponse:
    inbox_filter, errors = InboxFilter.from_params(request.query)
    page_request, page_errors = PageRequest.from_params(request.query)
    errors = errors + page_errors

    page: InboxPage = await in_store(request, lambda session: inbox_page(session, inbox_filter, page_request))
    params = inbox_filter.to_params()
    back = urlencode({**params, **_page_params(request, page.number)})
    context = {
        # What was typed, less any control character (a NUL is refused, not shown back).
        "values": {name: without_control_characters(request.query.get(name, "")) for name in FILTER_PARAMS},
        "errors": errors,
        "error_params": {error.param for error in errors},
        "page": page,
        "filtered": not inbox_filter.is_empty,
        "rows_back": back,
        "newer_url": inbox_url({**params, "newer": page.newer.token, "page": str(page.number - 1)})
        if page.newer else "",
        "older_url": inbox_url({**params, "older": page.older.token, "page": str(page.number + 1)})
        if page.older else "",
        "newest_url": inbox_url(params) if page.number > 2 else "",
        "export_url": f"{INBOX}/export.csv" + (f"?{urlencode(params)}" if params else ""),
        "quick_filters": [(label, inbox_url(quick), quick == params) for label, quick in QUICK_FILTERS],
        "channels": CHANNELS, "kinds": KINDS, "bands": BAND_LABELS, "sentiments": SENTIMENTS,
        "topics": TOPICS, "statuses": STATUS_LABELS, "scales": SCALES, "max_query_chars": MAX_QUERY_CHARS,
    }
    if errors:
        log.info("console.feedback_filter_refused", params=sorted({error.param for error in errors}))
    return render(request, "feedback_inbox.html", context, status=400 if errors else 200)


def _page_params(request: web.Request, number: int) -> Dict[str, str]:
    """The position of the page being shown, so "back to the inbox" returns to it."""
    for name in ("older", "newer"):
        if request.query.get(name) and number > 1:
            return {name: request.query[name], "page": str(number)}
    return {}


async def detail(request: web.Request) -> web.StreamResponse:
    feedback_id = _feedback_id(request)
    found = await _detail(request, feedback_id)
    if found is None:
        return _not_found(request)
    return _detail_page(request, found, back=_back(request.query.get("back")))


async def change_status(request: web.Request) -> web.StreamResponse:
    feedback_id = _feedback_id(request)
    form = await request.post()
    back = _back(form.get("back"))
    status = str(form.get("status", ""))
    if status not in STATUSES:
        found = await _detail(request, feedback_id)
        if found is None:
            return _not_found(request)
        return _detail_page(request, found, back=back, status=400,
                            status_error=f"Choose a status: {', '.join(STATUS_LABELS.values())}.")
    now = clock.now()

    def work(session: Session) -> bool:
        return set_status(session, feedback_id, status, now) is not None

    if not await in_store(request, work, write=True):
        return _not_found(request)
    log.info("console.feedback_status", feedback_id=feedback_id, status=status, merchant_id=request[MERCHANT].id)
    raise web.HTTPSeeOther(_detail_url(feedback_id, back))


async def post_note(request: web.Request) -> web.StreamResponse:
    feedback_id = _feedback_id(request)
    form = await request.post()
    back = _back(form.get("back"))
    text = str(form.get("text", ""))
    merchant = request[MERCHANT]
    now = clock.now()

    def work(session: Session) -> Optional[NoteOutcome]:
        return add_note(session, feedback_id, merchant, text, now)

    try:
        outcome = await in_store(request, work, write=True)
    except InboxError as error:
        found = await _detail(request, feedback_id)
        if found is None:
            return _not_found(request)
        return _detail_page(request, found, back=back, status=400, note_error=str(error),
                            note_text=without_control_characters(text))
    if outcome is None:
        return _not_found(request)
    log.info("console.feedback_note", feedback_id=feedback_id, merchant_id=merchant.id,
             repeated=not outcome.created)
    raise web.HTTPSeeOther(_detail_url(feedback_id, back) + f"#note-{outcome.note.id}")


@owner_only
async def export_csv(request: web.Request) -> web.StreamResponse:
    inbox_filter, errors = InboxFilter.from_params(request.query)
    if errors:
        # A file of something else than what was asked for would be worse than none.
        return error_page(request, 400, "Export not started",
                          "Some filters could not be used: " + " ".join(error.message for error in errors))
    response = web.StreamResponse(headers={
        **SECURITY_HEADERS,
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{export.filename(clock.now().date())}"',
        "Cache-Control": "no-store",
    })
    def batch_after(after: Optional[Cursor]) -> Awaitable[List[ExportRow]]:
        # A transaction per batch: nothing is held open while the client reads.
        return in_store(request, lambda session: export_batch(session, inbox_filter, after, EXPORT_BATCH_SIZE))

    # The first batch before the headers: a failing query still gets an error page, not a broken file.
    batch = await batch_after(None)
    await response.prepare(request)
    written = 0
    try:
        await response.write(export.header().encode("utf-8"))
        while True:
            if batch:
                await response.write(export.rows_csv(batch).encode("utf-8"))
                written += len(batch)
            if len(batch) < EXPORT_BATCH_SIZE:
                break
            after = Cursor(batch[-1].created_at, batch[-1].id)
            batch = await batch_after(after)
        await response.write_eof()
    except ConnectionResetError:
        log.info("console.feedback_export_abandoned", rows=written, merchant_id=request[MERCHANT].id)
        return response
    except Exception:
        # Headers are gone: end the connection so the download shows as failed instead of a short file.
        log.exception("console.feedback_export_failed", rows=written, merchant_id=request[MERCHANT].id)
        if request.transport is not None:
            request.transport.close()
        return response
    merchant_id = request[MERCHANT].id
    await in_store(request, lambda session: record(
        session, session.get(Merchant, merchant_id), "feedback_exported", "feedback",
        f"{written:,} rows" + ("" if inbox_filter.is_empty else " (filtered)"), clock.now()), write=True)
    log.info("console.feedback_export", rows=written, filtered=not inbox_filter.is_empty,
             merchant_id=request[MERCHANT].id)
    return response


def _feedback_id(request: web.Request) -> int:
    value = int(request.match_info["id"])
    if not 0 < value <= MAX_ID:
        raise web.HTTPNotFound()
    return value


async def _detail(request: web.Request, feedback_id: int) -> Optional[FeedbackDetail]:
    return await in_store(request, lambda session: feedback_detail(session, feedback_id))


def _detail_page(request: web.Request, found: FeedbackDetail, *, back: str, status: int = 200,
                 status_error: str = "", note_error: str = "", note_text: str = "") -> web.Response:
    return render(request, "feedback_detail.html", {
        "feedback": found,
        "back": back,
        "inbox_url": f"{INBOX}?{back}" if back else INBOX,
        "statuses": STATUS_LABELS,
        "status_error": status_error,
        "note_error": note_error,
        "note_text": note_text,
        "max_note_chars": MAX_NOTE_CHARS,
        "scale_top": SCALES[found.kind][1] if found.kind in SCALES else "",
    }, status=status)


def _not_found(request: web.Request) -> web.Response:
    return error_page(request, 404, "No such feedback", "There is no feedback with that number. It may have been "
                                                        "erased with its customer.")


def _back(value: object) -> str:
    """The inbox query to return to, rebuilt from its parameters (only known names), so it can only ever
    lead back to the inbox."""
    if not isinstance(value, str) or not value or len(value) > MAX_BACK_CHARS:
        return ""
    known = set(FILTER_PARAMS) | {"older", "newer", "page"}
    pairs: List[tuple] = [(name, item) for name, item in parse_qsl(value) if name in known and item]
    return urlencode(pairs)


def _detail_url(feedback_id: int, back: str) -> str:
    return f"{INBOX}/{feedback_id}" + (f"?{urlencode({'back': back})}" if back else "")

