"""bench next to its peers: wrk, bench (fast and aiohttp transports), a bare aiohttp loop, k6 and locust.

    python benchmarks/peers.py [--seconds 5] [--connections 64] [--repeat 1]

One run starts the bundled mock server (latency model "none", a 64-byte JSON
body) and measures each client against it, one after another, each for
--seconds with --connections keep-alive connections, closed loop (a
connection sends its next request when the previous answer is complete):

* wrk (skipped if not on PATH: apt-get install wrk), one thread;
* hey (apt-get install hey), if on PATH;
* ``bench run`` with a generated profile (concurrency = connections, one
  worker), ``client.transport: fast``, then ``aiohttp``; req/s, p50 and p99
  from the JSON report, client CPU from ``worker_cpu_s`` over the requests
  sent (warm-up included, as the CPU figure is);
* a bare aiohttp loop in one process (no schedule, no histograms, no pipes);
* k6 and locust (FastHttpUser) if on PATH; nothing is installed (locust
  can live in a virtual environment of its own: put its bin/ on PATH).

With taskset and 2 CPUs the server is pinned to the first CPU and every
client to the second, so a client never competes with the server for a core.
Client CPU for the other tools is their CPU time (user + system, from the
kernel's accounting of the finished child) over their requests. The last
column is the mock server's CPU use during each measurement (client start-up
included, so a little under the truth): near 100 % means the server, not the
client, set the pace. On a shared machine other processes disturb single runs;
--repeat N keeps each client's best of N. Each measurement is bounded
(--seconds plus a fixed margin) and everything started here is stopped before
exit.
"""

from __future__ import annotations

import argparse
import csv
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import yaml  # noqa: E402

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

MOCK = {"latency": {"model": "none"}, "body_bytes": 64}
WARMUP_S = 0.5
MARGIN_S = 60.0
_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
NAN = float("nan")


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|µs|ms|s|m)", text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else NAN


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], seconds: float, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """Run a client to the end (bounded); return it and the CPU seconds it (and its reaped children) used."""
    before = _children_cpu()
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + MARGIN_S, **kwargs)
    return result, _children_cpu() - before


