"""GET /r/{code}: an advocate's referral link. Public (no token): it is shared in chats and on social media.

A friend's visit is recorded (time, keyed hash of their network, user agent) with a friend offer, and the
friend lands on the store with the offer: `{store_url}/?discount=FRIEND-…&ref=<code>`. Whatever goes wrong
— an unknown or malformed code, a link-preview crawler, a database error — the visitor still lands on the
store, without parameters and without an error page. The code, the offer and the IP address are never
logged (the request log names the route pattern only).
"""
from __future__ import annotations

from functools import partial
from typing import Dict, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.fingerprints import fingerprint_key, ip_hash
from bot.advocacy.codes import normalize_referral_code
from bot.advocacy.friend_offers import Click, record_click
from bot.log import get_logger
from bot.loyalty.program import Program
from bot.shop import get_shop
from bot.app_context import SETTINGS, client_ip, in_store

log = get_logger(__name__)

# The redirect carries a discount code: no cache may keep it, and the store must not learn this URL
# (it names the advocate's code) from the Referer header.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def referral_redirect(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    store_url = get_shop(settings.shop_file).store_url
    code = normalize_referral_code(request.match_info.get("code", ""))
    # HEAD is what link checkers and crawlers send; only a GET is a visit.
    if code is None or request.method != "GET":
        return _redirect(store_url)
    user_agent = request.headers.get("User-Agent")
    try:
        network = ip_hash(client_ip(request, settings), fingerprint_key(settings))
        click = await in_store(request, partial(_record, code=code, network=network, user_agent=user_agent),
                               write=True)
    except Exception:  # noqa: BLE001 - the friend still reaches the store; the failure is logged (no code, no IP)
        log.exception("referral.click_failed", route="/r/{code}")
        return _redirect(store_url)
    if click is None:
        return _redirect(store_url)
    log.info("referral.click", counted=click.counted, offer=click.offer_code is not None)
    params = {"discount": click.offer_code} if click.offer_code else {}
    return _redirect(store_url, {**params, "ref": click.code})


def _record(session: Session, program: Program, *, code: str, network: Optional[str],
            user_agent: Optional[str]) -> Optional[Click]:
    return record_click(session, program, code, network, user_agent, clock.now())


def store_link(store_url: str, params: Optional[Dict[str, str]] = None) -> str:
    """The store's URL with `params` merged into any query it already has (ours win)."""
    if not params:
        return store_url
    scheme, netloc, path, query, fragment = urlsplit(store_url)
    kept = [(name, value) for name, value in parse_qsl(query, keep_blank_values=True) if name not in params]
    return urlunsplit((scheme, netloc, path or "/", urlencode(kept + list(params.items())), fragment))


def _redirect(store_url: str, params: Optional[Dict[str, str]] = None) -> web.Response:
    return web.Response(status=302, headers={"Location": store_link(store_url, params), **_HEADERS})
