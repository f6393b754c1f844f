"""Worker scaling: bench with 1 and 2 workers, transports fast and aiohttp, against a mock with a fixed 5 ms delay.

    python benchmarks/scaling.py [--seconds 5] [--concurrency 400] [--delay-ms 5] [--repeat 2]

Closed loop with --concurrency connections in total (split over the workers)
against the bundled mock with a fixed delay (started here, given to ``bench
run`` with ``--url``): at 400 connections and 5 ms the latency bound is
80,000 req/s, above what the workers can send on this machine, so the
workers, not the delay, set the pace; the mock's CPU per request is the
same as without a delay, and the table shows how much of the machine it
took. Columns:

* req/s: the report's ``rps``; per worker: that over the workers (each worker
  gets an equal share of the connections); 2w / 1w: req/s over the 1-worker
  run of the same transport;
* worker CPU % per worker (``generator.worker_cpu``) and µs of worker CPU per
  request (``worker_cpu_s`` over the requests sent, warm-up included);
* parent CPU %: ``generator.parent_cpu``, the parent's CPU time over the run
  (merging the workers' reports, the aggregator): it shows the parent keeps
  up with the workers and costs little next to them;
* mock CPU %: the mock process's CPU time over the whole ``bench run``;
* p50 and p99 latency (service time in a closed loop), ms.

Nothing is pinned here: pinning would put both workers on one core (nothing
to scale) or a worker on the mock's core. On a 2-core machine the mock and
the parent share the two cores with the workers, so 2 workers cannot reach
2x: what should stay flat is the CPU per request and the per-worker rate
relative to the CPU each worker got. Each configuration is measured
--repeat times in interleaved rounds and the best req/s is kept. Every run is
bounded (--seconds plus a 1 s warm-up, killed after a margin) and the mock
is stopped by PID before exit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from _common import NAN, QuietGate, fmt, machine_line, process_cpu, run_bench  # noqa: E402

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

WARMUP_S = 1.0
MARGIN_S = 60.0


def measure(url: str, transport: str, workers: int, args: argparse.Namespace, mock_pid: int) -> dict:
    profile = {
        "name": f"scaling-{transport}-{workers}w",
        "target": {"url": url, "method": "GET", "timeout": "10s"},
        "load": {"concurrency": args.concurrency, "duration": f"{args.seconds:g}s", "warmup": f"{WARMUP_S:g}s", "workers": workers},
        "client": {"transport": transport},
    }
    cpu0, t0 = process_cpu(mock_pid), time.monotonic()
    report, error = run_bench(profile, [], args.seconds + WARMUP_S + MARGIN_S)
    mock_cpu = (process_cpu(mock_pid) - cpu0) / (time.monotonic() - t0) * 100
    if report is None:
        return {"error": error}
    sent = report["requests"]["sent"] + report["warmup"]["sent"]
    generator = report["generator"]
    return {
        "rps": report["rps"] or NAN,
        "worker_cpu": [generator["worker_cpu"][k] * 100 for k in sorted(generator["worker_cpu"], key=int)],
        "cpu_us": sum(report["worker_cpu_s"].values()) / sent * 1e6 if sent else NAN,
        "parent_cpu": (generator.get("parent_cpu") or NAN) * 100,
        "mock_cpu": mock_cpu,
        "p50": report["latency"]["p50"],
        "p99": report["latency"]["p99"],
        "errors": report["requests"]["http_errors"] + report["requests"]["client_errors"],
        "trusted": report.get("trusted"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run, after a 1 s warm-up (default 5)")
    parser.add_argument("--concurrency", type=int, default=400, help="connections in total (default 400)")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="the mock's fixed delay (default 5)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; best req/s kept (default 2)")
    parser.add_argument("--transports", default="fast,aiohttp", help="comma-separated (default fast,aiohttp)")
    args = parser.parse_args()
    if not (0 < args.seconds <= 60 and 1 <= args.repeat <= 10 and 1 <= args.concurrency <= 5000):
        parser.error("--seconds must be in (0, 60], --repeat in [1, 10], --concurrency in [1, 5000]")
    transports = args.transports.split(",")
    bound = args.concurrency / (args.delay_ms / 1000)
    print(machine_line())
    print(f"mock: fixed delay {args.delay_ms:g} ms, 64-byte body; closed loop, {args.concurrency} connections in total "
          f"(latency bound {bound:,.0f} req/s); {WARMUP_S:g} s warm-up + {args.seconds:g} s per run; best of {args.repeat}; not pinned")

    best: dict[tuple[str, int], dict] = {}
    gate = QuietGate()
    mock = MockServerProcess(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": f"{args.delay_ms:g}ms"}, "body_bytes": 64}))
    try:
        mock.start()
        url = mock.url + "/"
        for round_ in range(args.repeat):
            for transport in transports:
                for workers in (1, 2):
                    gate.wait()
                    print(f"round {round_ + 1}/{args.repeat}: {transport}, {workers} worker(s) ...", flush=True)
                    row = measure(url, transport, workers, args, mock.pid)  # type: ignore[arg-type]
                    if row.get("error"):
                        print(f"  {row['error']}")
                        continue
                    key = (transport, workers)
                    if key not in best or row["rps"] > best[key]["rps"]:
                        best[key] = row
    finally:
        mock.stop()

    print(gate.summary())
    print()
    print("| transport | workers | req/s | req/s per worker | 2w / 1w | worker CPU % | worker CPU µs/req | parent CPU % | mock CPU % | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for transport in transports:
        one = best.get((transport, 1), {}).get("rps", NAN)
        for workers in (1, 2):
            r = best.get((transport, workers))
            if r is None:
                print(f"| {transport} | {workers} | failed | | | | | | | | |")
                continue
            note = "" if r["trusted"] else " (not trusted)"
            print(
                f"| {transport} | {workers} | {r['rps']:,.0f} | {r['rps'] / workers:,.0f} | {fmt(r['rps'] / one, '.2f')}x "
                f"| {'/'.join(f'{c:.0f}' for c in r['worker_cpu'])} | {r['cpu_us']:.1f} | {r['parent_cpu']:.1f} | {r['mock_cpu']:.0f} "
                f"| {fmt(r['p50'], '.2f')} | {fmt(r['p99'], '.2f')}{note} |"
            )
            if r["errors"]:
                print(f"  {transport}, {workers} workers: {r['errors']} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
