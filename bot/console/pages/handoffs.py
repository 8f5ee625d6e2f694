"""The handoffs page (every merchant): requests to talk to a person, open or closed, one with its last
messages, and closing one (bot/handoff.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.console.page import ID, MERCHANT, PREFIX, error_page, in_store, int_param, render, small_int
from bot.handoff import UnknownHandoff, close_handoff, handoff_counts, handoff_detail, list_handoffs
from bot.log import get_logger
from bot.models import HandoffRequest

log = get_logger(__name__)

PAGE_SIZE = 50
LAST_MESSAGES_SHOWN = 3


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/handoffs", handoffs_page, name="console_handoffs")
    app.router.add_get(PREFIX + "/handoffs/{id:" + ID + "}", handoff_page, name="console_handoff")
    app.router.add_post(PREFIX + "/handoffs/{id:" + ID + "}/close", handoff_close)


def _moment(text: Any) -> Optional[datetime]:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _turns(turns: Sequence[Any]) -> List[Dict[str, Any]]:
    """Turns as the transcript list shows them; a role other than shopper is shown as the bot's."""
    shown = []
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        shown.append({"role": "shopper" if turn.get("role") == "shopper" else "bot",
                      "text": str(turn.get("text") or ""), "at": _moment(turn.get("at"))})
    return shown


async def handoffs_page(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status", "open")
    if status not in ("open", "closed"):
        status = "open"
    page = int_param(request, "page", 1, 1, 10_000)
    closed_id = small_int(request.query.get("closed", ""))

    def work(session: Session) -> Tuple[Any, Dict[str, int], Any]:
        rows = list_handoffs(session, status, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        just_closed = session.get(HandoffRequest, closed_id) if closed_id is not None else None
        return rows, handoff_counts(session), just_closed

    rows, counts, just_closed = await in_store(request, work)
    items = [{"row": row, "last": _turns(row.request.last_messages or [])[-LAST_MESSAGES_SHOWN:]}
             for row in rows[:PAGE_SIZE]]
    return render(request, "handoffs.html", {
        "status": status, "items": items, "counts": counts, "page": page, "has_more": len(rows) > PAGE_SIZE,
        "just_closed": just_closed if just_closed is not None and just_closed.status == "closed" else None,
    })


async def handoff_page(request: web.Request) -> web.StreamResponse:
    request_id = int(request.match_info["id"])
    try:
        detail = await in_store(request, lambda session: handoff_detail(session, request_id))
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    return render(request, "handoffs_detail.html", {"detail": detail, "turns": _turns(detail.turns)})


async def handoff_close(request: web.Request) -> web.StreamResponse:
    request_id = int(request.match_info["id"])
    merchant = request[MERCHANT]
    try:
        closed = await in_store(
            request, lambda session: close_handoff(session, request_id, merchant.email, clock.now()), write=True)
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    log.info("console.handoff_closed", handoff_id=closed.id, merchant_id=merchant.id)
    raise web.HTTPSeeOther(f"{PREFIX}/handoffs?closed={closed.id}")
