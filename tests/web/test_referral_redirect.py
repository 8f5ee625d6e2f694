"""GET /r/{code}: the advocate's shared link records the friend's visit and sends them to the store with
their discount; anything else lands on the store with nothing written."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Dict, Optional
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from sqlalchemy import func, select

from bot.advocacy.fingerprints import fingerprint_key, ip_hash
from bot.advocacy.referrals import referral_code_for
from bot.app_context import client_ip
from bot.db import Database
from bot.identity import create_customer
from bot.models import FriendOffer, ReferralClick
from bot.web.redirects import store_link
from tests.web.conftest import Api, started, web_settings

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
STORE = "https://oak-and-ember.example"


def advocate_code(api: Api) -> str:
    with api.db.session(write=True) as session:
        advocate_id = create_customer(session, "ann@example.com", "Ann").id
        return referral_code_for(session, advocate_id, NOW).code


async def visit(api: Api, path: str, agent: str = "Mozilla/5.0 (iPhone)",
                headers: Optional[Dict[str, str]] = None, method: str = "GET") -> tuple:
    response = await api.client.request(method, path, allow_redirects=False,
                                        headers={"User-Agent": agent, **(headers or {})})
    return response.status, response.headers


def written(api: Api) -> tuple:
    with api.db.session() as session:
        return tuple(int(session.execute(select(func.count()).select_from(model)).scalar_one())
                     for model in (ReferralClick, FriendOffer))


async def test_a_visit_is_recorded_and_lands_on_the_store_with_the_offer(api: Api, clock, tmp_path: Path) -> None:
    clock.at(NOW)
    code = advocate_code(api)
    status, headers = await visit(api, f"/r/{code.lower()}")  # no token needed: it is a public link
    assert status == 302
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    location = urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == STORE and location.path == "/"
    params = parse_qs(location.query)
    assert params["ref"] == [code] and params["discount"][0].startswith("FRIEND-")
    with api.db.session() as session:
        click = session.execute(select(ReferralClick)).scalar_one()
        offer = session.execute(select(FriendOffer)).scalar_one()
        assert offer.code == params["discount"][0] and offer.click_id == click.id
        assert click.clicked_at == NOW and click.user_agent == "Mozilla/5.0 (iPhone)"
        # Only the keyed hash of the visitor's network is kept.
        key = fingerprint_key(web_settings(tmp_path))
        assert click.ip_hash == ip_hash("127.0.0.1", key) and "127.0.0.1" not in click.ip_hash


async def test_visits_again_from_the_same_network_get_the_same_offer(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    code = advocate_code(sqlite_api)
    locations = {(await visit(sqlite_api, f"/r/{code}"))[1]["Location"] for _ in range(3)}
    assert len(locations) == 1 and written(sqlite_api) == (1, 1)
    clock.advance(hours=25)
    assert (await visit(sqlite_api, f"/r/{code}"))[1]["Location"] not in locations
    assert written(sqlite_api) == (2, 2)


@pytest.mark.parametrize("path", [
    "/r/K7QM2XDA9P",  # well-formed, nobody's
    "/r/hello",
    "/r/" + "A1" * 250,
    "/r/%C3%84%C3%96%C3%9C%E2%82%AC%F0%9F%98%80",
    "/r/..%2F..%2Fetc%2Fpasswd",
    "/r/%00%0d%0aSet-Cookie:%20x=1",
    "/r/%27%20OR%201=1--",
])
async def test_unknown_or_malformed_codes_land_on_the_store_and_write_nothing(sqlite_api: Api, path: str) -> None:
    advocate_code(sqlite_api)
    status, headers = await visit(sqlite_api, path)
    assert (status, headers["Location"]) == (302, STORE)
    assert headers["Cache-Control"] == "no-store"
    assert written(sqlite_api) == (0, 0)


@pytest.mark.parametrize("agent", [
    "TelegramBot (like TwitterBot)", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "WhatsApp/2.23.20.0 A",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", "LinkedInBot/1.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Twitterbot/1.0",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
])
async def test_link_previews_are_redirected_without_a_click(sqlite_api: Api, agent: str) -> None:
    code = advocate_code(sqlite_api)
    status, headers = await visit(sqlite_api, f"/r/{code}", agent=agent)
    assert (status, headers["Location"]) == (302, STORE)
    assert written(sqlite_api) == (0, 0)


async def test_a_head_request_is_not_a_visit(sqlite_api: Api) -> None:
    code = advocate_code(sqlite_api)
    status, headers = await visit(sqlite_api, f"/r/{code}", method="HEAD")
    assert (status, headers["Location"]) == (302, STORE) and written(sqlite_api) == (0, 0)


async def test_the_code_offer_and_address_never_reach_the_logs(sqlite_api: Api, capsys) -> None:
    code = advocate_code(sqlite_api)
    capsys.readouterr()
    _, headers = await visit(sqlite_api, f"/r/{code}", headers={"X-Forwarded-For": "198.51.100.20"})
    logged = "".join(capsys.readouterr())
    offer = parse_qs(urlsplit(headers["Location"]).query)["discount"][0]
    assert "/r/{code}" in logged  # the request was logged, by its route pattern
    for secret in (code, offer, "127.0.0.1", "198.51.100.20"):
        assert secret not in logged


@pytest.fixture()
async def proxied_api(sqlite_db: Database, program, tmp_path: Path) -> AsyncIterator[Api]:
    async for value in started(sqlite_db, program, web_settings(tmp_path, TRUSTED_PROXY_HOPS="1")):
        yield value


async def test_behind_one_proxy_the_address_it_appended_is_the_visitor(proxied_api: Api, tmp_path) -> None:
    code = advocate_code(proxied_api)
    # Our proxy appends the address it was reached from; anything before it the client wrote itself.
    for forwarded in ("198.51.100.20", "203.0.113.66, 198.51.100.20", "10.9.9.9, 203.0.113.67, 192.0.2.44"):
        await visit(proxied_api, f"/r/{code}", headers={"X-Forwarded-For": forwarded})
    await visit(proxied_api, f"/r/{code}")  # no header: not through the proxy, the connection's address
    assert written(proxied_api) == (3, 3)  # the forged first entry did not make the second visit a new visitor
    key = fingerprint_key(web_settings(tmp_path))
    with proxied_api.db.session() as session:
        hashes = set(session.execute(select(ReferralClick.ip_hash)).scalars())
    assert hashes == {ip_hash("198.51.100.20", key), ip_hash("192.0.2.44", key), ip_hash("127.0.0.1", key)}


@pytest.mark.parametrize("hops, headers, expected", [
    (0, ["198.51.100.20"], "127.0.0.1"),
    (1, ["203.0.113.66, 198.51.100.20"], "198.51.100.20"),
    (2, ["203.0.113.66, 198.51.100.20, 10.0.0.2"], "198.51.100.20"),  # a CDN, then our load balancer
    (2, ["203.0.113.66", "198.51.100.20, 10.0.0.2"], "198.51.100.20"),  # one list over several headers
    (2, ["10.0.0.2"], "127.0.0.1"),  # fewer entries than proxies: it did not come through them all
    (1, [" "], "127.0.0.1"),
])
def test_the_visitor_is_the_entry_our_outermost_proxy_wrote(hops: int, headers: list, expected: str,
                                                            tmp_path: Path) -> None:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("127.0.0.1", 40000) if name == "peername" else default)
    request = make_mocked_request("GET", "/r/x", headers=CIMultiDict(("X-Forwarded-For", h) for h in headers),
                                  transport=transport)
    settings = web_settings(tmp_path, TRUSTED_PROXY_HOPS=str(hops))
    assert client_ip(request, settings) == expected


async def test_without_a_trusted_proxy_forwarded_addresses_are_ignored(sqlite_api: Api) -> None:
    code = advocate_code(sqlite_api)
    for client in ("198.51.100.20", "192.0.2.44", "203.0.113.9"):
        await visit(sqlite_api, f"/r/{code}", headers={"X-Forwarded-For": client})
    assert written(sqlite_api) == (1, 1)  # all from the connection's address: one visitor


@pytest.mark.parametrize("store_url, expected", [
    ("https://shop.example", "https://shop.example/?discount=FRIEND-K7QM-2XDA&ref=K7QM2XDA9P"),
    ("https://shop.example/", "https://shop.example/?discount=FRIEND-K7QM-2XDA&ref=K7QM2XDA9P"),
    ("https://shop.example/?utm_source=bot&ref=old",
     "https://shop.example/?utm_source=bot&discount=FRIEND-K7QM-2XDA&ref=K7QM2XDA9P"),
    ("https://shop.example/en?lang=en#top", "https://shop.example/en?lang=en&discount=FRIEND-K7QM-2XDA&ref=K7QM2XDA9P#top"),
])
def test_the_offer_is_merged_into_the_store_address(store_url: str, expected: str) -> None:
    assert store_link(store_url, {"discount": "FRIEND-K7QM-2XDA", "ref": "K7QM2XDA9P"}) == expected
    assert store_link(store_url) == store_url
