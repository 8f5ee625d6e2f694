"""Where a chat turn's CPU goes: `python -m bench.turn_profile` (README, Performance).

Starts the one-process stack the way `make bench-chat` does (its own ports, a fresh SQLite store), plays
a fixed set of conversations over REST after a warm-up, and meanwhile
  - reads the Rasa server's and the action server's CPU time (/proc/<pid>/stat, user + system) before and
    after: CPU milliseconds per turn, exactly;
  - samples the Rasa server with py-spy (`py-spy record --format raw`, 100 Hz, non-idle threads) and sorts
    each sample into one part of a turn by the frames on its stack;
then prints CPU ms per turn per part (the Rasa server's total shared out by the samples' proportions).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench.chat import (RAPPORT_SCRIPTS, bench_target, plan_conversations, rapport_stack)

# First match wins: a sample whose stack shows a tracker store call is persistence, even when that call
# came from the processor.
PARTS: Sequence[Tuple[str, Sequence[str]]] = (
    ("tracker store (load and save)", ("tracker_store.py", "conversation_stores.py")),
    ("conversation lock", ("lock_store.py", "bot/locks.py")),
    ("action call: payload (tracker state, JSON)", ("_action_call_format", "action_call_format")),
    ("action call: HTTP round trip and response", ("_run_action (rasa/core/processor.py",)),
    ("NLU pipeline (parse_message)", ("parse_message",)),
    ("dialogue policies (predict next action)", ("_predict_next_with_tracker",)),
    ("processor: sessions, slots, sending replies", ("rasa/core/processor.py",)),
    ("channel and HTTP server", ("sanic", "channels/", "rasa/core/channels")),
)
OTHER = "other (event loop, logging, tracker updates)"


def pid_listening_on(port: int) -> int:
    """The pid whose command line runs a server on `port` (ours started it, so /proc has it)."""
    needle = f"--port\x00{port}\x00".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes() + b"\x00":
                    return int(entry.name)
            except OSError:
                continue
    raise SystemExit(f"no process serves port {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def classify(stack: str) -> str:
    for part, needles in PARTS:
        if any(needle in stack for needle in needles):
            return part
    return OTHER


def read_raw(path: Path) -> Counter:
    parts: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            parts[classify(stack)] += int(count)
    return parts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.turn_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rasa-port", type=int, default=5215)
    parser.add_argument("--actions-port", type=int, default=5265)
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's raw stacks here")
    parser.add_argument("--classify", type=Path, default=None, metavar="RAW",
                        help="only sort the stacks of an earlier run's raw file into parts (no servers started)")
    args = parser.parse_args(argv)
    if args.classify is not None:
        parts = read_raw(args.classify)
        total = sum(parts.values()) or 1
        for part, _ in list(PARTS) + [(OTHER, ())]:
            print(f"{part:<48} {parts.get(part, 0) / total:>6.1%}")
        return 0

    plans = {args.concurrency: plan_conversations("rapport", args.concurrency, args.conversations, RAPPORT_SCRIPTS)}
    warm = plan_conversations("rapport", 0, 1, RAPPORT_SCRIPTS)[0]
    senders = [warm.sender] + [c.sender for c in plans[args.concurrency]]
    raw = args.raw or Path(tempfile.mkstemp(prefix="turn-profile-", suffix=".txt")[1])
    with rapport_stack(args.rasa_port, args.actions_port, senders) as url:
        rasa_pid, actions_pid = pid_listening_on(args.rasa_port), pid_listening_on(args.actions_port)
        asyncio.run(bench_target("warm-up", url, warm, {}))
        spy = subprocess.Popen([str(Path(os.sys.executable).parent / "py-spy"), "record", "--pid", str(rasa_pid),
                                "--format", "raw", "--rate", "100", "--nonblocking", "--output", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        rasa_before, actions_before = cpu_seconds(rasa_pid), cpu_seconds(actions_pid)
        results = asyncio.run(bench_target("rapport", url, warm, plans))
        rasa_cpu = cpu_seconds(rasa_pid) - rasa_before
        actions_cpu = cpu_seconds(actions_pid) - actions_before
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait(timeout=60)
    turns = sum(item.turns for item in results)
    parts = read_raw(raw)
    total_samples = sum(parts.values()) or 1
    print(f"\n{turns} turns; Rasa server CPU {rasa_cpu * 1000 / turns:.1f} ms per turn, action server "
          f"{actions_cpu * 1000 / turns:.1f} ms per turn ({total_samples} samples)")
    print(f"{'part of a turn (Rasa server)':<48} {'share':>6} {'CPU ms/turn':>12}")
    for part, _ in list(PARTS) + [(OTHER, ())]:
        share = parts.get(part, 0) / total_samples
        print(f"{part:<48} {share:>6.1%} {share * rasa_cpu * 1000 / turns:>12.1f}")
    print(f"raw stacks: {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
