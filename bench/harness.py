"""What every benchmark shares: progress lines, percentiles and latency summaries, the machine it ran on,
process memory from /proc, PASS/MISS rows against a target, the JSON file and the exit code of `--check`.
The benchmarks themselves (chat, loyalty, quiz, console) only generate load and say what they measure."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence


def log(message: str) -> None:
    """A progress line on stderr (the report itself goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (numpy's default); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounded(value: Optional[float], digits: int = 1) -> Optional[float]:
    return None if value is None else round(value, digits)


def formatted(value: Optional[float], digits: int = 1) -> str:
    """A figure for a report table: thousands separated, "-" for none."""
    return "-" if value is None else f"{value:,.{digits}f}"


def latency_summary(latencies_ms: Sequence[float], *, seconds: Optional[float] = None, digits: int = 3,
                    quantiles: Sequence[float] = (0.50, 0.95, 0.99)) -> Dict[str, Any]:
    """count, p50/p95/p99 (as asked), max and mean in ms, and calls per second when `seconds` is given."""
    summary: Dict[str, Any] = {"count": len(latencies_ms)}
    for q in quantiles:
        summary[f"p{round(q * 100)}_ms"] = rounded(percentile(latencies_ms, q), digits)
    summary["max_ms"] = rounded(max(latencies_ms) if latencies_ms else None, digits)
    summary["mean_ms"] = rounded(sum(latencies_ms) / len(latencies_ms) if latencies_ms else None, digits)
    if seconds is not None:
        summary["per_second"] = round(len(latencies_ms) / seconds, 1) if seconds > 0 else None
    return summary


def machine(packages: Sequence[str] = (), **extra: Any) -> Dict[str, Any]:
    """The machine a benchmark ran on: cores, CPU, memory, Python, the versions of `packages`, and `extra`."""
    described: Dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(proc_kib("MemTotal", Path("/proc/meminfo")) / (1024 * 1024), 1),
        "python": platform.python_version(),
    }
    for package in packages:
        described[package.replace("-", "_")] = importlib.metadata.version(package)
    described.update(extra)
    return described


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def proc_kib(field: str, path: Path) -> int:
    """A "<field>: <n> kB" figure of a /proc file; 0 when the file or the field is gone."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_kib(field: str = "VmRSS", pid: Optional[int] = None) -> int:
    """A memory figure (VmRSS, VmHWM) of this process or of `pid`, in KiB; 0 when it is gone."""
    return proc_kib(field, Path(f"/proc/{pid or 'self'}/status"))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def target(description: str, value: Optional[float], limit: float, unit: str, **extra: Any) -> Dict[str, Any]:
    """A row of the targets table: PASS when `value` is at most `limit`, MISS above, n/a without a value."""
    return {**extra, "target": description, "value": value, "limit": limit, "unit": unit,
            "result": "n/a" if value is None else ("PASS" if value <= limit else "MISS")}


def write_json(path: Optional[Path], report: Mapping[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")


def finish(report: Mapping[str, Any], text: str, json_path: Optional[Path], check: bool, failures: int = 0) -> int:
    """Print the report, say where the JSON went; exit 1 on failed requests, or with --check on a missed target."""
    print(text, flush=True)
    if json_path is not None:
        log(f"results written to {json_path}")
    missed = [row for row in report.get("targets", ()) if row["result"] == "MISS"]
    return 1 if failures or (check and missed) else 0
