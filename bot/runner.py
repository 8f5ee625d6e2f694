"""`make run`: the action server, the Rasa server and the web app together; one Ctrl-C stops them all."""
from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from bot.processes import ManagedProcess, ProcessFailed, Supervisor
from bot.settings import PROJECT_ROOT, Settings
from bot.training import model_path

# The largest request body the Rasa server reads (Telegram and Instagram webhooks allow 1 MB).
RASA_MAX_BODY_BYTES = 1024 * 1024


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
    # One TensorFlow thread per operation and between operations: a turn's models are small, and TF's
    # default thread pools (one thread per core, spinning while they wait for work) cost more CPU than they
    # save — they compete with the other requests of the same process and with the other replicas.
    env.setdefault("TF_INTER_OP_PARALLELISM_THREADS", "1")
    env.setdefault("TF_INTRA_OP_PARALLELISM_THREADS", "1")
    env["SANIC_HOST"] = settings.bind_host
    # Sanic reads bodies of up to 100 MB by default before any channel can look at them; no channel
    # takes more than 1 MB (the platforms' webhooks), so larger bodies get 413 before they are read.
    env.setdefault("SANIC_REQUEST_MAX_SIZE", str(RASA_MAX_BODY_BYTES))
    return env


def action_server_command(settings: Settings) -> List[str]:
    return [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(settings.actions_port)]


def credentials_file(settings: Settings) -> Path:
    """The channels Rasa opens: credentials.yml (REST channel included) unless RAPPORT_ENV=production."""
    name = "credentials.production.yml" if settings.environment == "production" else "credentials.yml"
    return PROJECT_ROOT / name


def rasa_server_command(settings: Settings, model: Optional[Path] = None) -> List[str]:
    """`rasa run` on the project's model, channels and stores; the HTTP API stays off."""
    return [
        sys.executable, "-m", "rasa", "run",
        "--interface", settings.bind_host,
        "--port", str(settings.rasa_port),
        "--model", str(model or model_path()),
        "--credentials", str(credentials_file(settings)),
        "--endpoints", str(endpoints_file(settings)),
    ]


def web_app_command() -> List[str]:
    """The web app (store API, scheduled loyalty jobs): `python -m bot web`."""
    return [sys.executable, "-m", "bot", "web"]


def local_address(settings: Settings) -> str:
    """Where this machine reaches the servers."""
    return "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::", "") else settings.bind_host


def development_secret(data_dir: Path, name: str) -> str:
    """A random secret kept in data_dir/secrets/<name> (mode 600), made on first use: `make run` turns the
    widget on without the operator inventing a key. Production sets its own in the environment."""
    path = data_dir / "secrets" / name
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value


def with_development_defaults(settings: Settings, env: Dict[str, str]) -> Settings:
    """Development runs get a widget signing secret from var/secrets/ when none is set (never production)."""
    if settings.environment == "production" or settings.widget_signing_secret:
        return settings
    env["WIDGET_SIGNING_SECRET"] = development_secret(settings.data_dir, "widget_signing_secret")
    return dataclasses.replace(settings, widget_signing_secret=env["WIDGET_SIGNING_SECRET"])


def channel_status(settings: Settings) -> List[str]:
    """One line per channel: on, or off and which variables turn it on (never a secret's value)."""
    # Imported here: the channel modules import Rasa, which only `make run` needs.
    from channels.instagram import instagram_status
    from channels.telegram import telegram_status
    from channels.widget import widget_status

    rest = ("rest: off (RAPPORT_ENV=production)" if settings.environment == "production"
            else "rest: on (development; this machine only unless REST_CHANNEL_TOKEN is set)")
    return [widget_status(settings), telegram_status(settings), instagram_status(settings), rest]


