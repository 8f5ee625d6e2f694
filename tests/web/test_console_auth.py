"""The console's sign-in, session cookie, CSRF and roles (bot/console/app.py, pages/sign_in.py, accounts.py)."""
from __future__ import annotations

import asyncio

import pytest
from yarl import URL
from sqlalchemy import func, select

from bot.console.accounts import MAX_FAILURES_PER_EMAIL, SESSION_IDLE
from bot.models import ConsoleSession, LoginAttempt
from tests.web.console import PASSWORD, Console, csrf_of, make_merchant


async def test_a_page_without_a_session_redirects_to_sign_in_with_the_page_to_return_to(console: Console) -> None:
    response = await console.get("/console/feedback", params={"status": "new"})
    assert response.status == 303
    location = URL(response.headers["Location"])
    assert location.path == "/console/login" and location.query["next"] == "/console/feedback?status=new"


async def test_signing_in_sets_a_http_only_same_site_cookie_and_returns_to_the_page(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    page = await console.client.get("/console/login?next=/console/handoffs")
    form = {"email": "Olive@Shop.example ", "password": PASSWORD, "csrf_token": csrf_of(await page.text()),
            "next": "/console/handoffs"}
    response = await console.client.post("/console/login", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/console/handoffs"
    cookie = response.headers["Set-Cookie"]
    assert "rapport_console=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain http in the test
    with console.db.session() as session:
        stored = session.execute(select(ConsoleSession.token_hash)).scalar_one()
    assert stored not in cookie, "the database keeps only a hash of the token"


async def test_the_cookie_is_secure_behind_https(sqlite_db, program, tmp_path) -> None:
    from tests.web.console import console_for

    async for console in console_for(sqlite_db, program, tmp_path, PUBLIC_BASE_URL="https://shop.example"):
        # The test client speaks plain http, so it never sends a Secure cookie back: the header is the proof.
        page = await console.client.get("/console/login")
        assert "Secure" in page.headers["Set-Cookie"] and "HttpOnly" in page.headers["Set-Cookie"]


async def test_an_outside_next_address_is_not_followed(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    for target in ("https://evil.example/", "//evil.example/console/", "/console/\\evil"):
        page = await console.client.get("/console/login")
        response = await console.client.post("/console/login", allow_redirects=False, data={
            "email": "olive@shop.example", "password": PASSWORD, "csrf_token": csrf_of(await page.text()),
            "next": target})
        assert response.headers["Location"] == "/console/", target


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    wrong = await console.sign_in("olive@shop.example", "not the password")
    unknown = await console.sign_in("nobody@shop.example", PASSWORD)
    assert wrong.status == unknown.status == 401
    assert "Wrong e-mail or password." in await wrong.text() and "Wrong e-mail or password." in await unknown.text()
    assert "rapport_console=" not in wrong.headers.get("Set-Cookie", "")


async def test_sign_in_is_rate_limited_per_email_even_with_the_right_password(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    for _ in range(MAX_FAILURES_PER_EMAIL):
        assert (await console.sign_in("olive@shop.example", "guess guess guess")).status == 401
    limited = await console.sign_in("olive@shop.example")
    assert limited.status == 429
    assert "Too many failed sign-ins" in await limited.text() and int(limited.headers["Retry-After"]) > 0
    with console.db.session() as session:
        assert session.execute(select(func.count()).select_from(LoginAttempt)).scalar_one() == MAX_FAILURES_PER_EMAIL


async def test_the_window_passes_and_a_success_clears_the_failures(console: Console, clock) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    for _ in range(MAX_FAILURES_PER_EMAIL):
        await console.sign_in("olive@shop.example", "guess guess guess")
    clock.advance(minutes=16)
    assert (await console.sign_in("olive@shop.example")).status == 303
    with console.db.session() as session:
        assert session.execute(select(func.count()).select_from(LoginAttempt)).scalar_one() == 0


async def test_the_sign_in_form_without_its_csrf_token_is_refused(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    await console.client.get("/console/login")
    response = await console.client.post("/console/login", allow_redirects=False,
                                         data={"email": "olive@shop.example", "password": PASSWORD})
    assert response.status == 403
    assert "rapport_console=" not in response.headers.get("Set-Cookie", "")


async def test_a_post_without_the_csrf_token_gets_403_and_changes_nothing(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    await console.sign_in("olive@shop.example")
    for token in ("", "forged-token"):
        response = await console.post("/console/logout", csrf=token)
        assert response.status == 403 and "could not be verified" in await response.text()
    with console.db.session() as session:
        assert session.execute(select(func.count()).select_from(ConsoleSession)).scalar_one() == 1
    assert (await console.post("/console/logout")).status == 303
    after = await console.get("/console/feedback")
    assert after.status == 303 and after.headers["Location"].startswith("/console/login")


async def test_an_expired_session_is_signed_out(console: Console, clock) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    await console.sign_in("olive@shop.example")
    clock.advance(seconds=SESSION_IDLE.total_seconds() + 60)
    response = await console.get("/console/feedback")
    assert response.status == 303 and response.headers["Location"].startswith("/console/login")


async def test_pages_carry_security_headers(console: Console) -> None:
    response = await console.get("/console/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/console/", "/console/nothing-here"])
async def test_unknown_and_home_pages_still_need_a_session(console: Console, path: str) -> None:
    response = await console.get(path)
    assert response.status == 303 and response.headers["Location"].startswith("/console/login")


@pytest.mark.parametrize("target", [
    "/console/..//evil.example", "/console/../r/CODE", "/console/./feedback/../../demo", "/console/%2e%2e/demo",
    "/console/..%2Fdemo", "/console/%5c%5cevil.example", "/console/feedback\tx", "/console//evil.example",
])
async def test_a_next_address_that_could_leave_the_console_is_not_followed(console: Console, target: str) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    page = await console.client.get("/console/login")
    response = await console.client.post("/console/login", allow_redirects=False, data={
        "email": "olive@shop.example", "password": PASSWORD, "csrf_token": csrf_of(await page.text()), "next": target})
    assert response.status == 303 and response.headers["Location"] == "/console/", target


async def test_a_console_page_with_its_query_is_followed(console: Console) -> None:
    make_merchant(console.db, "olive@shop.example", "owner")
    page = await console.client.get("/console/login")
    response = await console.client.post("/console/login", allow_redirects=False, data={
        "email": "olive@shop.example", "password": PASSWORD, "csrf_token": csrf_of(await page.text()),
        "next": "/console/feedback?status=new&q=late%20delivery"})
    assert response.headers["Location"] == "/console/feedback?status=new&q=late%20delivery"


async def test_parallel_guesses_cannot_slip_past_the_limit(any_console: Console) -> None:
    make_merchant(any_console.db, "olive@shop.example", "owner")
    pages = [await any_console.client.get("/console/login") for _ in range(12)]
    token = csrf_of(await pages[-1].text())  # one browser: the last form's cookie is the one it holds
    form = {"email": "olive@shop.example", "password": "wrong guess 123", "csrf_token": token}
    responses = await asyncio.gather(*(any_console.client.post("/console/login", data=form, allow_redirects=False)
                                       for _ in range(12)))
    statuses = sorted(response.status for response in responses)
    assert statuses.count(401) == MAX_FAILURES_PER_EMAIL and statuses.count(429) == 12 - MAX_FAILURES_PER_EMAIL
    with any_console.db.session() as session:
        assert session.execute(select(func.count()).select_from(LoginAttempt)).scalar_one() == MAX_FAILURES_PER_EMAIL


async def test_a_nul_character_in_the_sign_in_form_is_a_wrong_sign_in(any_console: Console) -> None:
    make_merchant(any_console.db, "olive@shop.example", "owner")
    for email, password in (("olive@shop.example\x00", PASSWORD), ("olive@shop.example", PASSWORD + "\x00")):
        page = await any_console.client.get("/console/login")
        response = await any_console.client.post("/console/login", allow_redirects=False, data={
            "email": email, "password": password, "csrf_token": csrf_of(await page.text())})
        assert response.status == 401 and "Wrong e-mail or password." in await response.text()


async def test_a_missing_static_file_is_a_plain_404_with_the_console_headers(console: Console) -> None:
    response = await console.get("/console/static/..%2ffeedback")
    assert response.status == 404 and response.headers["X-Frame-Options"] == "DENY"
    assert response.content_type == "text/plain"
