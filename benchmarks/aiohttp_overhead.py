"""bench's own overhead with the aiohttp transport: `bench run` against a bare aiohttp loop, in interleaved pairs.

    python benchmarks/aiohttp_overhead.py [--pairs 8] [--seconds 3] [--connections 64]

The issue's target is that bench with the ``aiohttp`` transport reaches at
least 0.9x the requests per second of a bare aiohttp loop doing the same
requests. On a shared machine best-of-N runs of each (``peers.py``) move by
more than that 10 %, so this script measures them in pairs, back to back,
alternating which goes first (bench then bare, bare then bench, ...), and
reports each pair's ratio and the median over the pairs: slow drift of the
machine cancels within a pair, and the median ignores a disturbed pair.

Both clients are the ones ``peers.py`` runs (the same mock, latency none,
64-byte body, pinned to the first CPU; clients pinned to the second; closed
loop over --connections keep-alive connections): ``bench run`` with a
generated profile (one worker, 0.5 s warm-up) and the bare loop in its own
process. Ratios: req/s (bench / bare) and client CPU per request (bare /
bench, so above 1 means bench is cheaper). Each run is bounded, and the mock
is stopped before exit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import peers  # noqa: E402
from _common import QuietGate, cpu_plan, machine_line, pin_pid, pin_prefix  # noqa: E402

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

TARGET = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8, help="interleaved pairs of runs (default 8)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    args = parser.parse_args()
    print(machine_line())
    server_cpu, client_cpu = cpu_plan()
    pin = pin_prefix(client_cpu)
    print(f"mock latency none, 64-byte body; {args.pairs} pairs of {args.seconds:g} s runs, {args.connections} connections, closed loop")
    print(f"pinning: server on CPU {server_cpu}, clients on CPU {client_cpu}" if pin else "pinning: none (taskset missing or one CPU)")
    mock = MockServerProcess(MockConfig.from_mapping(peers.MOCK)).start()
    pin_pid(mock.pid, {server_cpu} if server_cpu is not None else None)
    url = mock.url + "/"
    gate = QuietGate()
    pairs: list[tuple[dict, dict]] = []
    try:
        for index in range(args.pairs):
            order = ("bench", "bare") if index % 2 == 0 else ("bare", "bench")
            results: dict[str, dict] = {}
            for which in order:
                gate.wait()
                if which == "bench":
                    results[which] = peers.measure_bench(url, "aiohttp", args, pin)
                else:
                    results[which] = peers.measure_bare_aiohttp(url, args, pin)
                time.sleep(0.2)
            bench_row, bare_row = results["bench"], results["bare"]
            print(
                f"pair {index + 1}/{args.pairs} ({order[0]} first): bench {bench_row['rps']:,.0f} req/s {bench_row['cpu_us']:.1f} µs/req, "
                f"bare {bare_row['rps']:,.0f} req/s {bare_row['cpu_us']:.1f} µs/req, ratio {bench_row['rps'] / bare_row['rps']:.3f}",
                flush=True,
            )
            pairs.append((bench_row, bare_row))
    finally:
        mock.stop()
    print(gate.summary())
    rps_ratios = sorted(b["rps"] / r["rps"] for b, r in pairs if b["rps"] == b["rps"] and r["rps"] == r["rps"])
    cpu_ratios = sorted(r["cpu_us"] / b["cpu_us"] for b, r in pairs if b["cpu_us"] == b["cpu_us"] and r["cpu_us"] == r["cpu_us"])
    if not rps_ratios:
        print("no pair measured")
        return 1
    print()
    print("| measure | median | min | max | pairs |")
    print("|---|---:|---:|---:|---:|")
    print(f"| req/s, bench aiohttp / bare aiohttp loop | {statistics.median(rps_ratios):.3f} | {rps_ratios[0]:.3f} | {rps_ratios[-1]:.3f} | {len(rps_ratios)} |")
    if cpu_ratios:
        print(f"| CPU per request, bare / bench | {statistics.median(cpu_ratios):.3f} | {cpu_ratios[0]:.3f} | {cpu_ratios[-1]:.3f} | {len(cpu_ratios)} |")
    verdict = "met" if statistics.median(rps_ratios) >= TARGET else "NOT met"
    print(f"\ntarget: bench aiohttp >= {TARGET}x a bare aiohttp loop (median of pairs, req/s) -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
