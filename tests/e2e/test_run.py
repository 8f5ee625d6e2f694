"""`python -m bot run` (what `make run` starts): the three servers up, a crashed one restarted while the
others serve (and the shopper told meanwhile), one Ctrl-C stops them all."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from pathlib import Path

import pytest

from bot.processes import free_port
from bot.rasa_hooks import APOLOGY
from bot.settings import PROJECT_ROOT
from tests.procfs import children_of, listening_addresses, pid_running, wait_until

pytestmark = pytest.mark.e2e


def test_run_serves_real_points_and_ctrl_c_stops_everything(trained_model, tmp_path) -> None:
    env = {
        **os.environ,
        "RAPPORT_DATA_DIR": str(tmp_path / "var"),
        "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()),
        "WEB_PORT": str(free_port()),
        "STORE_API_TOKEN": "e2e-store-token",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "TRACKER_DATABASE_URL", "BIND_HOST", "SANIC_HOST",
                 "WIDGET_SIGNING_SECRET", "TELEGRAM_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "INSTAGRAM_APP_SECRET",
                 "INSTAGRAM_VERIFY_TOKEN", "INSTAGRAM_ACCESS_TOKEN", "RAPPORT_ENV"):
        env.pop(name, None)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        runner = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=PROJECT_ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "Rapport is running" not in log_path.read_text(errors="replace"):
            assert runner.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "stack did not come up"
            time.sleep(1)
        output = log_path.read_text(errors="replace")
        assert f"http://localhost:{env['RASA_PORT']}/webhooks/rest/webhook" in output and "rasa shell" in output
        assert "[seed] demo shop: 41 products added, 4 customers added" in output
        # Which channels are on, and how to turn on the others; the widget is on with a development secret.
        assert f"Demo store     http://localhost:{env['WEB_PORT']}/demo" in output
        assert f"widget: on — script http://localhost:{env['RASA_PORT']}/webhooks/widget/widget.js" in output
        assert "telegram: off — set TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET" in output
        assert "instagram: off — set INSTAGRAM_APP_SECRET, INSTAGRAM_VERIFY_TOKEN and INSTAGRAM_ACCESS_TOKEN" in output
        secret_file = tmp_path / "var" / "secrets" / "widget_signing_secret"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        assert secret_file.read_text().strip() not in output, "a secret is never printed"
        with urllib.request.urlopen(f"http://127.0.0.1:{env['WEB_PORT']}/demo", timeout=30) as page:
            assert f":{env['RASA_PORT']}/webhooks/widget/widget.js" in page.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{env['RASA_PORT']}/webhooks/widget/widget.js", timeout=30) as script:
            assert script.status == 200 and "javascript" in script.headers["Content-Type"]

        request = urllib.request.Request(
            f"http://127.0.0.1:{env['RASA_PORT']}/webhooks/rest/webhook",
            data=json.dumps({"sender": "bob", "message": "how many points do i have"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            replies = json.loads(response.read())
        assert replies[0]["text"].startswith("Bob, you have 545 points")

        # The store reports an order through the web app's API; the bot's next answer includes it.
        order = urllib.request.Request(
            f"http://127.0.0.1:{env['WEB_PORT']}/api/orders",
            data=json.dumps({"event": "paid", "order_id": "E2E-1", "customer": {"email": "bob.okafor@example.com"},
                             "total": "20.00", "currency": "USD"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer e2e-store-token"},
        )
        with urllib.request.urlopen(order, timeout=30) as response:
            assert response.status == 201 and json.loads(response.read())["points_awarded"] == 100
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())[0]["text"].startswith("Bob, you have 645 points")

        # Neither server is reachable from other machines by default (BIND_HOST=127.0.0.1).
        assert listening_addresses(int(env["RASA_PORT"])) == ["127.0.0.1"]
        assert listening_addresses(int(env["ACTIONS_PORT"])) == ["127.0.0.1"]
        assert listening_addresses(int(env["WEB_PORT"])) == ["127.0.0.1"]

        # kill -9 of the action server: the shopper gets an apology instead of silence, the web app keeps
        # serving, and the runner restarts the action server; the bot answers for real again.
        action_pid = next(pid for pid in children_of(runner.pid)
                          if b"rasa_sdk" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.killpg(action_pid, signal.SIGKILL)
        wait_until(lambda: not pid_running(action_pid), "the action server to die")
        with urllib.request.urlopen(request, timeout=60) as response:
            replies = json.loads(response.read())
        assert [reply["text"] for reply in replies] == [APOLOGY]
        with urllib.request.urlopen(f"http://127.0.0.1:{env['WEB_PORT']}/health", timeout=10) as health:
            assert health.status == 200
        deadline = time.monotonic() + 60
        while True:
            with urllib.request.urlopen(request, timeout=60) as response:
                replies = json.loads(response.read())
            if replies and replies[0]["text"].startswith("Bob, you have 645 points"):
                break
            assert time.monotonic() < deadline, replies
            time.sleep(0.5)
        assert runner.poll() is None
        assert "the action server exited (code -9); restarting it in 0.5 s" in log_path.read_text(errors="replace")

        servers = children_of(runner.pid)
        assert len(servers) == 3 and all(pid_running(pid) for pid in servers)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 0
        wait_until(lambda: not any(pid_running(pid) for pid in servers), "no orphaned server processes")
    finally:
        leftovers = children_of(runner.pid) if runner.poll() is None else []
        if runner.poll() is None:
            runner.kill()
        for pid in leftovers:  # each server leads its own process group
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
