"""`make run`: the action server, the Rasa server and the web app together; one Ctrl-C stops them all."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from bot.processes import ManagedProcess, ProcessFailed, stop_all
from bot.settings import PROJECT_ROOT, Settings
from bot.training import model_path


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


def server_env(base: Mapping[str, str], settings: Settings) -> Dict[str, str]:
    """Environment of the two servers: the project importable, quiet TensorFlow, and the action
    server on the same interface as the Rasa server (rasa-sdk listens on 0.0.0.0 unless SANIC_HOST
    says otherwise, and the action endpoint has no authentication of its own)."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["SANIC_HOST"] = settings.bind_host
    return env


def action_server_command(settings: Settings) -> List[str]:
    return [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(settings.actions_port)]


def rasa_server_command(settings: Settings, model: Optional[Path] = None) -> List[str]:
    """`rasa run` on the project's model, channels and stores; the HTTP API stays off."""
    return [
        sys.executable, "-m", "rasa", "run",
        "--interface", settings.bind_host,
        "--port", str(settings.rasa_port),
        "--model", str(model or model_path()),
        "--credentials", str(PROJECT_ROOT / "credentials.yml"),
        "--endpoints", str(endpoints_file(settings)),
    ]


def web_app_command() -> List[str]:
    """The web app (store API, scheduled loyalty jobs): `python -m bot web`."""
    return [sys.executable, "-m", "bot", "web"]


def local_address(settings: Settings) -> str:
    """Where this machine reaches the servers."""
    return "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::", "") else settings.bind_host


def how_to_chat(settings: Settings) -> str:
    rest = f"http://localhost:{settings.rasa_port}/webhooks/rest/webhook"
    web_app = f"http://localhost:{settings.web_port}"
    # Whether the API is on, never the token itself.
    api = (f"store API: {web_app}/api/… with Authorization: Bearer $STORE_API_TOKEN" if settings.store_api_token
           else "store API off: set STORE_API_TOKEN to turn it on")
    jobs = (f"loyalty jobs every {settings.loyalty_jobs_interval_minutes} min"
            if settings.loyalty_jobs_interval_minutes else "loyalty jobs off")
    return f"""
Rapport is running.
  Rasa server    http://localhost:{settings.rasa_port}   (REST channel: {rest})
  Action server  http://localhost:{settings.actions_port}
  Web app        {web_app}   ({api}; {jobs})
Chat over REST as a demo shopper (alice, bob, chloe or dev; any other sender is a guest):
  curl -s {rest} -H 'Content-Type: application/json' \\
       -d '{{"sender": "alice", "message": "how many points do I have?"}}'
Or in a terminal, in another shell:
  .venv/bin/rasa shell --conversation-id alice --port {settings.rasa_port + 1}   (its own Rasa server, same actions)
Press Ctrl-C to stop all three servers.
"""


def run_stack(settings: Settings) -> int:
    env = server_env(os.environ, settings)
    actions = ManagedProcess("action server", action_server_command(settings), cwd=PROJECT_ROOT, env=env)
    rasa = ManagedProcess("rasa server", rasa_server_command(settings), cwd=PROJECT_ROOT, env=env)
    web_app = ManagedProcess("web app", web_app_command(), cwd=PROJECT_ROOT, env=env)
    processes = [actions, rasa, web_app]

    def on_signal(_signum: int, _frame: Optional[object]) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for process in processes:
            process.start()
        try:
            host = local_address(settings)
            rasa.wait_until_ready(f"http://{host}:{settings.rasa_port}/", timeout=300, also_watch=processes)
            actions.wait_until_ready(f"http://{host}:{settings.actions_port}/health", timeout=60, also_watch=processes)
            web_app.wait_until_ready(f"http://{host}:{settings.web_port}/health", timeout=60, also_watch=processes)
            print(how_to_chat(settings), flush=True)
        except ProcessFailed as error:
            # An exit is reported below; a server that is merely slow may still come up, so keep going.
            if error.returncode is None:
                print(f"[run] {error}", file=sys.stderr, flush=True)
        while all(process.alive() for process in processes):
            time.sleep(0.5)
        failed = next(process for process in processes if not process.alive())
        print(f"[run] the {failed.name} exited (code {failed.returncode}); stopping the others",
              file=sys.stderr, flush=True)
        return failed.returncode or 1
    except KeyboardInterrupt:
        print("\n[run] stopping…", flush=True)
        return 0
    finally:
        # A second Ctrl-C while stopping must not leave the servers (own sessions) running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(processes)
