"""Requests found by fuzzing the web app, each once a 500 or a hang, through the real HTTP endpoint: bytes
that are not ASCII in Authorization, lone UTF-16 surrogates in JSON fields and query strings, an over-long
static file name, the next request on a keep-alive connection after a 413, and a database that is down or
read-only (503 with Retry-After, never 500)."""
from __future__ import annotations

import asyncio
import http.client
import json
import socket
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import aiohttp
import pytest
from sqlalchemy import text

from bot.db import Database
from bot.loyalty.program import Program
from bot.models import Customer
from tests.services import POSTGRES_URL, require_service
from tests.web.conftest import MAX_BODY_BYTES, TOKEN, Api, started, web_settings

RAW_TIMEOUT = 10.0


async def raw_request(api: Api, head: bytes, body: bytes = b"") -> Tuple[int, Dict[str, str], bytes]:
    """One request written byte for byte on a fresh connection (clients refuse to send what fuzzers do)."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), RAW_TIMEOUT)
        headers: Dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(reader.readline(), RAW_TIMEOUT)
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), RAW_TIMEOUT)
        return int(status_line.split()[1]), headers, payload
    finally:
        writer.close()


# ---------------------------------------------------------------- Authorization that is not ASCII


@pytest.mark.parametrize("credentials", ["Bearer tökén".encode("utf-8"), b"Bearer \xff\xfe", "Bearer ключ".encode("utf-8"),
                                         "Bëarer x".encode("latin-1")])
async def test_an_authorization_header_that_is_not_ascii_is_401_not_500(sqlite_api: Api, credentials: bytes) -> None:
    body = b'{"email": "ann@example.com"}'
    head = (b"POST /api/customers HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Authorization: " + credentials + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n")
    status, headers, payload = await raw_request(sqlite_api, head, body)
    assert status == 401, payload
    assert json.loads(payload)["error"] == "unauthorized" and headers["www-authenticate"].startswith("Bearer")
    assert sqlite_api.count(Customer) == 0


async def test_the_right_token_still_opens_the_api_on_a_raw_connection(sqlite_api: Api) -> None:
    body = b'{"email": "ann@example.com"}'
    head = (b"POST /api/customers HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n")
    status, _headers, payload = await raw_request(sqlite_api, head, body)
    assert status == 201, payload


# ---------------------------------------------------------------- static files


@pytest.mark.parametrize("name", ["a" * 300 + ".css", "x" * 5000, "é" * 200 + ".css", ("a" * 200 + "/") * 30 + "b.css"])
async def test_an_over_long_static_file_name_is_404_without_signing_in(sqlite_api: Api, name: str) -> None:
    async with sqlite_api.client.get(f"/console/static/{name}", allow_redirects=False) as response:
        assert response.status == 404, await response.text()


async def test_the_console_stylesheet_is_still_served(sqlite_api: Api) -> None:
    async with sqlite_api.client.get("/console/static/console.css") as response:
        assert response.status == 200 and "text/css" in response.headers["Content-Type"]


# ---------------------------------------------------------------- lone surrogates in JSON and query strings


SURROGATE_BODIES = [
    rb'{"email": "ann\ud800@example.com"}',
    rb'{"email": "ann@example.com", "first_name": "Ann\udfff"}',
    rb'{"email": "ann@example.com", "last_name": "\udc00Moreau", "external_id": "shop-\ud83d"}',
    rb'{"email": "ann@example.com", "\ud800": 1}',
]


@pytest.mark.parametrize("body", SURROGATE_BODIES)
async def test_a_lone_surrogate_in_a_customer_field_is_400_and_nothing_is_written(api: Api, body: bytes) -> None:
    reply = await api.post("/api/customers", data=body)
    assert reply.status == 400, reply.json
    assert reply.json["error"] == "invalid_request" and "surrogate" in reply.json["detail"]
    assert api.count(Customer) == 0


async def test_a_surrogate_pair_is_a_real_character_and_is_kept(api: Api) -> None:
    reply = await api.post("/api/customers", data=rb'{"email": "ann@example.com", "first_name": "Ann \ud83d\ude00"}')
    assert reply.status == 201, reply.json
    assert reply.json["first_name"] == "Ann \U0001F600"


async def test_a_lone_surrogate_in_an_order_line_is_400(api: Api) -> None:
    api.customer()
    body = (rb'{"event": "paid", "order_id": "1001", "customer": {"email": "ann@example.com"}, "total": "10.00",'
            rb' "currency": "USD", "lines": [{"title": "Lamp \ud800", "unit_price": "10.00"}]}')
    reply = await api.post("/api/orders", data=body)
    assert reply.status == 400 and "surrogate" in reply.json["detail"], reply.json


async def test_percent_encoded_invalid_utf8_in_a_path_or_query_is_not_500(api: Api) -> None:
    for path in ("/api/reward-codes/%ED%A0%80", "/api/reward-codes/AB%FF", "/api/reward-codes/X?customer_email=%ED%A0%80"):
        reply = await api.get(path)
        assert reply.status in (400, 404), (path, reply.status, reply.json)


# ---------------------------------------------------------------- keep-alive after 413


async def test_a_keep_alive_client_is_answered_after_a_413(sqlite_api: Api) -> None:
    """A store back-end's pooled connection: a body over the limit, then more requests. Each must be answered
    (on the same connection once the body was drained, or on a new one once the server closed it)."""
    url = f"http://{sqlite_api.client.host}:{sqlite_api.client.port}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    too_large = b'{"email": "' + b"a" * (MAX_BODY_BYTES * 4) + b'@example.com"}'
    connector = aiohttp.TCPConnector(limit=1)  # every request on the one pooled connection while it lives
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session:
        for attempt in range(40):
            async with session.post(url + "/api/customers", data=too_large, headers=headers) as response:
                assert response.status == 413
                assert (await response.json())["error"] == "payload_too_large"
            async with session.get(url + "/health") as response:
                assert response.status == 200, attempt
            email = f"ann{attempt}@example.com"
            async with session.post(url + "/api/customers", json={"email": email}, headers=headers) as response:
                assert response.status == 201, (attempt, await response.text())


def keep_alive_round_trips(port: int, body_bytes: int, rounds: int) -> List[Tuple[int, str, bool, int]]:
    """http.client (a blocking keep-alive client that sends the whole body before it reads the answer):
    each round a body over the limit, then /health. Per round: the 413's status, its Connection header,
    whether /health went over the same socket, and /health's status."""
    body = b'{"email": "' + b"a" * body_bytes + b'@example.com"}'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    results = []
    try:
        for _ in range(rounds):
            connection.request("POST", "/api/customers", body=body, headers=headers)
            refused = connection.getresponse()
            refused.read()
            sock = connection.sock
            connection.request("GET", "/health")  # reconnects by itself when the server closed
            health = connection.getresponse()
            health.read()
            results.append((refused.status, refused.getheader("Connection", ""), connection.sock is sock, health.status))
    finally:
        connection.close()
    return results


