"""The Segments page (bot/segments/): the built-in and saved segments, a filter editor whose size and sample
of members (each with the reason they match) follow every change, saving a segment, and the members as CSV.

GET  /console/segments                     the editor, with ?segment=REF (built-in key or saved id) or
                                           ?filter=JSON loaded; the size and 20 members with reasons
GET  /console/segments/preview?filter=JSON the size and members as JSON: what the page's script
                                           (static/segments.js) asks for, debounced, as the filter changes
POST /console/segments                     save the filter under a name (a name already saved gets it)
POST /console/segments/{id}/delete         delete a saved segment (owners)
GET  /console/segments/export.csv          every member with their figures and reason (owners), streamed

Merchants of either role build, count and save segments; the export (customers' e-mails, leaving the
console) and deleting are for owners, like the other exports.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import PROGRAM
from bot.audit import record
from bot.console.page import (
    ID, MERCHANT, PREFIX, SECURITY_HEADERS, error_page, has_nul, in_store, owner_only, render,
)
from bot.log import get_logger
from bot.models import Merchant
from bot.segments import export
from bot.segments.conditions import CONDITION_KINDS, SegmentError
from bot.segments.filters import SegmentFilter
from bot.segments.service import (
    Member, Segment, UnknownSegment, count, delete_segment, find, list_segments, members, save_segment,
)

log = get_logger(__name__)

PAGE = f"{PREFIX}/segments"
SAMPLE_SIZE = 20
EXPORT_BATCH = 1_000
MAX_FILTER_CHARS = 20_000


def add_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, segments_page, name="console_segments")
    app.router.add_post(PAGE, save, name="console_segments_save")
    app.router.add_get(f"{PAGE}/preview", preview, name="console_segments_preview")
    app.router.add_get(f"{PAGE}/export.csv", export_csv, name="console_segments_export")
    app.router.add_post(f"{PAGE}/{{id:{ID}}}/delete", delete, name="console_segments_delete")


def _filter_from(text: str) -> SegmentFilter:
    if len(text) > MAX_FILTER_CHARS or has_nul(text):
        raise SegmentError("the filter is too long or holds characters that cannot be used")
    return SegmentFilter.from_json(text or '{"conditions": []}')


def _editor_kinds() -> List[Dict[str, Any]]:
    """Every condition kind with its fields, for the editor's rows and templates."""
    return [{"kind": kind, "label": cls.label, "doc": (cls.__doc__ or "").split("\n\n")[0].strip(),
             "fields": cls.fields} for kind, cls in CONDITION_KINDS.items()]


def _member_json(member: Member) -> Dict[str, Any]:
    return {"id": member.customer_id, "name": member.name, "email": member.email or "", "reason": member.reason}


async def _evaluate(request: web.Request, segment_filter: SegmentFilter) -> Tuple[int, List[Member]]:
    program = request.app[PROGRAM]()

    def work(session: Session) -> Tuple[int, List[Member]]:
        return (count(session, segment_filter, program=program),
                members(session, segment_filter, limit=SAMPLE_SIZE, program=program))

    return await in_store(request, work)


async def segments_page(request: web.Request) -> web.StreamResponse:
    program = request.app[PROGRAM]()
    ref = request.query.get("segment", "").strip()
    text = request.query.get("filter", "")
    error: Optional[str] = None
    chosen: Optional[Segment] = None

    def load(session: Session) -> Tuple[List[Segment], Optional[Segment]]:
        segments = list_segments(session, program=program)
        return segments, (find(session, ref, program=program) if ref else None)

    try:
        segments, chosen = await in_store(request, load)
    except UnknownSegment as unknown:
        segments, error = await in_store(request, lambda session: list_segments(session, program=program)), str(unknown)
    segment_filter = chosen.filter if chosen is not None else SegmentFilter()
    if text and chosen is None:
        try:
            segment_filter = _filter_from(text)
        except SegmentError as refused:
            error = str(refused)
    size, sample = await _evaluate(request, segment_filter)
    filter_json = json.dumps(segment_filter.to_json(), indent=1)
    return render(request, "segments.html", {
        "segments": segments, "chosen": chosen, "filter": segment_filter, "filter_json": filter_json,
        "conditions": [condition.to_json() for condition in segment_filter.conditions], "kinds": _editor_kinds(),
        "size": size, "sample": sample, "error": error, "sample_size": SAMPLE_SIZE,
        "export_url": f"{PAGE}/export.csv?" + urlencode({"filter": json.dumps(segment_filter.to_json())}),
        "saved_notice": request.query.get("saved", ""),
    }, status=400 if error else 200)