def how_to_chat(settings: Settings, channels: Optional[List[str]] = None, console_login: Optional[str] = None) -> str:
    rest = f"http://localhost:{settings.rasa_port}/webhooks/rest/webhook"
    web_app = f"http://localhost:{settings.web_port}"
    # Whether the API is on, never the token itself.
    api = (f"store API: {web_app}/api/… with Authorization: Bearer $STORE_API_TOKEN" if settings.store_api_token
           else "store API off: set STORE_API_TOKEN to turn it on")
    jobs = (f"loyalty jobs every {settings.loyalty_jobs_interval_minutes} min"
            if settings.loyalty_jobs_interval_minutes else "loyalty jobs off")
    channel_lines = "".join(f"    {line}\n" for line in (channels or []))
    demo = ("" if settings.environment == "production"
            else f"  Demo store     {web_app}/demo   (the website widget; sign in as a demo shopper from the page)\n")
    production = settings.environment == "production"
    console = f"  Console        {web_app}/console/" + (f"   (sign in: {console_login})" if console_login else
                                                         "   (accounts: .venv/bin/python -m bot merchant add)") + "\n"
    rasa_line = f"http://localhost:{settings.rasa_port}" + ("" if production else f"   (REST channel: {rest})")
    try_it = "" if production else f"""Chat over REST as a demo shopper (alice, bob, chloe or dev; any other sender is a guest):
  curl -s {rest} -H 'Content-Type: application/json' \\
       -d '{{"sender": "alice", "message": "how many points do I have?"}}'
Or in a terminal, in another shell:
  .venv/bin/rasa shell --conversation-id alice --port {settings.rasa_port + 1}   (its own Rasa server, same actions)
"""
    logs = _shown(settings.data_dir / "logs")
    return f"""
Rapport is running.
  Rasa server    {rasa_line}
  Action server  http://localhost:{settings.actions_port}
  Web app        {web_app}   ({api}; {jobs})
{console}{demo}  Channels:
{channel_lines}  Logs           {logs}/ (rasa.log, actions.log, web.log; tail -f to follow)
{try_it}Press Ctrl-C to stop all three servers.
"""


def _shown(path: Path) -> str:
    """A path as the operator types it: relative to the repository when it is inside."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def run_stack(settings: Settings, console_login: Optional[str] = None) -> int:
    env = server_env(os.environ, settings)
    settings = with_development_defaults(settings, env)
    # Each server's output (library warnings, one line per request) goes to its log file; the terminal gets
    # the summary, and a server's last lines when it fails.
    logs = settings.data_dir / "logs"
    actions = ManagedProcess("action server", action_server_command(settings), cwd=PROJECT_ROOT, env=env,
                             log_path=logs / "actions.log")
    rasa = ManagedProcess("rasa server", rasa_server_command(settings), cwd=PROJECT_ROOT, env=env,
                          log_path=logs / "rasa.log")
    web_app = ManagedProcess("web app", web_app_command(), cwd=PROJECT_ROOT, env=env, log_path=logs / "web.log")
    processes = [actions, rasa, web_app]
    supervisor = Supervisor(processes, report=lambda line: print(f"[run] {line}", file=sys.stderr, flush=True))

    def on_signal(_signum: int, _frame: Optional[object]) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        supervisor.start_all()
        print(f"[run] starting the action server, the Rasa server (loading the model takes a minute or two) and "
              f"the web app; their logs: {_shown(logs)}/", flush=True)
        try:
            host = local_address(settings)
            rasa.wait_until_ready(f"http://{host}:{settings.rasa_port}/", timeout=300, also_watch=processes)
            actions.wait_until_ready(f"http://{host}:{settings.actions_port}/health", timeout=60, also_watch=processes)
            web_app.wait_until_ready(f"http://{host}:{settings.web_port}/health", timeout=60, also_watch=processes)
            print(how_to_chat(settings, channel_status(settings), console_login), flush=True)
        except ProcessFailed as error:
            # An exit is reported below; a server that is merely slow may still come up, so keep going.
            if error.returncode is None:
                print(f"[run] {error}", file=sys.stderr, flush=True)
        # A server that exits is restarted with backoff; the others keep serving (the store API and the
        # console stay up while the Rasa server reloads its model).
        while True:
            supervisor.poll()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\n[run] stopping…", flush=True)
        return 0
    finally:
        # A second Ctrl-C while stopping must not leave the servers (own sessions) running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop()
