"""Which channels the Rasa server opens, and the body limit it reads with."""
from __future__ import annotations

from pathlib import Path

import yaml

from bot.runner import RASA_MAX_BODY_BYTES, credentials_file, rasa_server_command, server_env
from bot.settings import PROJECT_ROOT, Settings, SettingsError

import pytest


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), **env})


def _channels(path: Path) -> set:
    return set(yaml.safe_load(path.read_text()) or {})


def test_development_opens_the_rest_channel_and_production_does_not(tmp_path: Path) -> None:
    development = credentials_file(_settings(tmp_path))
    production = credentials_file(_settings(tmp_path, RAPPORT_ENV="production"))
    assert development == PROJECT_ROOT / "credentials.yml"
    assert production == PROJECT_ROOT / "credentials.production.yml"
    assert "channels.rest.GuardedRestInput" in _channels(development)
    assert not any("rest" in channel.lower() for channel in _channels(production))
    assert _channels(production) == _channels(development) - {"channels.rest.GuardedRestInput"}
    command = rasa_server_command(_settings(tmp_path, RAPPORT_ENV="production"), model=tmp_path / "m.tar.gz")
    assert command[command.index("--credentials") + 1] == str(production)


def test_an_unknown_environment_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RAPPORT_ENV='staging' must be one of: development, production"):
        _settings(tmp_path, RAPPORT_ENV="staging")


def test_the_rasa_server_reads_at_most_one_megabyte_per_request(tmp_path: Path) -> None:
    env = server_env({}, _settings(tmp_path))
    assert env["SANIC_REQUEST_MAX_SIZE"] == str(RASA_MAX_BODY_BYTES) == "1048576"
    assert server_env({"SANIC_REQUEST_MAX_SIZE": "2048"}, _settings(tmp_path))["SANIC_REQUEST_MAX_SIZE"] == "2048"


def test_make_run_offers_rest_and_the_demo_store_only_in_development(tmp_path: Path) -> None:
    from bot.runner import how_to_chat

    development = how_to_chat(_settings(tmp_path), ["widget: on"])
    assert "/webhooks/rest/webhook" in development and "Demo store" in development and "    widget: on\n" in development
    production = how_to_chat(_settings(tmp_path, RAPPORT_ENV="production"), ["rest: off (RAPPORT_ENV=production)"])
    assert "/webhooks/rest/webhook" not in production and "Demo store" not in production and "rasa shell" not in production
    assert "    rest: off (RAPPORT_ENV=production)\n" in production


def test_make_run_prints_the_console_and_the_demo_login(tmp_path: Path) -> None:
    from bot.runner import how_to_chat

    with_login = how_to_chat(_settings(tmp_path, WEB_PORT="8123"), [], "owner@demo.rapport.dev / s3cret-value")
    assert "Console        http://localhost:8123/console/   (sign in: owner@demo.rapport.dev / s3cret-value)" in with_login
    without = how_to_chat(_settings(tmp_path, RAPPORT_ENV="production"), [])
    assert "/console/   (accounts: .venv/bin/python -m bot merchant add)" in without and "sign in:" not in without


def test_the_first_development_start_makes_the_demo_owner_with_a_private_password(environment: Path) -> None:
    from bot.cli import _db_upgrade, _demo_console_login
    from bot.console.accounts import DEMO_OWNER_EMAIL

    _db_upgrade(None)
    login = _demo_console_login()
    secret = environment / "secrets" / "console-demo-password"
    assert login == f"{DEMO_OWNER_EMAIL} / {secret.read_text().strip()}"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert _demo_console_login() == login, "the same login on every start"


def test_a_development_secret_is_made_once_private_and_never_in_production(tmp_path: Path) -> None:
    from bot.runner import with_development_defaults

    env: dict = {}
    settings = with_development_defaults(_settings(tmp_path), env)
    secret_file = tmp_path / "secrets" / "widget_signing_secret"
    assert settings.widget_signing_secret == env["WIDGET_SIGNING_SECRET"] == secret_file.read_text().strip()
    assert secret_file.stat().st_mode & 0o777 == 0o600 and len(env["WIDGET_SIGNING_SECRET"]) >= 40
    again: dict = {}
    assert with_development_defaults(_settings(tmp_path), again).widget_signing_secret == settings.widget_signing_secret
    production: dict = {}
    assert with_development_defaults(_settings(tmp_path / "p", RAPPORT_ENV="production"), production).widget_signing_secret is None
    assert production == {} and not (tmp_path / "p" / "secrets").exists()
    own: dict = {}
    assert with_development_defaults(_settings(tmp_path, WIDGET_SIGNING_SECRET="mine"), own).widget_signing_secret == "mine"
    assert own == {}


def test_production_gets_no_demo_owner(environment: Path, monkeypatch) -> None:
    from bot.cli import _db_upgrade, _demo_console_login
    from bot.console.accounts import list_merchants
    from bot.db import get_database
    from bot.settings import reset_settings

    monkeypatch.setenv("RAPPORT_ENV", "production")
    reset_settings()
    _db_upgrade(None)
    assert _demo_console_login() is None
    with get_database().session() as session:
        assert list_merchants(session) == []