async def test_after_a_413_a_small_body_is_drained_and_the_connection_kept(sqlite_api: Api) -> None:
    results = await asyncio.to_thread(keep_alive_round_trips, sqlite_api.client.port, MAX_BODY_BYTES * 3, 20)
    assert results == [(413, "", True, 200)] * 20


async def test_after_a_413_a_body_too_large_to_drain_closes_the_connection(sqlite_api: Api) -> None:
    results = await asyncio.to_thread(keep_alive_round_trips, sqlite_api.client.port, 3 * 1024 * 1024, 5)
    assert results == [(413, "close", False, 200)] * 5


async def test_a_413_for_a_declared_length_is_answered_before_the_body_is_sent(sqlite_api: Api) -> None:
    head = (b"POST /api/customers HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 50000000\r\n")
    status, headers, payload = await raw_request(sqlite_api, head)
    assert status == 413 and headers.get("connection", "").lower() == "close", headers
    assert json.loads(payload)["error"] == "payload_too_large"


# ---------------------------------------------------------------- the database down or read-only


def assert_unavailable(reply: object) -> None:
    status = getattr(reply, "status")
    body = getattr(reply, "json")
    assert status == 503, body
    assert body["error"] == "database_unavailable"
    assert int(getattr(reply, "headers")["Retry-After"]) > 0


