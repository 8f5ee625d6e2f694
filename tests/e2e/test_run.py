"""`python -m bot run` (what `make run` starts): both servers up, one Ctrl-C stops both."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List

import pytest

from bot.processes import free_port
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def _children(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_serves_real_points_and_ctrl_c_stops_everything(trained_model, tmp_path) -> None:
    env = {
        **os.environ,
        "RAPPORT_DATA_DIR": str(tmp_path / "var"),
        "RASA_PORT": str(free_port()),
        "ACTIONS_PORT": str(free_port()),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "TRACKER_DATABASE_URL"):
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
        assert "[seed] demo shop: 12 products added, 4 customers added" in output

        request = urllib.request.Request(
            f"http://127.0.0.1:{env['RASA_PORT']}/webhooks/rest/webhook",
            data=json.dumps({"sender": "bob", "message": "how many points do i have"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            replies = json.loads(response.read())
        assert replies[0]["text"].startswith("Bob, you have 545 points")

        servers = _children(runner.pid)
        assert len(servers) == 2 and all(_alive(pid) for pid in servers)
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 0
        time.sleep(0.5)
        assert not any(_alive(pid) for pid in servers), "orphaned server processes"
    finally:
        if runner.poll() is None:
            runner.kill()
