"""Signing in and out of the console: the sign-in form (a double-submit cookie protects it: there is no
session yet), a rate limit on failed attempts per e-mail and per client (bot/console/accounts.py), the
session cookie, and where to go after signing in (only a console page of this site)."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Optional, Tuple
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import DATABASE, SETTINGS, client_ip, in_executor
from bot.console.accounts import (
    SignInAttempt, begin_sign_in, close_session, csrf_matches, finish_sign_in, open_session, password_matches,
)
from bot.console.page import MERCHANT, PREFIX, error_page, in_store, render
from bot.db import transaction
from bot.log import get_logger
from bot.models import Merchant
from bot.settings import Settings

log = get_logger(__name__)

COOKIE = "rapport_console"
LOGIN_CSRF_COOKIE = "rapport_console_login"
LOGIN = f"{PREFIX}/login"


def add_routes(app: web.Application) -> None:
    app.router.add_get(LOGIN, login_page, name="console_login")
    app.router.add_post(LOGIN, login_submit)
    app.router.add_post(f"{PREFIX}/logout", logout, name="console_logout")


def secure_cookies(request: web.Request, settings: Settings) -> bool:
    """Secure cookies when the browser reached us over https (directly or through our proxy)."""
    return request.secure or settings.public_base_url.startswith("https://")


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
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=LOGIN, httponly=True, samesite="Strict",
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
        return transaction(lambda session: begin_sign_in(session, email, client, now), write=True, database=database)

    def finish() -> Optional[Tuple[Merchant, str]]:
        def sign_in(session: Session) -> Optional[Tuple[Merchant, str]]:
            merchant = finish_sign_in(session, attempt, password, now)
            return (merchant, open_session(session, merchant, now)[0]) if merchant is not None else None

        return transaction(sign_in, write=True, database=database)

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
    response.del_cookie(LOGIN_CSRF_COOKIE, path=LOGIN)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE, "")

    await in_store(request, lambda session: close_session(session, token), write=True)
    log.info("console.logout", merchant_id=request[MERCHANT].id)
    response = web.HTTPSeeOther(LOGIN)
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


def _client_key(request: web.Request, settings: Settings) -> str:
    """The client's address, hashed with a per-installation key (the table keeps no addresses)."""
    from bot.advocacy.fingerprints import fingerprint_key

    address = client_ip(request, settings) or "unknown"
    return hmac.new(fingerprint_key(settings), f"console-login:{address}".encode(), hashlib.sha256).hexdigest()[:64]
