"""What every console page shares: its paths, the signed-in merchant on the request, rendering a template,
an error page, owners-only pages, store work in one transaction off the event loop, and reading small
numbers from a query. Pages import this module, never the console's app (bot/console/app.py)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, TypeVar

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from bot.app_context import DATABASE, EXECUTOR
from bot.db import transaction_in_thread
from bot.log import get_logger

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

PREFIX = "/console"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
MERCHANT = "console_merchant"  # request keys: the signed-in Merchant and their ConsoleSession
SESSION = "console_session"
OPEN_HANDOFFS = "console_open_handoffs"  # the header's count, read with the session
# Ids in paths: ASCII digits, short enough for every database's integer (a longer one is simply not found).
ID = "[0-9]{1,9}"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: web.Request, template: str, context: Dict[str, Any], *, status: int = 200) -> web.Response:
    """A console page: `context` plus what every page has (the merchant, the CSRF token, the path)."""
    session = request.get(SESSION)
    page = {
        "merchant": request.get(MERCHANT),
        "csrf_token": session.csrf_token if session is not None else "",
        "path": request.path,
        "open_handoffs": request.get(OPEN_HANDOFFS, 0),
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, page)
    response.set_status(status)
    return response


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def owner_only(handler: Handler) -> Handler:
    """Only owners may open this page or post to it; an agent gets 403."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request[MERCHANT].role != "owner":
            log.info("console.forbidden", route=route_name(request), merchant_id=request[MERCHANT].id)
            return error_page(request, 403, "Owners only", "This page is for the store's owners.")
        return await handler(request)

    return guarded


def in_store(request: web.Request, work: Callable[[Session], T], *, write: bool = False) -> Awaitable[T]:
    """`work(session)` in one transaction on the app's worker threads (the database drivers block)."""
    return transaction_in_thread(work, write=write, database=request.app[DATABASE], executor=request.app[EXECUTOR])


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource if request.match_info.route else None
    return resource.canonical if resource is not None else "unmatched"


def small_int(text: str) -> Optional[int]:
    """A query parameter's whole number; None for anything else (str.isdigit alone lets "²" through, and a
    thousand digits would overflow the database's integers)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = small_int(request.query.get(name, ""))
    return default if value is None else min(max(value, low), high)


def has_nul(*texts: Any) -> bool:
    """Whether any of the texts (query or form values) holds a NUL character: PostgreSQL refuses them in text,
    so one reaching a query or a stored field would be a 500. The pages refuse such input as invalid."""
    return any("\x00" in str(text) for text in texts if text is not None)
