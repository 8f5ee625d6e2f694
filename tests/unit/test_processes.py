"""ManagedProcess against real child processes: a real HTTP server, a server that dies at once, one
that never answers and one that ignores SIGTERM."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from bot.processes import ManagedProcess, ProcessFailed, free_port, stop_all
from tests.procfs import pid_running

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring SIGTERM', flush=True); "
    "time.sleep(60)"
)


@pytest.fixture()
def started() -> Iterator[List[ManagedProcess]]:
    """Processes a test starts; whatever a failing test leaves running is killed."""
    processes: List[ManagedProcess] = []
    yield processes
    stop_all(processes, grace_seconds=0.5)


def python(tmp_path: Path, name: str, code: str) -> ManagedProcess:
    return ManagedProcess(name, [sys.executable, "-c", code], cwd=tmp_path, log_path=tmp_path / f"{name}.log")


def wait_for_log(process: ManagedProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log_tail():
        assert process.alive(), process.log_tail()
        assert time.monotonic() < deadline, f"{text!r} not in the log of {process.name}"
        time.sleep(0.05)


def test_an_http_server_comes_up_and_stops(tmp_path: Path, started: List[ManagedProcess]) -> None:
    port = free_port()
    server = ManagedProcess(
        "http server",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"}, log_path=tmp_path / "http.log",
    )
    started.append(server)
    assert not server.alive() and server.pid is None and server.returncode is None

    assert server.start().wait_until_ready(f"http://127.0.0.1:{port}/", timeout=30) is server
    assert server.alive() and server.returncode is None
    assert '"GET / HTTP/1.1" 200' in server.log_tail()

    server.stop()
    assert not server.alive()
    assert server.returncode == -15  # SIGTERM was enough
    server.stop()  # stopping a stopped server is harmless


def test_a_server_that_exits_at_once_fails_fast_with_its_log_tail(tmp_path: Path, started: List[ManagedProcess]) -> None:
    crasher = python(tmp_path, "crasher", "import sys; print('config error: no model found', flush=True); sys.exit(3)")
    started.append(crasher.start())

    began = time.monotonic()
    with pytest.raises(ProcessFailed) as failure:
        crasher.wait_until_ready(f"http://127.0.0.1:{free_port()}/", timeout=60)

    assert time.monotonic() - began < 10, "did not notice the exit before the timeout"
    assert failure.value.process is crasher and failure.value.returncode == 3
    message = str(failure.value)
    assert message.startswith("crasher exited (code 3) before http://127.0.0.1:")
    assert "config error: no model found" in message


def test_a_watched_sibling_that_exits_fails_the_wait(tmp_path: Path, started: List[ManagedProcess]) -> None:
    waiting = python(tmp_path, "waiting", "import time; time.sleep(60)")
    sibling = python(tmp_path, "sibling", "import sys; print('sibling gave up', flush=True); sys.exit(2)")
    started.extend([waiting.start(), sibling.start()])

    with pytest.raises(ProcessFailed) as failure:
        waiting.wait_until_ready(f"http://127.0.0.1:{free_port()}/", timeout=60, also_watch=[waiting, sibling])

    assert failure.value.process is sibling and failure.value.returncode == 2
    assert str(failure.value).startswith("sibling exited (code 2)") and "sibling gave up" in str(failure.value)
    assert waiting.alive(), "the wait must leave stopping to the caller"


def test_a_server_that_never_answers_times_out_and_is_left_running(tmp_path: Path, started: List[ManagedProcess]) -> None:
    silent = python(tmp_path, "silent", "import time; print('starting up', flush=True); time.sleep(60)")
    started.append(silent.start())
    wait_for_log(silent, "starting up")
    url = f"http://127.0.0.1:{free_port()}/"

    with pytest.raises(ProcessFailed) as failure:
        silent.wait_until_ready(url, timeout=1)

    assert failure.value.returncode is None
    assert str(failure.value).startswith(f"silent did not answer {url} within 1 s")
    assert "starting up" in str(failure.value)
    assert silent.alive()


def test_without_a_log_file_output_is_inherited_and_there_is_no_tail(tmp_path: Path, started: List[ManagedProcess]) -> None:
    quiet = ManagedProcess("quiet", [sys.executable, "-c", "raise SystemExit(4)"], cwd=tmp_path)
    started.append(quiet.start())
    url = f"http://127.0.0.1:{free_port()}/"

    with pytest.raises(ProcessFailed) as failure:
        quiet.wait_until_ready(url, timeout=30)

    assert str(failure.value) == f"quiet exited (code 4) before {url} answered"
    assert quiet.log_tail() == ""


def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace_period(tmp_path: Path, started: List[ManagedProcess]) -> None:
    stubborn = python(tmp_path, "stubborn", IGNORES_SIGTERM)
    started.append(stubborn.start())
    wait_for_log(stubborn, "ignoring SIGTERM")

    began = time.monotonic()
    stubborn.stop(grace_seconds=0.5)

    assert 0.5 <= time.monotonic() - began < 5
    assert not stubborn.alive() and stubborn.returncode == -9


def test_stop_reaches_what_the_server_started_itself(tmp_path: Path, started: List[ManagedProcess]) -> None:
    parent = python(
        tmp_path, "parent",
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', child.pid, flush=True); time.sleep(60)",
    )
    started.append(parent.start())
    wait_for_log(parent, "child ")
    child_pid = int(parent.log_tail().split()[-1])
    assert pid_running(child_pid)

    parent.stop(grace_seconds=5)

    deadline = time.monotonic() + 5
    while pid_running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_running(child_pid), "the server's own child outlived it"


def test_stop_all_shares_one_grace_period(tmp_path: Path, started: List[ManagedProcess]) -> None:
    stubborn = [python(tmp_path, f"stubborn-{index}", IGNORES_SIGTERM) for index in range(3)]
    started.extend(process.start() for process in stubborn)
    for process in stubborn:
        wait_for_log(process, "ignoring SIGTERM")

    began = time.monotonic()
    stop_all(stubborn, grace_seconds=1)

    assert 1 <= time.monotonic() - began < 2.5, "each process got its own grace period"
    assert all(process.returncode == -9 for process in stubborn)


def test_a_restart_gets_a_fresh_log(tmp_path: Path, started: List[ManagedProcess]) -> None:
    process = python(tmp_path, "twice", "import os; print('run', os.getpid(), flush=True)")
    started.append(process)
    for _ in range(2):
        process.start()
        deadline = time.monotonic() + 10
        while process.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.log_tail().splitlines() == [f"run {process.pid}"]


def test_the_supervisor_restarts_a_killed_server_with_backoff_and_leaves_the_others(
    tmp_path: Path, started: List[ManagedProcess]
) -> None:
    from bot.processes import Supervisor, kill

    crashing = python(tmp_path, "crashing", "import time; print('up', flush=True); time.sleep(60)")
    steady = python(tmp_path, "steady", "import time; time.sleep(60)")
    started.extend([crashing, steady])
    lines: List[str] = []
    supervisor = Supervisor([crashing, steady], report=lines.append, first_backoff=0.2, max_backoff=0.8)
    supervisor.start_all()
    wait_for_log(crashing, "up")
    steady_pid = steady.pid
    restarted_at: List[float] = []
    for attempt in range(3):
        deadline = time.monotonic() + 10
        while crashing.log_tail().count("up") < attempt + 1:  # restarts append to the log
            assert time.monotonic() < deadline, crashing.log_tail()
            time.sleep(0.02)
        old_pid = crashing.pid
        kill(crashing)
        killed = time.monotonic()
        while crashing.pid == old_pid or not crashing.alive():
            supervisor.poll()
            assert time.monotonic() - killed < 10, lines
            time.sleep(0.02)
        restarted_at.append(time.monotonic() - killed)
        assert steady.alive() and steady.pid == steady_pid  # never touched
    # 0.2, 0.4, 0.8 s: each restart waits longer than the one before.
    assert restarted_at[0] >= 0.2 and restarted_at[1] >= 0.4 and restarted_at[2] >= 0.8, restarted_at
    assert supervisor.restarts == {"crashing": 3, "steady": 0}
    assert "the crashing exited (code -9); restarting it in 0.2 s" in lines[0]
    deadline = time.monotonic() + 10
    while crashing.log_tail().count("up") < 4 and time.monotonic() < deadline:  # restarts append to the log
        time.sleep(0.05)
    assert crashing.log_tail().count("up") == 4
    supervisor.stop(grace_seconds=1)
    assert not crashing.alive() and not steady.alive()
