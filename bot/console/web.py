"""The console's plumbing on the aiohttp app: templates, the guard every /console request passes, sign-in
and sign-out. Pages live in their own modules; `bot/console/routes.py` lists them.

The guard (`console_guard`):
- reads the session cookie and puts the merchant on the request (`request[MERCHANT]`), or redirects a
  page request without one to the sign-in page (303, `?next=` the page asked for);
- refuses any POST whose CSRF token (form field `csrf_token` or header X-CSRF-Token) is not the session's
  with 403 — before the handler runs, so nothing is written;
- enforces roles: a handler wrapped in `owner_only` answers 403 to an agent;
- renders errors as HTML pages and sets the security headers (CSP without inline scripts, no framing,
  no caching of pages that show shoppers' words).
The sign-in form has no session yet: it is protected by a double-submit cookie instead.
"""
from __future__ import annotations

import functools
import re
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot import clock
from bot.console.accounts import (
    SignInAttempt, begin_sign_in, close_session, csrf_matches, finish_sign_in, needs_touch, open_session,
    password_matches, session_for_token, touch_session,
)
from bot.log import get_logger
from bot.models import Merchant
from bot.settings import Settings
from bot.web.redirects import client_ip
from bot.web.store import DATABASE, SETTINGS, in_executor

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/console"
COOKIE = "rapport_console"
LOGIN_CSRF_COOKIE = "rapport_console_login"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "web" / "templates" / "console"
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static" / "console"
MERCHANT = "console_merchant"  # request keys: the signed-in Merchant and their ConsoleSession
SESSION = "console_session"
# Reachable without a session.
PUBLIC_PATHS = frozenset({f"{PREFIX}/login"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def setup_console(app: web.Application) -> None:
    """Templates, static files and routes of the console (called by bot/web/routes.py)."""
    from bot.console.routes import add_console_routes

    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
    environment.filters["day"] = lambda value: value.strftime("%Y-%m-%d") if value else ""
    environment.filters["thousands"] = lambda value: f"{value:,}"
    app.router.add_get(f"{PREFIX}/login", login_page, name="console_login")
    app.router.add_post(f"{PREFIX}/login", login_submit)
    app.router.add_post(f"{PREFIX}/logout", logout, name="console_logout")
    app.router.add_static(f"{PREFIX}/static/", STATIC_DIR, name="console_static")
    add_console_routes(app)


def render(request: web.Request, template: str, context: Dict[str, Any], *, status: int = 200) -> web.Response:
    """A console page: `context` plus what every page has (the merchant, the CSRF token, the path)."""
    session = request.get(SESSION)
    page = {
        "merchant": request.get(MERCHANT),
        "csrf_token": session.csrf_token if session is not None else "",
        "path": request.path,
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, page)
    response.set_status(status)
    return response


def is_console(request: web.Request) -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def secure_cookies(request: web.Request, settings: Settings) -> bool:
    """Secure cookies when the browser reached us over https (directly or through our proxy)."""
    return request.secure or settings.public_base_url.startswith("https://")


def owner_only(handler: Handler) -> Handler:
    """Only owners may open this page or post to it; an agent gets 403."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request[MERCHANT].role != "owner":
            log.info("console.forbidden", route=_route_name(request), merchant_id=request[MERCHANT].id)
            return error_page(request, 403, "Owners only", "This page is for the store's owners.")
        return await handler(request)

    return guarded


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", {"title": title, "message": message}, status=status)


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
    except Exception:
        log.exception("console.request_failed", method=request.method, route=_route_name(request))
        response = error_page(request, 500, "Something went wrong",
                              "The page failed on the server. It has been logged; please try again.")
    return _with_headers(response, cache=False)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    token = request.cookies.get(COOKIE, "")
    now = clock.now()
    database = request.app[DATABASE]

    def find() -> Optional[tuple]:
        with database.session() as session:
            return session_for_token(session, token, now)

    found = await in_executor(request.app, find) if token else None
    if found is None:
        if request.method in ("GET", "HEAD"):
            target = request.path_qs if request.path not in (PREFIX, PREFIX + "/") else ""
            location = f"{PREFIX}/login" + (f"?next={quote(target, safe='')}" if target else "")
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
            log.warning("console.csrf_refused", route=_route_name(request), merchant_id=merchant.id)
            return error_page(request, 403, "Form expired",
                              "This form could not be verified (missing or stale security token). "
                              "Go back, reload the page and try again.")
    if needs_touch(row, now):
        def touch() -> None:
            with database.session(write=True) as session:
                touch_session(session, row.id, now)

        await in_executor(request.app, touch)
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


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource if request.match_info.route else None
    return resource.canonical if resource is not None else "unmatched"


def _safe_next(target: Optional[str]) -> str:
    """Where to go after signing in: a console page on this site, or the console's home. Anything that could
    leave /console once a browser or proxy resolves it (dot segments, doubled or back slashes, encoded
    separators, control characters, another host) is refused rather than repaired."""
    home = f"{PREFIX}/"
    if not target or len(target) > 2000 or not target.startswith(home):
        return home
    parts = urlsplit(target)
    path = parts.path
    if parts.scheme or parts.netloc or "//" in path or "\\" in target:
        return home
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in target):
        return home
    if re.search(r"%(2e|2f|5c|00)", path, re.IGNORECASE):
        return home
    if any(segment in (".", "..") for segment in path.split("/")):
        return home
    return target


def _login_form(request: web.Request, *, status: int = 200, error: str = "", email: str = "") -> web.Response:
    settings = request.app[SETTINGS]
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html",
        {"login_csrf": token, "error": error, "email": email, "next": _safe_next(request.query.get("next"))},
        status=status,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=f"{PREFIX}/login", httponly=True, samesite="Strict",
                        secure=secure_cookies(request, settings), max_age=3600)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_form(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    form = await request.post()
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not csrf_matches(cookie_token, str(form.get("csrf_token", ""))):
        log.warning("console.csrf_refused", route="login")
        return error_page(request, 403, "Form expired",
                          "The sign-in form could not be verified. Reload the page and try again.")
    if "\x00" in email or "\x00" in password:
        # No account has one, and PostgreSQL refuses NUL in text: a plain wrong sign-in, nothing stored.
        return _login_form(request, status=401, error="Wrong e-mail or password.")
    client = _client_key(request, settings)
    now = clock.now()
    database = request.app[DATABASE]

    def begin() -> SignInAttempt:
        with database.session(write=True) as session:
            return begin_sign_in(session, email, client, now)

    def finish() -> Optional[Tuple[Merchant, str]]:
        with database.session(write=True) as session:
            merchant = finish_sign_in(session, attempt, password, now)
            return (merchant, open_session(session, merchant, now)[0]) if merchant is not None else None

    # Three steps: the slow password hash runs between two short transactions and holds no lock.
    attempt = await in_executor(request.app, begin)
    if attempt.status == "rate_limited":
        minutes = max(1, round(attempt.retry_after.total_seconds() / 60))
        log.warning("console.login_rate_limited")
        response = _login_form(request, status=429, email=email,
                               error=f"Too many failed sign-ins. Try again in about {minutes} minute"
                                     f"{'s' if minutes != 1 else ''}.")
        response.headers["Retry-After"] = str(int(attempt.retry_after.total_seconds()) + 1)
        return response
    matches = await in_executor(request.app, lambda: password_matches(attempt, password))
    signed_in = await in_executor(request.app, finish) if matches else None
    if signed_in is None:
        log.info("console.login_failed")
        return _login_form(request, status=401, email=email, error="Wrong e-mail or password.")
    merchant, token = signed_in
    log.info("console.login", merchant_id=merchant.id, role=merchant.role)
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                        secure=secure_cookies(request, settings))
    response.del_cookie(LOGIN_CSRF_COOKIE, path=f"{PREFIX}/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE, "")

    def close() -> None:
        with request.app[DATABASE].session(write=True) as session:
            close_session(session, token)

    await in_executor(request.app, close)
    log.info("console.logout", merchant_id=request[MERCHANT].id)
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


def _client_key(request: web.Request, settings: Settings) -> str:
    """The client's address, hashed with a per-installation key (the table keeps no addresses)."""
    from bot.advocacy.fingerprints import fingerprint_key

    address = client_ip(request, settings) or "unknown"
    return hmac.new(fingerprint_key(settings), f"console-login:{address}".encode(), hashlib.sha256).hexdigest()[:64]
