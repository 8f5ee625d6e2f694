"""`make run`: the action server and the Rasa server together; one Ctrl-C stops both."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional

from bot.settings import PROJECT_ROOT, Settings

STOP_GRACE_SECONDS = 10


def endpoints_file(settings: Settings) -> Path:
    """endpoints.yml, or a copy under var/ pointing at a non-default action server port."""
    source = PROJECT_ROOT / "endpoints.yml"
    if settings.actions_port == 5055:
        return source
    target = settings.data_dir / "endpoints.yml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        source.read_text().replace("http://localhost:5055/webhook", settings.action_endpoint_url)
    )
    return target


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _wait_until_up(url: str, processes: List[subprocess.Popen], timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    return False


def _stop(processes: List[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def how_to_chat(settings: Settings) -> str:
    rest = f"http://localhost:{settings.rasa_port}/webhooks/rest/webhook"
    return f"""
Rapport is running.
  Rasa server    http://localhost:{settings.rasa_port}   (REST channel: {rest})
  Action server  http://localhost:{settings.actions_port}
Chat over REST as a demo shopper (alice, bob, chloe or dev; any other sender is a guest):
  curl -s {rest} -H 'Content-Type: application/json' \\
       -d '{{"sender": "alice", "message": "how many points do I have?"}}'
Or in a terminal, in another shell:
  .venv/bin/rasa shell --conversation-id alice --port {settings.rasa_port + 1}   (its own Rasa server, same actions)
Press Ctrl-C to stop both servers.
"""


def run_stack(settings: Settings) -> int:
    env = _child_env()
    python = sys.executable
    actions = subprocess.Popen(
        [python, "-m", "rasa_sdk", "--actions", "actions", "--port", str(settings.actions_port)],
        cwd=PROJECT_ROOT, env=env, start_new_session=True,
    )
    rasa = subprocess.Popen(
        [
            python, "-m", "rasa", "run",
            "--interface", settings.bind_host,
            "--port", str(settings.rasa_port),
            "--endpoints", str(endpoints_file(settings)),
            "--credentials", str(PROJECT_ROOT / "credentials.yml"),
            "--model", "models",
        ],
        cwd=PROJECT_ROOT, env=env, start_new_session=True,
    )
    processes = [actions, rasa]
    stopping = {"signal": None}

    def on_signal(signum: int, _frame: Optional[object]) -> None:
        stopping["signal"] = signum
        raise KeyboardInterrupt

    # Installed explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if _wait_until_up(f"http://127.0.0.1:{settings.rasa_port}/", processes) and _wait_until_up(
            f"http://127.0.0.1:{settings.actions_port}/health", processes, timeout=60
        ):
            print(how_to_chat(settings), flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        failed = [p for p in processes if p.poll() is not None]
        print(f"[run] a server exited (code {failed[0].returncode}); stopping the other", file=sys.stderr, flush=True)
        return failed[0].returncode or 1
    except KeyboardInterrupt:
        print("\n[run] stopping…", flush=True)
        return 0
    finally:
        _stop(processes)
