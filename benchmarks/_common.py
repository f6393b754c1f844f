"""Helpers shared by the benchmark scripts: machine line, CPU pinning, /proc readings, bench runs, percentiles.

Not a benchmark itself. Every script here starts what it measures, bounds it
in time, and stops it by PID; these helpers only make that shorter.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

NAN = float("nan")
_WRK_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """Date, CPU count and model, Python and kernel: the first line every script prints."""
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return (
        f"{dt.datetime.now().astimezone().isoformat(timespec='seconds')}, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, load average {load}"
    )


def cpu_plan() -> tuple[int | None, int | None]:
    """(server CPU, client CPU): the first two CPUs this process may use, or (None, None) if pinning is impossible."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` for a child command, or nothing when taskset or the CPU is missing."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def pin_pid(pid: int | None, cpus: set[int] | None) -> None:
    """Pin a running process (only that thread group leader; its later children inherit it)."""
    if pid is None or not cpus or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:
        pass


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a live process has used so far; NaN if unreadable."""
    if pid is None:
        return NAN
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return NAN
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(sorted_values: list, q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of an ascending list; NaN when empty."""
    if not sorted_values:
        return NAN
    rank = max(1, min(len(sorted_values), int(q * len(sorted_values) + 0.999999)))
    return sorted_values[rank - 1]


def wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|µs|ms|s|m)", text.strip())
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else NAN


def parse_wrk(out: str) -> dict[str, Any]:
    """req/s, request count, p50/p99 (seconds) and error note from ``wrk --latency`` output."""
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: \d+|Socket errors: .*", out)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "rps": float(rps.group(1)) if rps else NAN,
        "p50": wrk_seconds(p50.group(1)) if p50 else NAN,
        "p99": wrk_seconds(p99.group(1)) if p99 else NAN,
        "note": errors.group(0) if errors else "",
    }


def run_bench(profile: dict, pin: list[str], timeout_s: float, extra_args: list[str] = ()) -> tuple[dict | None, str]:
    """``bench run`` on a generated profile in a child process (bounded); returns (JSON report or None, error text)."""
    with tempfile.TemporaryDirectory(prefix="bench-benchmark-") as tmp:
        path, report_path = Path(tmp) / "profile.yaml", Path(tmp) / "report.json"
        path.write_text(yaml.safe_dump(profile))
        command = [*pin, sys.executable, "-m", "bench", "run", str(path), "--json", str(report_path), "--quiet", *extra_args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "COLUMNS": "120"})
        except subprocess.TimeoutExpired:
            return None, f"did not finish within {timeout_s:.0f} s (killed)"
        if not report_path.exists():
            return None, f"no report, exit {result.returncode}: {result.stderr.strip()[-400:]}"
        return json.loads(report_path.read_text()), ""


def fmt(value: float | None, spec: str) -> str:
    """Format a number, '-' for None or NaN."""
    if value is None or value != value:
        return "-"
    return format(value, spec)


def cpu_busy(interval_s: float = 0.5) -> float:
    """Fraction of all CPUs busy (anything, any process) over ``interval_s``, from /proc/stat; NaN without it."""

    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return idle, sum(fields[:8])

    try:
        idle0, total0 = read()
        time.sleep(interval_s)
        idle1, total1 = read()
    except (OSError, ValueError, IndexError):
        return NAN
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


class QuietGate:
    """Before each measurement, wait (bounded) until the machine is nearly idle, so other work disturbs less.

    A shared machine runs other jobs in bursts; starting a measurement in a
    quiet moment makes it likelier to stay quiet. Counts the measurements that
    had to start anyway (busy after ``max_wait_s``).
    """

    def __init__(self, busy_below: float = 0.15, max_wait_s: float = 20.0) -> None:
        self.busy_below = busy_below
        self.max_wait_s = max_wait_s
        self.started_busy = 0
        self.waited_s = 0.0

    def wait(self) -> None:
        t0 = time.monotonic()
        while True:
            busy = cpu_busy(0.5)
            if not busy >= self.busy_below:  # NaN (no /proc) also passes
                break
            if time.monotonic() - t0 >= self.max_wait_s:
                self.started_busy += 1
                break
        self.waited_s += time.monotonic() - t0

    def summary(self) -> str:
        return (f"quiet gate: waited {self.waited_s:.0f} s in total for the machine to be under {self.busy_below * 100:.0f} % busy; "
                f"{self.started_busy} measurement(s) started busy after {self.max_wait_s:.0f} s")
