"""The web app's settings, its factory, `serve` as a real process, and how `make run` announces it."""
from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.config_files import ConfigError
from bot.db import Database
from bot.processes import ManagedProcess, free_port
from bot.runner import how_to_chat, web_app_command
from bot.settings import PROJECT_ROOT, Settings, SettingsError
from bot.web import create_app
from tests.web.conftest import TOKEN

SERVE = "import sys; from bot.settings import get_settings; from bot.web import serve; sys.exit(serve(get_settings()))"


def test_web_settings() -> None:
    settings = Settings.from_env({"STORE_API_TOKEN": " s3cret-store-token ", "WEB_PORT": "9100"})
    assert settings.store_api_token == "s3cret-store-token"
    assert "s3cret-store-token" not in repr(settings)
    assert settings.public_base_url == "http://localhost:9100"
    assert settings.loyalty_jobs_interval_minutes == 60
    custom = Settings.from_env({"PUBLIC_BASE_URL": "https://shop.example.com/", "LOYALTY_JOBS_INTERVAL_MINUTES": "0"})
    assert custom.public_base_url == "https://shop.example.com" and custom.store_api_token is None
    assert custom.loyalty_jobs_interval_minutes == 0
    with pytest.raises(SettingsError, match="LOYALTY_JOBS_INTERVAL_MINUTES"):
        Settings.from_env({"LOYALTY_JOBS_INTERVAL_MINUTES": "-1"})


def test_a_broken_program_file_stops_the_app_from_being_built(tmp_path: Path) -> None:
    broken = tmp_path / "program.yml"
    broken.write_text("currency: USD\nearning: 5\n")
    with pytest.raises(ConfigError, match="earning"):
        create_app(Settings.from_env({"PROGRAM_FILE": str(broken), "RAPPORT_DATA_DIR": str(tmp_path)}))


def test_make_run_announces_the_web_app_without_its_token() -> None:
    on = how_to_chat(Settings.from_env({"STORE_API_TOKEN": TOKEN, "WEB_PORT": "8123"}))
    assert "http://localhost:8123" in on and "STORE_API_TOKEN" in on and TOKEN not in on
    off = how_to_chat(Settings.from_env({"LOYALTY_JOBS_INTERVAL_MINUTES": "0"}))
    assert "store API off: set STORE_API_TOKEN" in off and "loyalty jobs off" in off
    assert web_app_command() == [sys.executable, "-m", "bot", "web"]


@pytest.fixture()
def server_env(tmp_path: Path) -> dict:
    database_url = f"sqlite:///{tmp_path / 'rapport.db'}"
    database = Database(database_url)
    database.create_schema()
    database.dispose()
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT_ROOT),
        "RAPPORT_DATA_DIR": str(tmp_path / "var"),
        "DATABASE_URL": database_url,
        "STORE_API_TOKEN": TOKEN,
        "WEB_PORT": str(free_port()),
    }


def test_serve_answers_the_api_and_stops_cleanly_on_sigterm(server_env: dict, tmp_path: Path) -> None:
    port = server_env["WEB_PORT"]
    server = ManagedProcess("web app", [sys.executable, "-c", SERVE], cwd=PROJECT_ROOT, env=server_env,
                            log_path=tmp_path / "web.log")
    server.start()
    try:
        server.wait_until_ready(f"http://127.0.0.1:{port}/health", timeout=60)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/customers", data=json.dumps({"email": "ann@example.com"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201 and json.loads(response.read())["balance"] == 100
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/reward-codes/RW-0000-0000-0000", timeout=10)
        assert refused.value.code == 401
        refused.value.close()
    finally:
        server.stop(grace_seconds=10)
    assert server.returncode == 0, server.log_tail()
    log = server.log_tail(200)
    assert '"web.started"' in log and '"web.stopped"' in log and TOKEN not in log


def test_serve_reports_a_port_in_use(server_env: dict, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(server_env["WEB_PORT"])))
        taken.listen()
        server = ManagedProcess("web app", [sys.executable, "-c", SERVE], cwd=PROJECT_ROOT, env=server_env,
                                log_path=tmp_path / "web.log")
        server.start()
        try:
            server._process.wait(timeout=60)  # type: ignore[union-attr]
        finally:
            server.stop(grace_seconds=1)
    assert server.returncode == 1
    assert f"cannot listen on 127.0.0.1:{server_env['WEB_PORT']}" in server.log_tail()
