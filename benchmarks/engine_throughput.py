"""Print bench's own throughput against the bundled mock server, with 1 and 2 workers, side by side.

    python benchmarks/engine_throughput.py [--seconds 5] [--concurrency 64]

Closed loop, the mock answering at once (latency model `none`), so the
figure of merit is how many requests per second the generator pushes and
how much worker CPU each request costs. On a 2-core machine the mock server
shares the cores with the workers, so the 2-worker figure is bounded by the
machine, not by bench alone: the mock's own capacity is measured by
benchmarks/mock_capacity.py. Every run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

import bench


def run_once(workers: int, concurrency: int, seconds: float) -> dict:
    profile_text = {
        "name": f"throughput-{workers}w",
        "target": {"method": "GET", "timeout": "10s"},
        "mock": {"latency": {"model": "none"}, "body_bytes": 64},
        "load": {"concurrency": concurrency, "duration": f"{seconds}s", "warmup": "1s", "workers": workers},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "throughput.yaml"
        path.write_text(yaml.safe_dump(profile_text))
        result = bench.run(bench.load_profile(path))
    summary = result.summary
    cpu_s = sum(summary["worker_cpu_s"].values())
    total_requests = summary["requests"]["sent"] + summary["warmup"]["sent"]
    return {
        "workers": workers,
        "rps": summary["rps"] or 0.0,
        "p50": summary["latency"]["p50"],
        "p99": summary["latency"]["p99"],
        "errors": summary["requests"]["http_errors"] + summary["requests"]["client_errors"],
        "cpu_us_per_request": cpu_s / total_requests * 1e6 if total_requests else float("nan"),
    }


def bare_aiohttp(concurrency: int, seconds: float) -> dict:
    """The reference: a bare aiohttp loop in one process (no schedule, no histograms, no pipes)."""
    import asyncio
    import time

    import aiohttp
    import uvloop

    from bench.mock import MockConfig, MockServerProcess

    async def client(url: str) -> tuple[int, float]:
        done = 0
        deadline = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def user() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    async with session.get(url) as response:
                        await response.read()
                    done += 1

            start = time.monotonic()
            await asyncio.gather(*(user() for _ in range(concurrency)))
            return done, time.monotonic() - start

    with MockServerProcess(MockConfig.from_mapping({"latency": {"model": "none"}})) as mock:
        cpu0 = time.process_time()
        done, elapsed = uvloop.run(client(mock.url + "/"))
        cpu = time.process_time() - cpu0
    return {"workers": "bare", "rps": done / elapsed, "p50": float("nan"), "p99": float("nan"), "errors": 0,
            "cpu_us_per_request": cpu / done * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"bench {bench.__version__}, {os.cpu_count()} CPUs, closed loop, concurrency {args.concurrency}, {args.seconds:g} s per run")
    bare = bare_aiohttp(args.concurrency, args.seconds)
    rows = [run_once(w, args.concurrency, args.seconds) for w in (1, 2)]
    print(f"{'workers':>7} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'worker CPU us/req':>18}")
    for r in rows:
        print(f"{r['workers']:>7} {r['rps']:>10,.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['errors']:>7} {r['cpu_us_per_request']:>18.1f}")
    r = bare
    print(f"{'bare aiohttp loop, 1 process':>7} {r['rps']:>10,.0f} {'':>8} {'':>8} {'':>7} {r['cpu_us_per_request']:>18.1f}")
    print(f"2 workers / 1 worker: {rows[1]['rps'] / rows[0]['rps']:.2f}x; 1 worker / bare aiohttp: {rows[0]['rps'] / bare['rps']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
