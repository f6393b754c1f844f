"""The two throughput targets, each measured in interleaved pairs: bench fast vs wrk, bench aiohttp vs a bare aiohttp loop.

    python benchmarks/ratios.py [--pairs 8] [--seconds 3] [--connections 64] [--only fast|aiohttp]

The targets: bench with the ``fast`` transport reaches at least 0.8x wrk's
requests per second, and with the ``aiohttp`` transport at least 0.9x a bare
aiohttp loop's, against the same server in the same run. On a shared machine
best-of-N runs of each client (``peers.py``) move by more than those margins,
so each comparison is measured in pairs, back to back, alternating which
client goes first; a pair's ratio is bench / peer, and the verdict is the
median over the pairs: slow drift of the machine cancels within a pair, and
the median ignores a disturbed pair.

The clients are the ones ``peers.py`` runs: the bundled mock (latency none,
64-byte body) pinned to the first CPU, every client pinned to the second,
closed loop over --connections keep-alive connections; ``bench run`` with a
generated profile (one worker, 0.5 s warm-up), wrk with one thread (skipped,
with the install hint, when not on PATH), the bare aiohttp loop in its own
process. Each pair also gives the ratio of client CPU per request (peer /
bench: above 1 means bench is cheaper). Every run is bounded, and the mock is
stopped before exit.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import peers  # noqa: E402
from _common import QuietGate, cpu_plan, machine_line, pin_pid, pin_prefix  # noqa: E402

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

#: name -> (bench transport, peer's name, target ratio)
COMPARISONS = {
    "fast": ("fast", "wrk", 0.8),
    "aiohttp": ("aiohttp", "bare aiohttp loop", 0.9),
}


def measure_pairs(
    label: str, bench: Callable[[], dict], peer: Callable[[], dict], pairs: int, gate: QuietGate
) -> list[tuple[dict, dict]]:
    """``pairs`` back-to-back (bench, peer) runs, alternating which goes first."""
    results: list[tuple[dict, dict]] = []
    for index in range(pairs):
        order = ("bench", "peer") if index % 2 == 0 else ("peer", "bench")
        rows: dict[str, dict] = {}
        for which in order:
            gate.wait()
            rows[which] = bench() if which == "bench" else peer()
            time.sleep(0.2)
        b, p = rows["bench"], rows["peer"]
        print(
            f"{label} pair {index + 1}/{pairs} ({order[0]} first): bench {b['rps']:,.0f} req/s {b['cpu_us']:.1f} µs/req, "
            f"{p['tool']} {p['rps']:,.0f} req/s {p['cpu_us']:.1f} µs/req, ratio {b['rps'] / p['rps']:.3f}",
            flush=True,
        )
        results.append((b, p))
    return results


def table_row(label: str, pairs: list[tuple[dict, dict]], target: float) -> str:
    rps = sorted(b["rps"] / p["rps"] for b, p in pairs if b["rps"] == b["rps"] and p["rps"] == p["rps"])
    cpu = sorted(p["cpu_us"] / b["cpu_us"] for b, p in pairs if b["cpu_us"] == b["cpu_us"] and p["cpu_us"] == p["cpu_us"])
    if not rps:
        return f"| {label} | - | - | - | - | 0 | {target} | no pair measured |"
    median = statistics.median(rps)
    cpu_median = f"{statistics.median(cpu):.3f}" if cpu else "-"
    bench_rps = statistics.median(b["rps"] for b, _ in pairs)
    peer_rps = statistics.median(p["rps"] for _, p in pairs)
    verdict = "met" if median >= target else "NOT met"
    return (
        f"| {label} | {median:.3f} | {rps[0]:.3f} | {rps[-1]:.3f} | {cpu_median} | {len(rps)} "
        f"| {bench_rps:,.0f} / {peer_rps:,.0f} | {target} | {verdict} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8, help="interleaved pairs of runs per comparison (default 8)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    parser.add_argument("--only", choices=sorted(COMPARISONS), help="run one comparison only")
    args = parser.parse_args()
    print(machine_line())
    server_cpu, client_cpu = cpu_plan()
    pin = pin_prefix(client_cpu)
    print(f"mock latency none, 64-byte body; {args.pairs} pairs of {args.seconds:g} s runs per comparison, {args.connections} connections, closed loop")
    print(f"pinning: server on CPU {server_cpu}, clients on CPU {client_cpu}" if pin else "pinning: none (taskset missing or one CPU)")
    wanted = [args.only] if args.only else list(COMPARISONS)
    if "fast" in wanted and shutil.which("wrk") is None:
        print("fast vs wrk: skipped: wrk not on PATH (apt-get install wrk)")
        wanted.remove("fast")
    mock = MockServerProcess(MockConfig.from_mapping(peers.MOCK)).start()
    pin_pid(mock.pid, {server_cpu} if server_cpu is not None else None)
    url = mock.url + "/"
    gate = QuietGate()
    measured: dict[str, list[tuple[dict, dict]]] = {}
    peer_of = {"wrk": lambda: peers.measure_wrk(url, args, pin), "bare aiohttp loop": lambda: peers.measure_bare_aiohttp(url, args, pin)}
    try:
        for name in wanted:
            transport, peer, _ = COMPARISONS[name]
            measured[name] = measure_pairs(
                f"{transport} vs {peer}", lambda t=transport: peers.measure_bench(url, t, args, pin), peer_of[peer], args.pairs, gate
            )
    finally:
        mock.stop()
    print(gate.summary())
    print()
    print("| comparison | median req/s ratio | min | max | CPU/request, peer / bench (median) | pairs | median req/s, bench / peer | target | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, pairs in measured.items():
        transport, peer, target = COMPARISONS[name]
        print(table_row(f"bench {transport} / {peer}", pairs, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
