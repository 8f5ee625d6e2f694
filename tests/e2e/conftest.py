"""End-to-end fixtures: the trained model (trained once per run, cached by fingerprint), a seeded
store, and real action server and Rasa server processes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator

import pytest

from bot.db import Database
from bot.demo import seed_demo
from bot.loyalty.program import load_program
from bot.processes import ManagedProcess, free_port
from bot.runner import action_server_command, rasa_server_command, server_env
from bot.settings import PROJECT_ROOT, Settings
from bot.shop import load_shop
from bot.training import model_path, train_if_changed
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.threaded import ThreadedServers


SERVER_READY_TIMEOUT_SECONDS = 240


def _serve(process: ManagedProcess, ready_url: str) -> ManagedProcess:
    """Starts `process` and waits until it answers; one that never does is not left running."""
    process.start()
    try:
        return process.wait_until_ready(ready_url, timeout=SERVER_READY_TIMEOUT_SECONDS)
    except BaseException:
        process.stop()
        raise


def start_action_server(env: Dict[str, str], log_path: Path, name: str = "action server") -> ManagedProcess:
    settings = Settings.from_env(env)
    return _serve(
        ManagedProcess(name, action_server_command(settings), PROJECT_ROOT, server_env(env, settings), log_path),
        f"http://127.0.0.1:{settings.actions_port}/health",
    )


def start_rasa_server(env: Dict[str, str], log_path: Path) -> ManagedProcess:
    settings = Settings.from_env(env)
    return _serve(
        ManagedProcess("rasa server", rasa_server_command(settings), PROJECT_ROOT, server_env(env, settings), log_path),
        f"http://127.0.0.1:{settings.rasa_port}/webhooks/rest/",
    )


@pytest.fixture(scope="session")
def trained_model() -> Path:
    train_if_changed()
    return model_path()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


# Secrets of the channels under test: every channel is on in the end-to-end Rasa server, talking to
# local fakes of the platforms.
E2E_SECRETS = {
    "TELEGRAM_TOKEN": "123456:e2e-test-token",
    "TELEGRAM_WEBHOOK_SECRET": "e2e-webhook-secret_1",
    "INSTAGRAM_APP_SECRET": "e2e-instagram-app-secret",
    "INSTAGRAM_VERIFY_TOKEN": "e2e-verify-token",
    "INSTAGRAM_ACCESS_TOKEN": "e2e-access-token",
    "WIDGET_SIGNING_SECRET": "e2e-widget-signing-secret",
    "STORE_API_TOKEN": "e2e-store-api-token",
}


@pytest.fixture(scope="session")
def platform_fakes() -> Iterator[ThreadedServers]:
    """Fake Telegram Bot API and Graph API servers for the whole run, on a background event loop (the
    servers under test are other processes; tests read what the fakes recorded)."""
    servers = ThreadedServers(
        telegram=FakeTelegramApi(E2E_SECRETS["TELEGRAM_TOKEN"]),
        graph=FakeGraphApi(E2E_SECRETS["INSTAGRAM_ACCESS_TOKEN"]),
    )
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def e2e_env(e2e_dir: Path, platform_fakes: ThreadedServers) -> Dict[str, str]:
    """Environment of the servers under test: own data folder with the demo shop seeded, every channel on."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "TRACKER_DATABASE_URL")}
    env.update(E2E_SECRETS)
    env.update(
        TELEGRAM_API_BASE=platform_fakes.servers["telegram"].base_url,
        INSTAGRAM_API_BASE=platform_fakes.servers["graph"].base_url,
    )
    env.update(
        RAPPORT_DATA_DIR=str(e2e_dir / "var"),
        ACTIONS_PORT=str(free_port()),
        RASA_PORT=str(free_port()),
        PYTHONPATH=str(PROJECT_ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        RASA_TELEMETRY_ENABLED="false",
    )
    settings = Settings.from_env(env)
    database = Database(settings.database_url)
    database.create_schema()
    with database.session(write=True) as session:
        seed_demo(session, load_program(settings.program_file), load_shop(settings.shop_file).store_url)
    database.dispose()
    return env


@pytest.fixture(scope="session")
def action_server(e2e_env: Dict[str, str], e2e_dir: Path) -> Iterator[ManagedProcess]:
    server = start_action_server(e2e_env, e2e_dir / "actions.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rasa_server(
    trained_model: Path, action_server: ManagedProcess, e2e_env: Dict[str, str], e2e_dir: Path
) -> Iterator[ManagedProcess]:
    server = start_rasa_server(e2e_env, e2e_dir / "rasa.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rest_url(rasa_server: ManagedProcess, e2e_env: Dict[str, str]) -> str:
    return f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/rest/webhook"


@pytest.fixture(scope="session")
def agent(trained_model: Path, action_server: ManagedProcess, e2e_env: Dict[str, str]):
    """The trained model loaded in-process with rasa.core.agent, using the real action server."""
    from rasa.core.agent import Agent
    from rasa.utils.endpoints import EndpointConfig

    return Agent.load(
        str(trained_model),
        action_endpoint=EndpointConfig(url=f"http://localhost:{e2e_env['ACTIONS_PORT']}/webhook"),
    )
