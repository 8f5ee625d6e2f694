"""Real PostgreSQL and Redis for tests: started when stopped; in CI a missing one fails, never skips."""
from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

_START_COMMANDS = {
    5432: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    6379: 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_service(name: str, port: int) -> None:
    """Make sure a local service listens on `port`, starting it if we can."""
    if _listening(port):
        return
    subprocess.run(_START_COMMANDS[port], shell=True, capture_output=True, timeout=60)
    for _ in range(30):
        if _listening(port):
            return
        time.sleep(0.5)
    message = f"{name} is not reachable on 127.0.0.1:{port} and could not be started"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
