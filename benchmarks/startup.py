"""Start-up time: from starting ``bench run`` (2 workers) to the first request the target receives.

    python benchmarks/startup.py [--repeat 5]

A tiny asyncio HTTP/1.1 server runs in this script (a thread with its own
event loop, pinned to the first CPU when possible) on 127.0.0.1 and records
``time.monotonic()`` of the first request it receives. Each repetition
starts ``bench run PROFILE --url http://127.0.0.1:PORT/ --json REPORT``
(``--quiet``; a generated profile: 2 workers, closed loop, concurrency 2,
20 requests) as a subprocess; start-up is the first request's time minus
the time just before the subprocess was started. So it includes the Python
interpreter, bench's imports, loading the profile, forking the workers,
their transport set-up and the start barrier, everything a user waits for.
Measured for the default ``aiohttp`` transport and for ``fast``, bench
free to use every CPU, and once more pinned to one CPU with taskset.

With the bundled mock (no ``--url``) the first request goes to a server
bench starts itself, which this script cannot observe. The JSON report's
``load_started_at`` is the wall-clock time of the workers' common start,
when their first requests leave; the ``--url`` rows measure how long after
it the first request reaches a server (its connect, a millisecond or two),
and the bundled-mock rows are (``load_started_at`` - wall time at
subprocess start) plus the median of that from the ``--url`` rows of the
same transport. The table shows both parts.

Bytecode: the script first compiles bench's modules (``compileall``), as a
normal install does, so the figures do not depend on whether an edited
checkout or ``PYTHONDONTWRITEBYTECODE`` left them uncompiled (compiling
bench's modules costs ~0.1 s on every start otherwise).

Reference rows: ``python -c pass`` and ``python -c "import bench.cli.app"``
(interpreter and import time). Every bench run is bounded (30 s, then killed)
and the server thread is stopped before exit. The issue's target: under
0.5 s to the first request with 2 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import datetime as dt
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from _common import QuietGate, cpu_plan, fmt, machine_line, pin_prefix  # noqa: E402

TIMEOUT_S = 30.0
TARGET_S = 0.5
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n{\"ok\":true}"


class FirstRequestServer:
    """An asyncio server in a thread; answers every request with a fixed JSON body, notes the first one's time."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.first_wall: float | None = None
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="first-request-server", daemon=True)

    def _run(self) -> None:
        server_self = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                self.transport = transport
                self.buffer = b""

            def data_received(self, data: bytes) -> None:
                if server_self.first is None:
                    server_self.first, server_self.first_wall = time.monotonic(), time.time()
                self.buffer += data
                while b"\r\n\r\n" in self.buffer:  # GET requests without a body
                    _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                    self.transport.write(RESPONSE)

        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(self.loop.create_server(Protocol, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

    def start(self) -> "FirstRequestServer":
        self.thread.start()
        self.ready.wait(10)
        return self

    def reset(self) -> None:
        self.first = self.first_wall = None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def bench_once(profile: dict, pin: list[str], url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        path, report_path = Path(tmp) / "startup.yaml", Path(tmp) / "report.json"
        path.write_text(yaml.safe_dump(profile))
        command = [*pin, sys.executable, "-m", "bench", "run", str(path), "--json", str(report_path), "--quiet"]
        if url:
            command += ["--url", url]
        t0, t0_wall = time.monotonic(), time.time()
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        t_end = time.monotonic()
        if not report_path.exists():
            raise RuntimeError(f"bench run failed (exit {result.returncode}): {result.stderr[-400:]}")
        report = json.loads(report_path.read_text())
    load_wall = dt.datetime.fromisoformat(report["load_started_at"]).timestamp()
    return {"t0": t0, "t0_wall": t0_wall, "total": t_end - t0, "to_load_start": load_wall - t0_wall, "status": report["status"]}


def timed(command: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=True)
    return time.monotonic() - t0


def stats(values: list[float]) -> tuple[float, float, float]:
    return (min(values), statistics.median(values), max(values)) if values else (float("nan"),) * 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per row (default 5)")
    args = parser.parse_args()
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be in [1, 50]")
    server_cpu, client_cpu = cpu_plan()
    print(machine_line())
    package = Path(importlib.util.find_spec("bench").origin).resolve().parent  # type: ignore[arg-type, union-attr]
    compiled = compileall.compile_dir(str(package), quiet=1)
    print(f"bytecode: compiled {package.name}/ ({'ok' if compiled else 'with errors'})"
          f"{'; PYTHONDONTWRITEBYTECODE is set' if sys.flags.dont_write_bytecode else ''}")
    print(f"bench run: 2 workers, closed loop, concurrency 2, 20 requests; {args.repeat} repetitions per row; "
          f"in-script server on CPU {server_cpu if server_cpu is not None else 'any'}")

    everything = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})  # this thread only (Linux affinity is per thread); the server thread inherits it
    server = FirstRequestServer().start()
    if server_cpu is not None:
        os.sched_setaffinity(0, everything)  # back to every CPU for this thread, so bench may use them all
    rows: list[tuple[str, list[float], list[float], list[float]]] = []  # (name, total to first request, to load start, load start -> first)
    gap_by_transport: dict[str, list[float]] = {}
    gate = QuietGate(max_wait_s=5.0)
    url = f"http://127.0.0.1:{server.port}/"
    try:
        rows.append(("python -c pass", [timed([sys.executable, "-c", "pass"]) for _ in range(args.repeat)], [], []))
        rows.append(("python -c 'import bench.cli.app'", [timed([sys.executable, "-c", "import bench.cli.app"]) for _ in range(args.repeat)], [], []))
        configs = [
            ("--url, aiohttp, all CPUs", "aiohttp", [], True),
            ("--url, fast, all CPUs", "fast", [], True),
            (f"--url, aiohttp, pinned to CPU {client_cpu}", "aiohttp", pin_prefix(client_cpu), True),
            ("bundled mock, aiohttp, all CPUs", "aiohttp", [], False),
            ("bundled mock, fast, all CPUs", "fast", [], False),
        ]
        for name, transport, pin, with_url in configs:
            if pin == [] and "pinned" in name:
                continue  # no taskset / one CPU
            print(f"{name} ...", flush=True)
            profile = {
                "name": "startup",
                "target": {"method": "GET", "timeout": "5s"},
                "load": {"concurrency": 2, "requests": 20, "workers": 2},
                "client": {"transport": transport},
            }
            if not with_url:
                profile["mock"] = {"latency": {"model": "none"}}
            totals, to_started, gaps = [], [], []
            for _ in range(args.repeat):
                gate.wait()
                server.reset()
                run = bench_once(profile, pin, url if with_url else None)
                to_started.append(run["to_load_start"])
                if with_url:
                    if server.first is None:
                        raise RuntimeError("the server saw no request")
                    totals.append(server.first - run["t0"])
                    gaps.append(server.first_wall - run["t0_wall"] - run["to_load_start"])
                time.sleep(0.2)
            if with_url and not pin:
                gap_by_transport.setdefault(transport, gaps)
            if not with_url:
                gaps = list(gap_by_transport.get(transport, []))
                median_gap = statistics.median(gaps) if gaps else float("nan")
                totals = [t + median_gap for t in to_started]
            rows.append((name, totals, to_started, gaps))
    finally:
        server.stop()

    print(gate.summary())
    print()
    print("| what | to first request, min s | median | max | start -> `load_started_at` (median) | `load_started_at` -> first request (median) | under 0.5 s? |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, totals, to_started, gaps in rows:
        lo, mid, hi = stats(totals)
        is_bench = name.startswith(("--url", "bundled"))
        verdict = ("yes" if mid < TARGET_S else "no") if is_bench else ""
        print(f"| {name} | {fmt(lo, '.3f')} | {fmt(mid, '.3f')} | {fmt(hi, '.3f')} "
              f"| {fmt(statistics.median(to_started), '.3f') if to_started else ''} "
              f"| {fmt(statistics.median(gaps), '.3f') if gaps else ''} | {verdict} |")
    print()
    print("`load_started_at` is the report's wall-clock time of the workers' common start (their first requests leave "
          "then). Bundled-mock rows: measured start -> `load_started_at` plus the median `load_started_at` -> first "
          "request of the --url rows with the same transport (the connect).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