async def preview(request: web.Request) -> web.StreamResponse:
    try:
        segment_filter = _filter_from(request.query.get("filter", ""))
    except SegmentError as refused:
        return web.json_response({"error": str(refused)}, status=400, headers={"Cache-Control": "no-store"})
    size, sample = await _evaluate(request, segment_filter)
    return web.json_response({
        "count": size, "description": segment_filter.describe(), "members": [_member_json(m) for m in sample],
        "export_url": f"{PAGE}/export.csv?" + urlencode({"filter": json.dumps(segment_filter.to_json())}),
    }, headers={"Cache-Control": "no-store"})


async def save(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name, description, text = (str(form.get(key, "")) for key in ("name", "description", "filter"))
    merchant_id = request[MERCHANT].id
    program = request.app[PROGRAM]()

    def work(session: Session) -> Segment:
        merchant = session.get(Merchant, merchant_id)
        saved = save_segment(session, name, _filter_from(text), by=merchant.email, description=description,
                             now=clock.now(), program=program)
        record(session, merchant, "segment_saved", f"segment {saved.id}", f"{saved.name}: {saved.filter.describe()}",
               clock.now())
        return saved

    try:
        if has_nul(name, description):
            raise SegmentError("the name or description holds characters that cannot be used")
        saved = await in_store(request, work, write=True)
    except SegmentError as refused:
        return error_page(request, 400, "Segment not saved", str(refused))
    log.info("console.segment_saved", segment_id=saved.id, merchant_id=merchant_id)
    raise web.HTTPSeeOther(f"{PAGE}?" + urlencode({"segment": saved.ref, "saved": saved.name}))


@owner_only
async def delete(request: web.Request) -> web.StreamResponse:
    segment_id = request.match_info["id"]
    merchant_id = request[MERCHANT].id
    program = request.app[PROGRAM]()

    def work(session: Session) -> Segment:
        gone = delete_segment(session, segment_id, program=program)
        record(session, session.get(Merchant, merchant_id), "segment_deleted", f"segment {gone.id}", gone.name,
               clock.now())
        return gone

    try:
        await in_store(request, work, write=True)
    except UnknownSegment:
        return error_page(request, 404, "Not found", "There is no such saved segment.")
    raise web.HTTPSeeOther(PAGE)


@owner_only
async def export_csv(request: web.Request) -> web.StreamResponse:
    program = request.app[PROGRAM]()
    ref = request.query.get("segment", "").strip()
    try:
        if ref:
            chosen = await in_store(request, lambda session: find(session, ref, program=program))
            segment_filter, name = chosen.filter, chosen.name
        else:
            segment_filter, name = _filter_from(request.query.get("filter", "")), "filter"
    except (SegmentError, UnknownSegment) as refused:
        # A file of something else than what was asked for would be worse than none.
        return error_page(request, 400, "Export not started", str(refused))
    now = clock.now()
    response = web.StreamResponse(headers={
        **SECURITY_HEADERS,
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{export.filename(name, now.date())}"',
        "Cache-Control": "no-store",
    })

    def batch_after(after: int) -> Awaitable[List[Member]]:
        # A transaction per batch: nothing is held open while the client reads.
        return in_store(request, lambda session: members(session, segment_filter, limit=EXPORT_BATCH, after_id=after,
                                                         now=now, program=program))

    batch = await batch_after(0)  # before the headers: a failing query still gets an error page
    await response.prepare(request)
    written = 0
    try:
        await response.write(export.header().encode("utf-8"))
        while True:
            if batch:
                await response.write(export.rows_csv(batch).encode("utf-8"))
                written += len(batch)
            if len(batch) < EXPORT_BATCH:
                break
            batch = await batch_after(batch[-1].customer_id)
        await response.write_eof()
    except ConnectionResetError:
        log.info("console.segment_export_abandoned", rows=written, merchant_id=request[MERCHANT].id)
        return response
    except Exception:
        # Headers are gone: end the connection so the download shows as failed instead of a short file.
        log.exception("console.segment_export_failed", rows=written, merchant_id=request[MERCHANT].id)
        if request.transport is not None:
            request.transport.close()
        return response
    merchant_id = request[MERCHANT].id
    await in_store(request, lambda session: record(
        session, session.get(Merchant, merchant_id), "segment_exported", f"segment {ref or 'filter'}",
        f"{written:,} members: {segment_filter.describe()}", clock.now()), write=True)
    log.info("console.segment_export", rows=written, merchant_id=merchant_id)
    return response