def row(tool: str, rps: float, p50: float, p99: float, cpu_us: float, note: str = "") -> dict:
    return {"tool": tool, "rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu_us, "note": note}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far; NaN where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return NAN
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the clients


def measure_wrk(url: str, args: argparse.Namespace, pin: list[str]) -> dict:
    command = [*pin, "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds:g}s", "--latency", url]
    result, cpu = _run(command, args.seconds)
    out = result.stdout
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: \d+|Socket errors: .*", out)
    count = int(requests.group(1)) if requests else 0
    return row(
        "wrk",
        float(rps.group(1)) if rps else NAN,
        _seconds(p50.group(1)) * 1e3 if p50 else NAN,
        _seconds(p99.group(1)) * 1e3 if p99 else NAN,
        cpu / count * 1e6 if count else NAN,
        errors.group(0) if errors else "",
    )


def measure_hey(url: str, args: argparse.Namespace, pin: list[str]) -> dict:
    command = [*pin, "hey", "-z", f"{args.seconds:g}s", "-c", str(args.connections), url]
    result, cpu = _run(command, args.seconds)
    out = result.stdout
    rps = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    p50 = re.search(r"50%+ in ([0-9.]+) secs", out)
    p99 = re.search(r"99%+ in ([0-9.]+) secs", out)
    count = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    errors = re.search(r"Error distribution:", out)
    return row(
        "hey",
        float(rps.group(1)) if rps else NAN,
        float(p50.group(1)) * 1e3 if p50 else NAN,
        float(p99.group(1)) * 1e3 if p99 else NAN,
        cpu / count * 1e6 if count else NAN,
        "errors: see hey's error distribution" if errors else "",
    )


def measure_bench(url: str, transport: str, args: argparse.Namespace, pin: list[str]) -> dict:
    profile = {
        "name": f"peers-{transport}",
        "target": {"url": url, "method": "GET", "timeout": "10s"},
        "load": {"concurrency": args.connections, "duration": f"{args.seconds:g}s", "warmup": f"{WARMUP_S:g}s", "workers": 1},
        "client": {"transport": transport},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path, report_path = Path(tmp) / "peers.yaml", Path(tmp) / "report.json"
        path.write_text(yaml.safe_dump(profile))
        command = [*pin, sys.executable, "-m", "bench", "run", str(path), "--json", str(report_path), "--quiet"]
        result, _ = _run(command, args.seconds + WARMUP_S, env={**os.environ, "COLUMNS": "120"})
        if not report_path.exists():
            return row(f"bench ({transport})", NAN, NAN, NAN, NAN, f"no report, exit {result.returncode}: {result.stderr.strip()[-300:]}")
        report = json.loads(report_path.read_text())
    sent = report["requests"]["sent"] + report["warmup"]["sent"]
    cpu = sum(report["worker_cpu_s"].values())
    errors = report["requests"]["http_errors"] + report["requests"]["client_errors"]
    return row(
        f"bench ({transport})",
        report["rps"] or NAN,
        report["latency"]["p50"],
        report["latency"]["p99"],
        cpu / sent * 1e6 if sent else NAN,
        f"{errors} errors" if errors else "",
    )


def bare_aiohttp(url: str, connections: int, seconds: float) -> dict:
    """A bare aiohttp loop, in this process: `connections` users, each request after the previous one."""
    import asyncio

    import aiohttp
    import uvloop

    latencies: list[float] = []

    async def main() -> float:
        deadline = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def user() -> None:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    async with session.get(url) as response:
                        await response.read()
                    latencies.append(time.perf_counter() - started)

            started = time.monotonic()
            await asyncio.gather(*(user() for _ in range(connections)))
            return time.monotonic() - started

    cpu0 = time.process_time()
    elapsed = uvloop.run(main())
    cpu = time.process_time() - cpu0
    latencies.sort()
    n = len(latencies)
    return row(
        "bare aiohttp loop",
        n / elapsed,
        latencies[n // 2] * 1e3 if n else NAN,
        latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else NAN,
        cpu / n * 1e6 if n else NAN,
    )


def measure_bare_aiohttp(url: str, args: argparse.Namespace, pin: list[str]) -> dict:
    command = [*pin, sys.executable, __file__, "--bare-aiohttp", url, "--seconds", str(args.seconds), "--connections", str(args.connections)]
    result, _ = _run(command, args.seconds)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return row("bare aiohttp loop", NAN, NAN, NAN, NAN, f"failed: {result.stderr.strip()[-300:]}")


K6_SCRIPT = """
import http from 'k6/http';
export default function () { http.get(__ENV.TARGET); }
"""


def measure_k6(url: str, args: argparse.Namespace, pin: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script, summary = Path(tmp) / "peers.js", Path(tmp) / "summary.json"
        script.write_text(K6_SCRIPT)
        command = [*pin, "k6", "run", "--quiet", "--no-color", f"--vus={args.connections}", f"--duration={args.seconds:g}s"]
        command += ["--summary-trend-stats=med,p(99)", f"--summary-export={summary}", "-e", f"TARGET={url}", str(script)]
        result, cpu = _run(command, args.seconds)
        if not summary.exists():
            return row("k6", NAN, NAN, NAN, NAN, f"failed, exit {result.returncode}")
        metrics = json.loads(summary.read_text())["metrics"]
    count = metrics["http_reqs"]["count"]
    duration = metrics["http_req_duration"]
    return row("k6", metrics["http_reqs"]["rate"], duration["med"], duration["p(99)"], cpu / count * 1e6 if count else NAN)


LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

class Peer(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""


def measure_locust(url: str, args: argparse.Namespace, pin: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        locustfile, prefix = Path(tmp) / "peers_locust.py", Path(tmp) / "stats"
        locustfile.write_text(LOCUSTFILE)
        command = [*pin, "locust", "-f", str(locustfile), "--headless", "-u", str(args.connections), "-r", str(args.connections)]
        command += ["-t", f"{max(1, round(args.seconds))}s", "-H", url.rstrip("/"), "--csv", str(prefix), "--only-summary"]
        result, cpu = _run(command, args.seconds)
        stats = Path(f"{prefix}_stats.csv")
        if not stats.exists():
            return row("locust (FastHttpUser)", NAN, NAN, NAN, NAN, f"failed, exit {result.returncode}")
        with stats.open(newline="") as handle:
            total = next((r for r in csv.DictReader(handle) if r.get("Name") == "Aggregated"), None)
    if total is None:
        return row("locust (FastHttpUser)", NAN, NAN, NAN, NAN, "no aggregated stats")
    count = int(total["Request Count"])
    return row(
        "locust (FastHttpUser)",
        float(total["Requests/s"]),
        float(total["50%"]),
        float(total["99%"]),
        cpu / count * 1e6 if count else NAN,
    )


# --------------------------------------------------------------------------- the table


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def _cell(value: float, fmt: str) -> str:
    return "-" if value != value else format(value, fmt)  # NaN -> "-"


def print_table(rows: list[dict]) -> None:
    base = next((r["rps"] for r in rows if r["tool"] == "bench (fast)"), NAN)
    print()
    print("| tool | req/s | p50 ms | p99 ms | client CPU µs/request | vs bench-fast | server CPU % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("skipped"):
            print(f"| {r['tool']} | {r['skipped']} | | | | | |")
            continue
        ratio = r["rps"] / base if base == base and base else NAN
        print(
            f"| {r['tool']} | {_cell(r['rps'], ',.0f')} | {_cell(r['p50'], '.2f')} | {_cell(r['p99'], '.2f')} "
            f"| {_cell(r['cpu_us'], '.1f')} | {_cell(ratio, '.2f')}x | {_cell(r['server_cpu'], '.0f')} |"
        )
    for r in rows:
        if r.get("note"):
            print(f"  {r['tool']}: {r['note']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent keep-alive connections (default 64)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each client this many times and keep its best run (default 1)")
    parser.add_argument("--bare-aiohttp", metavar="URL", help=argparse.SUPPRESS)  # internal: run only that client
    args = parser.parse_args()
    if args.bare_aiohttp:
        print(json.dumps(bare_aiohttp(args.bare_aiohttp, args.connections, args.seconds)))
        return 0

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinning = shutil.which("taskset") is not None and len(cpus) >= 2
    pin = ["taskset", "-c", str(cpus[1])] if pinning else []
    print(f"{dt.date.today().isoformat()}, {machine()}")
    print(f"mock: latency none, 64-byte JSON body; {args.connections} connections, {args.seconds:g} s per client, closed loop"
          + (f", best of {args.repeat} runs each" if args.repeat > 1 else ""))
    print(f"pinning: server on CPU {cpus[0]}, clients on CPU {cpus[1]}" if pinning else "pinning: off (needs taskset and 2 CPUs)")

    rows: list[dict] = []
    mock = MockServerProcess(MockConfig.from_mapping(MOCK))
    try:
        mock.start()
        if pinning:
            os.sched_setaffinity(mock.pid, {cpus[0]})  # type: ignore[arg-type]
        url = mock.url + "/"
        plan = [
            ("wrk", "wrk", "skipped: apt-get install wrk", lambda: measure_wrk(url, args, pin)),
            ("bench (fast)", None, "", lambda: measure_bench(url, "fast", args, pin)),
            ("bench (aiohttp)", None, "", lambda: measure_bench(url, "aiohttp", args, pin)),
            ("bare aiohttp loop", None, "", lambda: measure_bare_aiohttp(url, args, pin)),
            ("hey", "hey", "skipped: apt-get install hey", lambda: measure_hey(url, args, pin)),
            ("k6", "k6", "skipped: install k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/)", lambda: measure_k6(url, args, pin)),
            ("locust (FastHttpUser)", "locust", "skipped: pip install locust", lambda: measure_locust(url, args, pin)),
        ]
        for tool, needs, hint, measure in plan:
            if needs is not None and shutil.which(needs) is None:
                print(f"{tool}: {hint}")
                rows.append({"tool": tool, "skipped": hint})
                continue
            best: dict | None = None
            for attempt in range(args.repeat):
                print(f"{tool}: measuring for {args.seconds:g} s ({attempt + 1}/{args.repeat}) ...", flush=True)
                server_cpu, started = process_cpu(mock.pid), time.monotonic()  # type: ignore[arg-type]
                try:
                    result = measure()
                except subprocess.TimeoutExpired:
                    result = row(tool, NAN, NAN, NAN, NAN, "did not finish in time (killed)")
                except (KeyError, ValueError, TypeError, OSError) as exc:  # e.g. another version's output format
                    result = row(tool, NAN, NAN, NAN, NAN, f"could not read its results: {exc!r}")
                # The server's CPU over the whole measurement (client start-up included): near 100 % = the mock was the limit.
                result["server_cpu"] = (process_cpu(mock.pid) - server_cpu) / (time.monotonic() - started) * 100  # type: ignore[arg-type]
                if best is None or result["rps"] > best["rps"] or best["rps"] != best["rps"]:
                    best = result
            rows.append(best)  # type: ignore[arg-type]
    finally:
        mock.stop()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
