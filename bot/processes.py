"""Servers run as child processes: `make run`, the end-to-end tests and the chat benchmark all start,
wait for and stop the action server and the Rasa server the same way, through ManagedProcess; `make run`
and `make run-cluster` keep them running with a Supervisor (a crashed child is restarted with backoff, the
others keep serving)."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

DEFAULT_GRACE_SECONDS = 10.0
READY_POLL_SECONDS = 0.5
LOG_TAIL_LINES = 40


class ProcessFailed(RuntimeError):
    """A server exited, or never answered, while we waited for it to come up."""

    def __init__(self, message: str, process: "ManagedProcess", returncode: Optional[int]) -> None:
        super().__init__(message)
        self.process = process
        # None: the process is still running but did not answer in time.
        self.returncode = returncode


class ManagedProcess:
    """One server as a child process in its own process group.

    Its own group, so that a Ctrl-C in the terminal reaches only our process (which then stops the
    servers in order), and so that stopping a server also stops whatever it started itself.
    Without log_path the server writes to our stdout/stderr.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        cwd: Path,
        env: Optional[Mapping[str, str]] = None,
        log_path: Optional[Path] = None,
    ) -> None:
        self.name = name
        self.command: List[str] = list(command)
        self.cwd = cwd
        self.env = None if env is None else dict(env)
        self.log_path = log_path
        self._process: Optional[subprocess.Popen] = None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, returncode={self.returncode})"

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> Optional[int]:
        """The exit code once the process has exited (negative: killed by that signal), else None."""
        return None if self._process is None else self._process.poll()

    def start(self, append_log: bool = False) -> "ManagedProcess":
        """Starts the server. A restart passes append_log, so the log keeps what led to the crash."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        log: Optional[IO[bytes]] = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            # Truncated on a first start, so that log_tail() is about this run and not an earlier one.
            log = self.log_path.open("ab" if append_log else "wb")
        try:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                # A server has no business reading the terminal (it would stop with SIGTTIN).
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=None if log is None else subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        return self

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_until_ready(
        self, url: str, timeout: float, also_watch: Iterable["ManagedProcess"] = ()
    ) -> "ManagedProcess":
        """Returns once `url` answers with a success status.

        Raises ProcessFailed, with the log tail of the process concerned, as soon as this process or
        one in `also_watch` exits (a server that depends on a dead sibling will never be usable), or
        when `timeout` seconds pass. The processes are left as they are: stopping is the caller's call.
        """
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        watched = [self] + [process for process in also_watch if process is not self]
        deadline = time.monotonic() + timeout
        while True:
            for process in watched:
                code = process.returncode
                if code is not None:
                    raise ProcessFailed(
                        process._with_log_tail(f"{process.name} exited (code {code}) before {url} answered"),
                        process, code,
                    )
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return self
            except (OSError, http.client.HTTPException):
                pass  # refused, reset, timed out, half-started or an error status: not ready yet
            if time.monotonic() >= deadline:
                raise ProcessFailed(
                    self._with_log_tail(f"{self.name} did not answer {url} within {timeout:.0f} s"), self, None
                )
            time.sleep(READY_POLL_SECONDS)

    def stop(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """SIGTERM to the process group; SIGKILL if it is still there after `grace_seconds`."""
        stop_all([self], grace_seconds)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the log file; empty without one."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _with_log_tail(self, message: str) -> str:
        tail = self.log_tail()
        return f"{message}\n--- last lines of {self.log_path} ---\n{tail}" if tail else message

    def _signal_group(self, signum: int) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:  # exited between our check and the signal
            pass


def kill(process: ManagedProcess, signum: int = signal.SIGKILL) -> None:
    """Sends `signum` to the server's process group (tests and `make chaos` use it to simulate a crash)."""
    if process.alive():
        process._signal_group(signum)


class Supervisor:
    """Keeps a set of servers running: a server that exits is restarted after a backoff (0.5 s, doubling
    up to 30 s, back to 0.5 s once it has run for a minute), and the others keep running meanwhile.

    `poll()` does one round (the caller's loop calls it every half second or so); `report` receives one
    line per exit and restart."""

    def __init__(
        self,
        processes: Sequence[ManagedProcess],
        report: Callable[[str], None],
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processes = list(processes)
        self.report = report
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.clock = clock
        self.restarts: Dict[str, int] = {process.name: 0 for process in self.processes}
        self._backoff: Dict[str, float] = {process.name: first_backoff for process in self.processes}
        self._started_at: Dict[str, float] = {}
        self._restart_at: Dict[str, float] = {}

    def start_all(self) -> None:
        for process in self.processes:
            process.start()
            self._started_at[process.name] = self.clock()

    def poll(self) -> None:
        now = self.clock()
        for process in self.processes:
            name = process.name
            if process.alive():
                if now - self._started_at.get(name, now) >= self.stable_after:
                    self._backoff[name] = self.first_backoff
                continue
            if process._process is None:
                continue  # never started (added but not meant to run yet)
            due = self._restart_at.get(name)
            if due is None:
                delay = self._backoff[name]
                if now - self._started_at.get(name, now) >= self.stable_after:
                    delay = self.first_backoff
                self._restart_at[name] = now + delay
                self.report(f"the {name} exited (code {process.returncode}); restarting it in {delay:.1f} s, "
                            f"the other servers keep running")
            elif now >= due:
                del self._restart_at[name]
                self._backoff[name] = min(self._backoff[name] * 2, self.max_backoff)
                self.restarts[name] += 1
                process.start(append_log=True)
                self._started_at[name] = now
                self.report(f"the {name} was restarted (pid {process.pid}, restart {self.restarts[name]})")

    def stop(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self._restart_at.clear()
        stop_all(self.processes, grace_seconds)


def stop_all(processes: Sequence[ManagedProcess], grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
    """Stops every process with one shared grace period, so that stopping N servers takes at most
    `grace_seconds` rather than N times that."""
    running = [process for process in processes if process.alive()]
    for process in running:
        process._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for process in running:
        assert process._process is not None
        try:
            process._process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process._signal_group(signal.SIGKILL)
            process._process.wait()


def free_port() -> int:
    """A TCP port nothing listens on right now, for a server started next."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
