"""Merchant accounts and console sessions (bot/console/accounts.py) and `python -m bot merchant …`."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.console.accounts import (
    DEMO_OWNER_EMAIL, SESSION_IDLE, SESSION_LIFETIME, AccountError, add_merchant, ensure_demo_owner,
    forget_expired, merchant_by_email, open_session, session_for_token, set_active, set_password, sign_in,
    touch_session,
)
from bot.db import Database, get_database
from bot.models import ConsoleSession, LoginAttempt

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
PASSWORD = "a long enough password"


def test_passwords_are_stored_as_argon2id_hashes(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        merchant = add_merchant(session, " Olive@Shop.Example ", "Olive", "owner", PASSWORD, NOW)
        assert merchant.email == "olive@shop.example"
        assert merchant.password_hash.startswith("$argon2id$") and PASSWORD not in merchant.password_hash


@pytest.mark.parametrize("email, role, password, message", [
    ("not-an-email", "owner", PASSWORD, "not an e-mail address"),
    ("a@b.example", "admin", PASSWORD, "role must be one of owner, agent"),
    ("a@b.example", "agent", "short", "at least 10 characters"),
    ("a@b.example", "agent", "x" * 257, "at most 256 characters"),
])
def test_bad_accounts_are_refused_with_the_reason(sqlite_db: Database, email: str, role: str, password: str,
                                                  message: str) -> None:
    with sqlite_db.session(write=True) as session:
        with pytest.raises(AccountError, match=message):
            add_merchant(session, email, "", role, password, NOW)


def test_an_email_is_one_account_whatever_its_case(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        add_merchant(session, "olive@shop.example", "Olive", "owner", PASSWORD, NOW)
        with pytest.raises(AccountError, match="already exists"):
            add_merchant(session, "OLIVE@shop.example", "Olive", "agent", PASSWORD, NOW)


def test_a_new_password_or_a_disabled_account_ends_every_session(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        merchant = add_merchant(session, "olive@shop.example", "Olive", "owner", PASSWORD, NOW)
        token, _ = open_session(session, merchant, NOW)
        set_password(session, merchant, "another long password")
        assert session_for_token(session, token, NOW) is None
        assert sign_in(session, "olive@shop.example", PASSWORD, "client", NOW).status == "invalid"
        assert sign_in(session, "olive@shop.example", "another long password", "client", NOW).status == "ok"
        token, _ = open_session(session, merchant, NOW)
        set_active(session, merchant, False)
        assert session_for_token(session, token, NOW) is None
        assert sign_in(session, "olive@shop.example", "another long password", "client", NOW).status == "invalid"


def test_a_session_lasts_while_used_but_never_past_its_lifetime(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        merchant = add_merchant(session, "olive@shop.example", "Olive", "owner", PASSWORD, NOW)
        token, row = open_session(session, merchant, NOW)
        moment = NOW
        while moment + SESSION_IDLE / 2 < NOW + SESSION_LIFETIME:
            moment += SESSION_IDLE / 2
            assert session_for_token(session, token, moment) is not None, moment
            touch_session(session, row.id, moment)
        assert row.expires_at == NOW + SESSION_LIFETIME
        assert session_for_token(session, token, NOW + SESSION_LIFETIME) is None
        assert session_for_token(session, token + "x", NOW) is None and session_for_token(session, "", NOW) is None


def test_the_client_limit_stops_guessing_across_many_emails(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        add_merchant(session, "olive@shop.example", "Olive", "owner", PASSWORD, NOW)
        for number in range(20):
            assert sign_in(session, f"guess{number}@shop.example", "wrong password", "one-client", NOW).status == "invalid"
        assert sign_in(session, "olive@shop.example", PASSWORD, "one-client", NOW).status == "rate_limited"
        assert sign_in(session, "olive@shop.example", PASSWORD, "other-client", NOW).status == "ok"


def test_housekeeping_forgets_expired_sessions_and_old_failures(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        merchant = add_merchant(session, "olive@shop.example", "Olive", "owner", PASSWORD, NOW)
        open_session(session, merchant, NOW)
        sign_in(session, "olive@shop.example", "wrong password", "client", NOW)
        assert forget_expired(session, NOW + timedelta(minutes=1)) == 0
        assert forget_expired(session, NOW + SESSION_LIFETIME) == 2
        assert session.execute(select(func.count()).select_from(ConsoleSession)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(LoginAttempt)).scalar_one() == 0


def test_the_demo_owner_is_made_once_and_its_login_is_shown_until_the_password_changes(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        assert ensure_demo_owner(session, "generated-secret-123", NOW) == f"{DEMO_OWNER_EMAIL} / generated-secret-123"
        assert ensure_demo_owner(session, "generated-secret-123", NOW) == f"{DEMO_OWNER_EMAIL} / generated-secret-123"
        set_password(session, merchant_by_email(session, DEMO_OWNER_EMAIL), "changed by the owner")
        assert ensure_demo_owner(session, "generated-secret-123", NOW) == f"{DEMO_OWNER_EMAIL} (password changed since)"


def test_no_demo_owner_is_added_beside_real_accounts(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        add_merchant(session, "olive@shop.example", "Olive", "owner", PASSWORD, NOW)
        assert ensure_demo_owner(session, "generated-secret-123", NOW) is None
        assert merchant_by_email(session, DEMO_OWNER_EMAIL) is None


def _cli(monkeypatch, capsys, stdin: str, *argv: str) -> tuple:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_merchant_commands(environment, monkeypatch, capsys) -> None:
    code, out = _cli(monkeypatch, capsys, PASSWORD + "\n", "merchant", "add", "Olive@Shop.example", "--role", "owner")
    assert code == 0 and "added olive@shop.example (owner)" in out
    code, out = _cli(monkeypatch, capsys, PASSWORD + "\n", "merchant", "add", "olive@shop.example")
    assert code == 1 and "already exists" in out
    code, out = _cli(monkeypatch, capsys, "short\n", "merchant", "add", "sam@shop.example")
    assert code == 1 and "at least 10 characters" in out
    code, out = _cli(monkeypatch, capsys, "", "merchant", "add", "sam@shop.example")
    assert code == 1 and "no password on standard input" in out
    code, out = _cli(monkeypatch, capsys, "", "merchant", "list")
    assert code == 0 and "olive@shop.example" in out and "1 accounts" in out and "sam@" not in out
    code, out = _cli(monkeypatch, capsys, "new long password\n", "merchant", "password", "olive@shop.example")
    assert code == 0 and "signed out" in out
    code, out = _cli(monkeypatch, capsys, "", "merchant", "disable", "olive@shop.example")
    assert code == 0
    with get_database().session() as session:
        merchant = merchant_by_email(session, "olive@shop.example")
        assert merchant is not None and not merchant.active
    code, out = _cli(monkeypatch, capsys, "", "merchant", "enable", "nobody@shop.example")
    assert code == 1 and "no merchant with e-mail nobody@shop.example" in out
