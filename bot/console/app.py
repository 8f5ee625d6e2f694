"""The merchant console on the web app: templates and static files (beside this package), the guard every
/console request passes, and every page's routes. bot/web/app.py calls setup_console and adds console_guard.

The guard reads the session cookie and puts the merchant on the request (or sends a page request to the
sign-in page), refuses any POST whose CSRF token is not the session's with 403 before the handler runs,
renders errors as console pages and sets the security headers. Roles are the pages' (page.owner_only).
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot import clock
from bot.console.accounts import csrf_matches, needs_touch, session_for_token, touch_session
from bot.console.page import (
    MERCHANT, OPEN_HANDOFFS, PREFIX, SECURITY_HEADERS, SESSION, STATIC_DIR, TEMPLATES_DIR, Handler, error_page,
    in_store, route_name,
)
from bot.console.pages import (
    audit, campaigns, customers, feedback, handoffs, home, insights, integrations, loyalty, moderation, outbox,
    quizzes, referrals, segments, sign_in,
)
from bot.console.transcripts import masked, shown_turns
from bot.db import RETRY_AFTER_SECONDS, database_unavailable
from bot.handoff import live_count
from bot.languages import language_name
from bot.log import get_logger

log = get_logger(__name__)

# Reachable without a session.
PUBLIC_PATHS = frozenset({sign_in.LOGIN})
PAGES = (sign_in, home, feedback, customers, segments, insights, handoffs, loyalty, referrals, quizzes, moderation,
         integrations, outbox, campaigns, audit)


def setup_console(app: web.Application) -> None:
    """Templates, static files and routes of the console (called by bot/web/routes.py)."""
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
    environment.filters["day"] = lambda value: value.strftime("%Y-%m-%d") if value else ""
    environment.filters["thousands"] = lambda value: f"{value:,}"
    environment.filters["ago"] = duration_since
    environment.filters["language"] = language_name  # "fr" → "French" (the shopper's language when not English)
    environment.filters["shown_turns"] = shown_turns  # a transcript as the shopper saw it, codes masked
    environment.filters["masked"] = masked  # any other transcript text (a reason, a comment): codes masked
    for page in PAGES:
        page.add_routes(app)
    app.router.add_get(f"{PREFIX}/static/{{name}}", static_file, name="console_static")


# The console's static files, found once: a request names one of them or gets 404, and no path a visitor
# types ever reaches the filesystem (an over-long name was an OSError there, a 500).
STATIC_FILES = {path.name: path for path in STATIC_DIR.iterdir() if path.is_file()}


async def static_file(request: web.Request) -> web.StreamResponse:
    path = STATIC_FILES.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def duration_since(moment: Optional[datetime]) -> str:
    """How long ago, in the largest unit that says it ("4 min", "3 h 5 min", "2 days")."""
    if moment is None:
        return ""
    seconds = max(0, int((clock.now() - moment).total_seconds()))
    if seconds < 60:
        return "under a minute"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{hours // 24} days"


def is_console(request: web.Request) -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_console(request):
        return await handler(request)
    if request.path.startswith(f"{PREFIX}/static/"):
        try:
            return _with_headers(await handler(request), cache=True)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            return _with_headers(web.Response(status=error.status, text=f"{error.status} {error.reason}"),
                                 cache=False)
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = error_page(request, error.status, error.reason, _http_message(error))
    except Exception as error:
        if database_unavailable(error):
            log.warning("console.database_unavailable", method=request.method, route=route_name(request))
            response = error_page(request, 503, "Database unavailable",
                                  "The database is not answering right now. Please try again in a moment.")
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        else:
            log.exception("console.request_failed", method=request.method, route=route_name(request))
            response = error_page(request, 500, "Something went wrong",
                                  "The page failed on the server. It has been logged; please try again.")
    return _with_headers(response, cache=False)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    token = request.cookies.get(sign_in.COOKIE, "")
    now = clock.now()
    found: Optional[tuple] = None
    if token:
        # The session and the header's count of open handoffs, in one read.
        found, open_handoffs = await in_store(
            request, lambda session: (session_for_token(session, token, now), live_count(session)))
        request[OPEN_HANDOFFS] = open_handoffs
    if found is None:
        if request.method in ("GET", "HEAD"):
            target = request.path_qs if request.path not in (PREFIX, PREFIX + "/") else ""
            location = sign_in.LOGIN + (f"?next={quote(target, safe='')}" if target else "")
            raise web.HTTPSeeOther(location)
        # A form posted after the session ended: nothing happens, and no page is rendered for it.
        return error_page(request, 403, "Signed out", "Your session has ended. Please sign in again.")
    row, merchant = found
    request[SESSION] = row
    request[MERCHANT] = merchant
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        given = request.headers.get("X-CSRF-Token")
        if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            given = (await request.post()).get("csrf_token")
        if not csrf_matches(row.csrf_token, given if isinstance(given, str) else None):
            log.warning("console.csrf_refused", route=route_name(request), merchant_id=merchant.id)
            return error_page(request, 403, "Form expired",
                              "This form could not be verified (missing or stale security token). "
                              "Go back, reload the page and try again.")
    if needs_touch(row, now):
        await in_store(request, lambda session: touch_session(session, row.id, now), write=True)
    return await handler(request)


def _with_headers(response: web.StreamResponse, cache: bool) -> web.StreamResponse:
    if response.prepared:  # a streamed download set its own headers before the first byte
        return response
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not cache:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _http_message(error: web.HTTPException) -> str:
    if error.status == 404:
        return "There is no such page."
    if error.status == 413:
        return "What you sent is too large."
    return error.text or error.reason


