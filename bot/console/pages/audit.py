"""The audit log page (owners): every merchant action with who, when and what (bot/audit.py), newest
first, by kind of action."""
from __future__ import annotations

from aiohttp import web

from bot.audit import ACTIONS, list_events
from bot.console.page import PREFIX, in_store, int_param, owner_only, render

PAGE_SIZE = 50


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/audit", audit_page, name="console_audit")


@owner_only
async def audit_page(request: web.Request) -> web.StreamResponse:
    action = request.query.get("action", "")
    action = action if action in ACTIONS else ""
    page = int_param(request, "page", 1, 1, 100_000)
    found = await in_store(request, lambda session: list_events(session, action, PAGE_SIZE, (page - 1) * PAGE_SIZE))
    return render(request, "audit.html", {
        "events": found.events, "total": found.total, "action": action, "actions": ACTIONS, "page": page,
        "has_more": page * PAGE_SIZE < found.total,
    })
