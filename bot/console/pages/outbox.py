"""The Outbox page (owners): every proactive message (bot/outbox/) newest first — its kind, shopper, state with
the reason it was skipped, postponed or is waiting, the error it failed with, the chat it went to, its tries
and times — filtered by state, with a count per state."""
from __future__ import annotations

from typing import Any, Dict

from aiohttp import web
from sqlalchemy.orm import Session

from bot.console.page import PREFIX, in_store, int_param, owner_only, render
from bot.models.events import OUTBOX_STATES
from bot.outbox.service import list_messages, state_counts

PAGE = f"{PREFIX}/outbox"
PAGE_SIZE = 100


def add_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, outbox_page, name="console_outbox")


@owner_only
async def outbox_page(request: web.Request) -> web.StreamResponse:
    wanted = request.query.get("state", "")
    state = wanted if wanted in OUTBOX_STATES else None
    before = int_param(request, "before", 0, 0, 2 ** 31 - 1) or None

    def work(session: Session) -> Dict[str, Any]:
        messages = list_messages(session, state, PAGE_SIZE + 1, before)
        return {"messages": messages[:PAGE_SIZE], "more": len(messages) > PAGE_SIZE, "counts": state_counts(session)}

    data = await in_store(request, work)
    messages = data["messages"]
    return render(request, "outbox.html", {
        "messages": messages, "counts": data["counts"], "states": OUTBOX_STATES, "state": state or "",
        "older": messages[-1].id if data["more"] and messages else None,
    })
