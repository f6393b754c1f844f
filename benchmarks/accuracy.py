"""How far bench's latency is from the truth as the open-loop rate grows: a fixed 20 ms mock, 1 then 2 workers.

    python benchmarks/accuracy.py [--seconds 3] [--rates 100,300,1000,2000,4000,8000] [--workers 1,2]

Every response of the bundled mock takes exactly D = 20 ms (a whole number of
milliseconds, so the mock's millisecond timers add no rounding), so anything
reported above D is overhead: loopback, the client, and at high rates the
generator's own queueing. Columns:

* rate, workers: the offered constant arrival rate and worker processes;
* rps: the report's ``rps`` (completed / first send -> last completion);
* p50-D, p99-D: reported latency percentiles minus the true delay (ms);
  negative means a response came back before the delay had passed;
* lag p50/p99: schedule lag, how late requests left against their due time (ms);
* cpu %: each worker's CPU time (``worker_cpu_s``, counted from the common
  start) over the warm-up plus the measured duration;
* trusted: the generator self-check's verdict (``trust.trusted``), "-" when
  this version of bench has no self-check.

Each run is bounded: ``--seconds`` of measured time plus a 0.5 s warm-up
(which keeps connection set-up out of the numbers), and at most rate x
seconds measured requests. A generator that cannot keep up still sends its
whole schedule, late, so the slowest rows take longer than ``--seconds``.
On a 2-core machine the mock server shares the cores with the workers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
from pathlib import Path

import yaml

import bench

DELAY_MS = 20.0
WARMUP_S = 0.5


def run_once(rate: float, workers: int, seconds: float) -> dict:
    profile = {
        "name": f"accuracy-{rate:g}-{workers}w",
        "target": {"method": "GET", "timeout": "5s"},
        "mock": {"latency": {"model": "fixed", "delay": f"{DELAY_MS:g}ms"}, "body_bytes": 64},
        "load": {
            "rate": f"{rate:g}/s",
            "arrival": "constant",
            "duration": f"{seconds:g}s",
            "requests": int(rate * seconds),
            "warmup": f"{WARMUP_S:g}s",
            "workers": workers,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accuracy.yaml"
        path.write_text(yaml.safe_dump(profile))
        result = bench.run(bench.load_profile(path))
    s = result.summary
    # worker_cpu_s counts from the common start, so over the warm-up plus the measured duration.
    wall = WARMUP_S + (s["duration_s"] or float("nan"))
    cpu = [c / wall for _, c in sorted(s.get("worker_cpu_s", {}).items(), key=lambda kv: int(kv[0]))]
    if "trusted" in s:
        trusted = s["trusted"]
    elif isinstance(s.get("trust"), dict) and "trusted" in s["trust"]:
        trusted = s["trust"]["trusted"]
    else:
        trusted = None
    latency, lag = s["latency"], s["schedule_lag"]
    return {
        "rate": rate,
        "workers": workers,
        "status": result.status,
        "sent": s["requests"]["sent"],
        "errors": s["requests"]["http_errors"] + s["requests"]["client_errors"],
        "rps": s["rps"],
        "p50": None if latency["p50"] is None else latency["p50"] - DELAY_MS,
        "p99": None if latency["p99"] is None else latency["p99"] - DELAY_MS,
        "lag50": lag["p50"],
        "lag99": lag["p99"],
        "cpu": cpu,
        "trusted": trusted,
    }


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    parser.add_argument("--rates", default="100,300,1000,2000,4000,8000", help="comma-separated rates per second")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")
    rates = [float(r) for r in args.rates.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]

    print(f"bench {bench.__version__} accuracy benchmark, {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"CPU count {os.cpu_count()}, Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"mock: fixed delay D = {DELAY_MS:g} ms; constant arrivals; {args.seconds:g} s measured after a {WARMUP_S:g} s warm-up")
    print()
    header = (
        f"{'rate/s':>7} {'workers':>7} {'rps':>9} {'p50-D ms':>9} {'p99-D ms':>9} "
        f"{'lag p50':>8} {'lag p99':>8} {'cpu %':>11} {'trusted':>7}"
    )
    print(header)
    print("-" * len(header))
    for workers in worker_counts:
        for rate in rates:
            row = run_once(rate, workers, args.seconds)
            cpu = "/".join(f"{c * 100:.0f}" for c in row["cpu"]) or "-"
            trusted = "-" if row["trusted"] is None else ("yes" if row["trusted"] else "NO")
            note = ""
            if row["status"] != "completed" or row["errors"]:
                note = f"  ({row['status']}, {row['errors']} errors)"
            print(
                f"{rate:>7g} {workers:>7d} {_num(row['rps'], ',.1f'):>9} {_num(row['p50'], '.3f'):>9} "
                f"{_num(row['p99'], '.3f'):>9} {_num(row['lag50'], '.3f'):>8} {_num(row['lag99'], '.3f'):>8} "
                f"{cpu:>11} {trusted:>7}{note}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
