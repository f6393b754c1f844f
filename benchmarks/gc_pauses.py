"""The cycle collector's pauses inside a worker, with the worker's gc.freeze() (as shipped) and without it.

    python benchmarks/gc_pauses.py [--rate 3000] [--seconds 5] [--transport aiohttp] [--repeat 2]

A worker starts with a large heap: the modules it needs and, forked from the
CLI, everything the parent had loaded. Python's full (generation 2)
collection walks all of it; during a run that is a stall of the event loop,
and every open-loop request due meanwhile leaves late. The worker freezes
what exists when it is ready (``gc.freeze()``), so full collections only
walk what the run itself allocated.

Each run is one ``Worker`` in a fresh child process of this script (which
imports ``bench.cli.app`` first, so that the heap is the one a worker forked
from the CLI inherits), open loop at --rate against
the bundled mock (fixed 20 ms), pinned to the second CPU and the mock to the
first when possible, and times every collection through ``gc.callbacks``:
count, longest and total pause per generation, and the schedule lag p99 the
run reported. "without freeze" replaces the worker's ``gc.freeze`` with a
no-op for that run. Each run is bounded by --seconds, and the mock is stopped
before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import uvloop  # noqa: E402
from _common import cpu_plan, machine_line, pin_pid  # noqa: E402

import bench.cli.app  # noqa: E402,F401 - the heap a worker forked from the CLI inherits
from bench.engine.workers import worker as worker_module  # noqa: E402
from bench.engine.results.aggregate import Aggregator  # noqa: E402
from bench.engine.plan.profile import parse_profile  # noqa: E402
from bench.mock import MockConfig, MockServerProcess  # noqa: E402


class Pauses:
    """Every collection's duration, by generation, while installed in gc.callbacks."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append((time.perf_counter() - self._started) * 1e3)


def run_worker(url: str, args: argparse.Namespace, freeze: bool) -> dict:
    """One run, in this process (the child): its pauses, the run's schedule lag p99, the objects frozen."""
    profile = parse_profile(
        {
            "target": {"url": url, "timeout": "10s"},
            "load": {"rate": f"{args.rate}/s", "duration": f"{args.seconds:g}s", "workers": 1},
            "client": {"transport": args.transport, "pool_size": 100},
        }
    )
    reports: list = []
    pauses = Pauses()
    if not freeze:
        worker_module.gc.freeze = lambda: None  # type: ignore[assignment]

    async def main() -> None:
        worker = worker_module.Worker(worker_module.WorkerSpec(0, 1, profile, url, 0.25, None), reports.append)
        task = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.05)  # it has built its pool and frozen (or not) its heap
        gc.callbacks.append(pauses)
        worker.begin(time.monotonic_ns() + 10_000_000)
        await task

    uvloop.run(main())
    gc.callbacks.remove(pauses)
    aggregator = Aggregator(1, 0.25, open_loop=True)
    for message in reports:  # ("ready",), then ("interval", IntervalReport) ...
        if message[0] == "interval":
            aggregator.add(message[1])
    aggregator.close()
    return {"pauses": pauses.by_generation, "lag_p99": aggregator.summary()["schedule_lag"]["p99"], "frozen": gc.get_freeze_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=3000, help="open-loop arrivals per second (default 3000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run (default 5)")
    parser.add_argument("--transport", default="aiohttp", choices=("aiohttp", "fast"), help="client transport (default aiohttp)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind, alternating (default 2)")
    parser.add_argument("--child", nargs=2, metavar=("URL", "FREEZE"), help=argparse.SUPPRESS)  # internal: one run
    args = parser.parse_args()
    server_cpu, client_cpu = cpu_plan()
    if args.child:
        pin_pid(0, {client_cpu} if client_cpu is not None else None)
        print(json.dumps(run_worker(args.child[0], args, args.child[1] == "1")))
        return 0
    print(machine_line())
    mock = MockServerProcess(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": "20ms"}})).start()
    pin_pid(mock.pid, {server_cpu} if server_cpu is not None else None)
    print(f"one worker per run (a fresh process), {args.transport}, open loop {args.rate}/s for {args.seconds:g} s against the mock (fixed 20 ms)")
    rows = []
    try:
        for attempt in range(args.repeat):
            for freeze in (True, False) if attempt % 2 == 0 else (False, True):
                command = [sys.executable, __file__, "--child", mock.url + "/", "1" if freeze else "0"]
                command += ["--rate", str(args.rate), "--seconds", str(args.seconds), "--transport", args.transport]
                result = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60)
                try:
                    rows.append((freeze, json.loads(result.stdout.strip().splitlines()[-1])))
                except (IndexError, ValueError):
                    print(f"run failed: {result.stderr.strip()[-400:]}")
                    continue
                print(f"run {len(rows)}: {'with' if freeze else 'without'} freeze done", flush=True)
    finally:
        mock.stop()
    print()
    print("| gc.freeze | objects frozen | gen 0: count, longest ms | gen 1: count, longest ms | gen 2: count, longest ms | pauses in all, ms | schedule lag p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for freeze, run in rows:
        cells = []
        for generation in ("0", "1", "2"):
            values = run["pauses"][generation]
            cells.append(f"{len(values)}, {max(values):.2f}" if values else "0, -")
        total = sum(sum(v) for v in run["pauses"].values())
        lag = f"{run['lag_p99']:.2f}" if run["lag_p99"] is not None else "-"
        print(f"| {'with' if freeze else 'without'} | {run['frozen']:,} | {' | '.join(cells)} | {total:.1f} | {lag} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
