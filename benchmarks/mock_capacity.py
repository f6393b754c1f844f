"""How many requests per second the bundled mock server answers (latency model "none").

Run: ``python benchmarks/mock_capacity.py [--seconds 5] [--connections 64]``.
It starts the mock in a child process, then measures it with ``wrk`` (if installed)
and with a built-in uvloop keep-alive client (one request in flight per connection,
no pipelining), pins the server to CPU 0 and the clients to CPU 1 with ``taskset``
when possible, prints a table and stops everything. The point is to know the
ceiling above which a load test on this machine measures the mock, not the tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))]


async def _client(port: int, connections: int, seconds: float) -> dict:
    """Closed-loop keep-alive client: each connection sends its next GET when the previous answer is complete."""
    import httptools

    loop = asyncio.get_running_loop()
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    latencies: list[float] = []
    deadline = loop.time() + seconds
    finished = loop.create_future()
    open_count = connections
    perf = time.perf_counter

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.sent = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.send()

        def send(self) -> None:
            self.sent = perf()
            self.transport.write(request)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            latencies.append(perf() - self.sent)
            if loop.time() < deadline:
                self.send()
            else:
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            nonlocal open_count
            open_count -= 1
            if open_count == 0 and not finished.done():
                finished.set_result(None)

    started = perf()
    await asyncio.gather(*(loop.create_connection(Client, "127.0.0.1", port) for _ in range(connections)))
    await asyncio.wait_for(finished, seconds + 10.0)
    elapsed = perf() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": _percentile(latencies, 0.50),
        "p99": _percentile(latencies, 0.99),
    }


def _run_client_here(port: int, connections: int, seconds: float) -> None:
    import uvloop

    print(json.dumps(uvloop.run(_client(port, connections, seconds))))


def _pinned(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def _builtin(port: int, args: argparse.Namespace, cpu: int | None) -> dict:
    command = [*_pinned(cpu), sys.executable, __file__, "--client-port", str(port)]
    command += ["--seconds", str(args.seconds), "--connections", str(args.connections)]
    output = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else float("nan")


def _wrk(port: int, args: argparse.Namespace, cpu: int | None) -> dict:
    command = [*_pinned(cpu), "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds:g}s", "--latency"]
    command.append(f"http://127.0.0.1:{port}/")
    output = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60, check=True).stdout
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", output)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50": _wrk_seconds(p50.group(1)) if p50 else float("nan"),
        "p99": _wrk_seconds(p99.group(1)) if p99 else float("nan"),
        "note": errors.group(0) if errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent keep-alive connections (default 64)")
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)  # internal: run only the client
    args = parser.parse_args()
    if args.client_port is not None:
        _run_client_here(args.client_port, args.connections, args.seconds)
        return 0

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = shutil.which("taskset") is not None and len(cpus) >= 2
    server_cpu, client_cpu = (cpus[0], cpus[1]) if pin else (None, None)
    print(f"mock server: latency none, body 64 B; {args.connections} connections, {args.seconds:g} s per client")
    if pin:
        print(f"pinning: server on CPU {server_cpu}, clients on CPU {client_cpu}")
    else:
        print("pinning: off (needs taskset and 2 CPUs)")

    rows = []
    with MockServerProcess(MockConfig()) as mock:
        if pin:
            subprocess.run(["taskset", "-pc", str(server_cpu), str(mock.pid)], check=True, capture_output=True)
        if shutil.which("wrk"):
            rows.append(("wrk", _wrk(mock.port, args, client_cpu)))
        else:
            print("wrk not found (apt-get install wrk); measuring with the built-in client only")
        rows.append(("built-in (uvloop, no pipelining)", _builtin(mock.port, args, client_cpu)))

    print()
    print(f"{'client':<34} {'req/s':>10} {'p50':>10} {'p99':>10}")
    for name, row in rows:
        print(f"{name:<34} {row['rps']:>10,.0f} {row['p50'] * 1e3:>8.3f}ms {row['p99'] * 1e3:>8.3f}ms")
        if row.get("note"):
            print(f"  {name}: {row['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