@pytest.fixture()
def read_only_postgres() -> Iterator[Database]:
    """A migrated schema in the real PostgreSQL, then a Database whose sessions PostgreSQL runs read-only
    (what a failed-over replica or `default_transaction_read_only` does)."""
    require_service("PostgreSQL", 5432)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = Database(POSTGRES_URL)
    with admin.engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    writable = Database(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    writable.create_schema()
    writable.dispose()
    database = Database(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}%20-cdefault_transaction_read_only%3Don")
    yield database
    database.dispose()
    with admin.engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


async def test_a_read_only_postgresql_is_503_with_retry_after(read_only_postgres: Database, program: Program,
                                                              tmp_path: Path) -> None:
    async for api in started(read_only_postgres, program, web_settings(tmp_path)):
        assert_unavailable(await api.post("/api/customers", {"email": "ann@example.com"}))
        # Reads still work on a read-only database.
        reply = await api.get("/api/reward-codes/NOSUCHCODE")
        assert reply.status == 404, reply.json


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


async def test_postgresql_refusing_connections_is_503_with_retry_after(program: Program, tmp_path: Path) -> None:
    database = Database(f"postgresql://postgres@127.0.0.1:{closed_port()}/rapport")
    try:
        async for api in started(database, program, web_settings(tmp_path)):
            assert_unavailable(await api.post("/api/customers", {"email": "ann@example.com"}))
            assert_unavailable(await api.get("/api/reward-codes/ABC"))
            async with api.client.get("/ready") as response:
                assert response.status == 503 and response.headers["Retry-After"]
    finally:
        database.dispose()


async def test_a_sqlite_file_that_cannot_be_opened_is_503_with_retry_after(program: Program, tmp_path: Path) -> None:
    (tmp_path / "not-a-file.db").mkdir()  # a directory where the database file should be
    database = Database(f"sqlite:///{tmp_path / 'not-a-file.db'}")
    try:
        async for api in started(database, program, web_settings(tmp_path)):
            assert_unavailable(await api.post("/api/customers", {"email": "ann@example.com"}))
    finally:
        database.dispose()


async def test_a_bug_is_still_500_not_503(sqlite_db: Database, program: Program, tmp_path: Path) -> None:
    """Only the database being down is 503: a missing table (a schema bug) must not look like a blip."""
    with sqlite_db.engine.begin() as connection:
        connection.execute(text("DROP TABLE reward_codes"))
    async for api in started(sqlite_db, program, web_settings(tmp_path)):
        reply = await api.get("/api/reward-codes/ABC")
        assert reply.status == 500 and "Retry-After" not in reply.headers, reply.json


async def test_a_store_webhook_keeps_its_own_larger_body_limit(sqlite_api: Api) -> None:
    """Shopify's order payloads may be megabytes: the store API's MAX_BODY_BYTES does not apply to them."""
    body = b'{"id": 1, "note": "' + b"x" * (MAX_BODY_BYTES * 4) + b'"}'
    async with sqlite_api.client.post("/webhooks/shopify", data=body, headers={
            "X-Shopify-Shop-Domain": "unknown.myshopify.com", "X-Shopify-Hmac-Sha256": "c2lnbmF0dXJl"}) as response:
        assert response.status == 401  # read, then refused for its signature: not 413
