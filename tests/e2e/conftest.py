"""End-to-end fixtures: the trained model (trained once per run, cached by fingerprint), a seeded
store, and real action server and Rasa server processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from bot.db import Database
from bot.demo import seed_demo
from bot.loyalty.program import load_program
from bot.runner import endpoints_file
from bot.settings import PROJECT_ROOT, Settings
from bot.shop import load_shop
from bot.training import model_path, train_if_changed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server started as a child process group, stopped with SIGTERM (SIGKILL after 10 s)."""

    def __init__(self, name: str, args: List[str], env: Dict[str, str], health_url: str, log_path: Path) -> None:
        self.name, self.args, self.env, self.health_url, self.log_path = name, args, env, health_url, log_path
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 240) -> "ServerProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.health_url} within {timeout}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def trained_model() -> Path:
    train_if_changed()
    return model_path()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def e2e_env(e2e_dir: Path) -> Dict[str, str]:
    """Environment of the servers under test: own data folder with the demo shop seeded."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "TRACKER_DATABASE_URL")}
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
def action_server(e2e_env: Dict[str, str], e2e_dir: Path) -> Iterator[ServerProcess]:
    port = e2e_env["ACTIONS_PORT"]
    server = ServerProcess(
        "action server",
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", port],
        e2e_env,
        f"http://127.0.0.1:{port}/health",
        e2e_dir / "actions.log",
    ).start()
    yield server
    server.stop()


def rasa_server_process(env: Dict[str, str], log_path: Path) -> ServerProcess:
    settings = Settings.from_env(env)
    return ServerProcess(
        "rasa server",
        [
            sys.executable, "-m", "rasa", "run", "--interface", "127.0.0.1", "--port", str(settings.rasa_port),
            "--model", str(model_path()), "--credentials", str(PROJECT_ROOT / "credentials.yml"),
            "--endpoints", str(endpoints_file(settings)),
        ],
        env,
        f"http://127.0.0.1:{settings.rasa_port}/webhooks/rest/",
        log_path,
    )


@pytest.fixture(scope="session")
def rasa_server(trained_model: Path, action_server: ServerProcess, e2e_env: Dict[str, str], e2e_dir: Path) -> Iterator[ServerProcess]:
    server = rasa_server_process(e2e_env, e2e_dir / "rasa.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rest_url(rasa_server: ServerProcess, e2e_env: Dict[str, str]) -> str:
    return f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/rest/webhook"


@pytest.fixture(scope="session")
def agent(trained_model: Path, action_server: ServerProcess, e2e_env: Dict[str, str]):
    """The trained model loaded in-process with rasa.core.agent, using the real action server."""
    from rasa.core.agent import Agent
    from rasa.utils.endpoints import EndpointConfig

    return Agent.load(
        str(trained_model),
        action_endpoint=EndpointConfig(url=f"http://localhost:{e2e_env['ACTIONS_PORT']}/webhook"),
    )
