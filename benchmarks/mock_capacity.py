"""How many requests per second the bundled mock server answers, next to a reference uvloop + httptools server.

Run: ``python benchmarks/mock_capacity.py [--seconds 5] [--connections 64] [--repeat 1]``,
or ``python benchmarks/mock_capacity.py --pairs 12 [--seconds 3]`` for the target alone.

Each server runs in its own child process (this script with ``--serve KIND``),
pinned to CPU 0 with ``taskset`` when possible, and is measured with ``wrk``
(if installed; ``apt-get install wrk``) and with a built-in uvloop keep-alive
client (one request in flight per connection, no pipelining), both pinned to
CPU 1. The servers, one after another in the same run:

* mock: the bundled mock, latency model "none", 64-byte JSON body;
* reference: a minimal uvloop + httptools ``asyncio.Protocol`` server (parse
  the request, write prebuilt bytes: no behaviour, no ordering, no HTTP/2
  sniffing) answering the same bytes as the mock (same headers, same 64-byte
  body); the "mock / reference" column is the ratio for the same client;
* mock, fixed 1 ms: the latency model switched on; with C connections and
  one request in flight each, throughput is bounded by C / 1 ms (64 k/s at
  64 connections), and the ratio column is req/s over that bound;
* mock, processes=2: ``run_server(processes=2)``, two processes sharing the
  port through SO_REUSEPORT, not pinned: on a 2-core machine they share the
  cores with the client, so this row shows that the mode works, not how far it
  scales; its ratio is against the single-process mock.

With ``--pairs N`` it measures only the issue's target, the mock against the
reference, in N interleaved pairs: both servers run (pinned to CPU 0, the
idle one costs nothing), each pair measures one then the other with the same
client (wrk, else the built-in one), alternating which goes first, and the
verdict is the median of the pairs' ratios (target: at least 1.0). Single
best-of-N cells move by up to 30 % between runs on a noisy machine; within
a pair slow drift cancels, as in ``ratios.py``.

The server CPU column is the server process(es)' CPU time over the
measurement (near 100 % per process: the server set the pace). The point is
to know the ceiling above which a load test on this machine measures the
mock, not the tool, and how close the mock is to the fastest Python server
of the same design. Every measurement is bounded and every server is
stopped by PID (SIGTERM, then SIGKILL) before exit.
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


# --------------------------------------------------------------------------- servers

_MOCK_BYTES = (
    b"HTTP/1.1 200 OK\r\nServer: bench-mock\r\nContent-Type: application/json\r\nContent-Length: 64\r\n"
    b"Connection: keep-alive\r\n\r\n" + b'{"status":200,"pad":"' + b"x" * 41 + b'"}'
)


def _serve_reference() -> None:
    """The reference server: uvloop + httptools, prebuilt response, nothing else. Serves until SIGTERM."""
    import signal

    import httptools
    import uvloop

    response = _MOCK_BYTES

    class Server(asyncio.Protocol):
        __slots__ = ("parser", "transport")

        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)

        def connection_made(self, transport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_message_complete(self) -> None:
            self.transport.write(response)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(Server, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await stop.wait()
        server.close()

    uvloop.run(main())


def _serve(kind: str) -> None:
    """Run one server in this process and print its port; SIGTERM stops it (and any forked server processes)."""
    if kind == "reference":
        _serve_reference()
        return
    from bench.mock import MockConfig, run_server

    settings = {"latency": {"model": "none"}, "body_bytes": 64}
    processes = 1
    if kind == "mock-1ms":
        settings["latency"] = {"model": "fixed", "delay": "1ms"}
    elif kind == "mock-2p":
        processes = 2
    run_server(MockConfig.from_mapping(settings), port=0, processes=processes, on_ready=lambda port: print(port, flush=True))


class ServerProcess:
    """This script with ``--serve KIND`` as a child process; stopped by PID."""

    def __init__(self, kind: str, cpu: int | None) -> None:
        self.kind = kind
        self.cpu = cpu
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> "ServerProcess":
        command = [*_pinned(self.cpu), sys.executable, __file__, "--serve", self.kind]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError(f"server {self.kind} did not start")
        self.port = int(line)
        return self

    def pids(self) -> list[int]:
        """The server process and its children (the forked processes of processes=2)."""
        if self.proc is None:
            return []
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
        return pids

    def __exit__(self, *exc) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def _measure(server: ServerProcess, measure, args: argparse.Namespace, client_cpu: int | None) -> dict:
    """One client measurement against one running server, with the server's CPU share over it."""
    cpu0, t0 = _cpu_seconds(server.pids()), time.monotonic()
    try:
        row = measure(server.port, args, client_cpu)
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        row = {"rps": float("nan"), "p50": float("nan"), "p99": float("nan"), "note": f"failed: {exc!r}"}
    row["server_cpu"] = (_cpu_seconds(server.pids()) - cpu0) / (time.monotonic() - t0) * 100
    return row


def _pairs(args: argparse.Namespace, gate, server_cpu: int | None, client_cpu: int | None, client: str, measure) -> None:
    """The mock against the reference in interleaved pairs; prints each pair and the median ratio."""
    import statistics

    ratios, cpu_ratios = [], []
    with ServerProcess("mock", server_cpu) as mock, ServerProcess("reference", server_cpu) as reference:
        for i in range(args.pairs):
            order = [("mock", mock), ("reference", reference)]
            if i % 2:
                order.reverse()
            rows = {}
            for name, server in order:
                gate.wait()
                rows[name] = _measure(server, measure, args, client_cpu)
            m, r = rows["mock"], rows["reference"]
            ratio = m["rps"] / r["rps"] if r["rps"] else float("nan")
            # server CPU per request: reference / mock (above 1: the mock spends less per request)
            cpu_ratio = (r["server_cpu"] / r["rps"]) / (m["server_cpu"] / m["rps"]) if m["rps"] and r["rps"] and m["server_cpu"] else float("nan")
            ratios.append(ratio)
            cpu_ratios.append(cpu_ratio)
            print(f"pair {i + 1}/{args.pairs} ({order[0][0]} first): mock {m['rps']:,.0f} req/s at {m['server_cpu']:.0f} % CPU, "
                  f"reference {r['rps']:,.0f} req/s at {r['server_cpu']:.0f} % CPU, ratio {ratio:.3f}", flush=True)
            for name, row in rows.items():
                if row.get("note"):
                    print(f"  {name}: {row['note']}")
    print(gate.summary())
    print()
    valid = [x for x in ratios if x == x]
    cpu_valid = [x for x in cpu_ratios if x == x]
    median = statistics.median(valid) if valid else float("nan")
    cpu_median = statistics.median(cpu_valid) if cpu_valid else float("nan")
    print("| comparison | client | median req/s ratio | min | max | server CPU/request, reference / mock (median) | pairs | target | verdict |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    verdict = "met" if median >= 1.0 else "NOT met"
    print(f"| mock / reference | {client} | {median:.3f} | {min(valid, default=float('nan')):.3f} | {max(valid, default=float('nan')):.3f} "
          f"| {cpu_median:.3f} | {len(valid)} | 1.0 | {verdict} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent keep-alive connections (default 64)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over every server and client; each cell keeps its best round (default 1)")
    parser.add_argument("--pairs", type=int, help="only the target: mock vs reference in this many interleaved pairs")
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)  # internal: run only the client
    parser.add_argument("--serve", choices=["reference", "mock", "mock-1ms", "mock-2p"], help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.client_port is not None:
        _run_client_here(args.client_port, args.connections, args.seconds)
        return 0
    if args.serve:
        _serve(args.serve)
        return 0
    if not 0 < args.seconds <= 60 or not 1 <= args.repeat <= 10 or not 1 <= (args.pairs or 1) <= 40:
        parser.error("--seconds must be in (0, 60], --repeat in [1, 10], --pairs in [1, 40]")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import QuietGate, machine_line

    gate = QuietGate()

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = shutil.which("taskset") is not None and len(cpus) >= 2
    server_cpu, client_cpu = (cpus[0], cpus[1]) if pin else (None, None)
    print(machine_line())
    print(f"64-byte JSON body; {args.connections} connections, {args.seconds:g} s per measurement, closed loop, no pipelining"
          + (f"; best of {args.repeat} rounds per cell" if args.repeat > 1 else ""))
    if pin:
        print(f"pinning: servers on CPU {server_cpu} (processes=2: not pinned), clients on CPU {client_cpu}")
    else:
        print("pinning: off (needs taskset and 2 CPUs)")
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        print("wrk not found (apt-get install wrk); measuring with the built-in client only")

    if args.pairs:
        client, measure = ("wrk", _wrk) if have_wrk else ("built-in", _builtin)
        _pairs(args, gate, server_cpu, client_cpu, client, measure)
        return 0

    servers = [
        ("mock", "mock", server_cpu),
        ("reference uvloop + httptools", "reference", server_cpu),
        ("mock, fixed 1 ms", "mock-1ms", server_cpu),
        ("mock, processes=2 (SO_REUSEPORT)", "mock-2p", None),
    ]
    clients = [("wrk", _wrk)] if have_wrk else []
    clients.append(("built-in", _builtin))
    results: dict[tuple[str, str], dict] = {}
    for round_ in range(args.repeat):
        for name, kind, cpu in servers:
            with ServerProcess(kind, cpu) as server:
                for client, measure in clients:
                    gate.wait()
                    print(f"round {round_ + 1}/{args.repeat}: {name} <- {client} ...", flush=True)
                    row = _measure(server, measure, args, client_cpu)
                    best = results.get((kind, client))
                    if best is None or not best["rps"] >= row["rps"]:
                        results[(kind, client)] = row

    bound = args.connections / 0.001
    print(gate.summary())
    print()
    print("| server | client | req/s | p50 ms | p99 ms | server CPU % | ratio | ratio means |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, kind, _ in servers:
        for client, _ in clients:
            row = results[(kind, client)]
            if kind == "mock":
                base, means = results[("reference", client)]["rps"], "mock / reference"
            elif kind == "reference":
                base, means = row["rps"], "reference"
            elif kind == "mock-1ms":
                base, means = bound, f"of the {bound:,.0f}/s bound (C / 1 ms)"
            else:
                base, means = results[("mock", client)]["rps"], "vs 1-process mock"
            ratio = row["rps"] / base if base else float("nan")
            print(f"| {name} | {client} | {row['rps']:,.0f} | {row['p50'] * 1e3:.3f} | {row['p99'] * 1e3:.3f} "
                  f"| {row['server_cpu']:.0f} | {ratio:.2f} | {means} |")
            if row.get("note"):
                print(f"  {name} <- {client}: {row['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
