"""Memory over a long steady run: RSS of the bench parent and of each worker, sampled every second.

    python benchmarks/soak.py [--requests N] [--concurrency 64 | --rate R] [--workers 2] [--max-seconds 170]

Starts the bundled mock server (latency model "none", 64-byte body) in a
child process pinned to the first CPU, then ``bench run`` (``client.transport:
fast``, a generated profile with ``target.url`` = the mock, no warm-up, no
CSV) as a subprocess pinned to the second CPU: closed loop with --concurrency
connections (default 64), or open loop at --rate requests per second,
constant arrivals. While it runs, VmRSS of the
bench parent and of each of its children (the workers: processes whose
/proc/PID/stat names the parent as ppid) is read from /proc/PID/status every
--interval seconds.

The table gives each process's RSS at the first sample, at 10 %, 50 % and
100 % of the run (by time), its peak, and its growth from 10 % to 100 % per
million requests sent in between (requests from the report's per-second
series). Growth per million requests near 0 means memory is bounded by the
run's length, not its request count; the 10 % point skips start-up
allocation (imports, connection pools, first histograms).

Bounded: the profile's ``load.duration`` caps the measured time at
--max-seconds (default 170 s), whichever of it and --requests comes first;
the default --requests is what --rate sends in that time (closed loop:
7,000,000, more than this machine sends in 170 s). For the full 10 M run:
``--requests 10000000 --max-seconds 300``. bench is interrupted (SIGINT, then
SIGKILL) if it has not finished 60 s after the cap. The mock, bench and
its workers are stopped by PID before exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import json  # noqa: E402

import yaml  # noqa: E402

from _common import NAN, QuietGate, cpu_plan, fmt, machine_line, pin_pid, pin_prefix  # noqa: E402

from bench.mock import MockConfig, MockServerProcess  # noqa: E402

KILL_MARGIN_S = 60.0


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, help="open loop at this rate per second over all workers (instead of --concurrency)")
    parser.add_argument("--concurrency", type=int, default=64, help="closed loop with this many connections (default 64)")
    parser.add_argument("--requests", type=int, help="requests to send (default: --rate x --max-seconds; closed loop 7,000,000)")
    parser.add_argument("--workers", type=int, default=2, help="bench workers (default 2)")
    parser.add_argument("--max-seconds", type=float, default=170.0, help="cap on the measured time (default 170)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="let the mock and bench float over all CPUs")
    args = parser.parse_args()
    if not 0 < args.max_seconds <= 900:
        parser.error("--max-seconds must be in (0, 900]")
    requests = args.requests or (int(args.rate * args.max_seconds) if args.rate else 7_000_000)
    if args.rate:
        load = {"rate": f"{args.rate:g}/s", "arrival": "constant", "max_in_flight": 1000}
        what = f"open loop at {args.rate:,.0f}/s constant"
    else:
        load = {"concurrency": args.concurrency}
        what = f"closed loop, {args.concurrency} connections"
    load.update({"requests": requests, "duration": f"{args.max_seconds:g}s", "workers": args.workers})

    server_cpu, client_cpu = (None, None) if args.no_pin else cpu_plan()
    pin = pin_prefix(client_cpu)
    print(machine_line())
    print(f"bench run, transport fast, {args.workers} workers, {what}, {requests:,} requests (at most {args.max_seconds:g} s); "
          f"mock latency none, 64-byte body; RSS sampled every {args.interval:g} s")
    print(f"pinning: mock on CPU {server_cpu}, bench parent and workers on CPU {client_cpu}" if pin else "pinning: off (needs taskset and 2 CPUs)")

    samples: list[tuple[float, int | None, dict[int, int | None]]] = []  # (time, parent RSS, {child pid: RSS})
    report: dict | None = None
    mock = MockServerProcess(MockConfig.from_mapping({"latency": {"model": "none"}, "body_bytes": 64}))
    proc: subprocess.Popen | None = None
    seen_children: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        profile_path, report_path, stderr_path = Path(tmp) / "soak.yaml", Path(tmp) / "report.json", Path(tmp) / "stderr.txt"
        try:
            mock.start()
            pin_pid(mock.pid, {server_cpu} if server_cpu is not None else None)
            profile = {
                "name": "soak",
                "target": {"url": mock.url + "/", "method": "GET", "timeout": "10s"},
                "load": load,
                "client": {"transport": "fast"},
            }
            profile_path.write_text(yaml.safe_dump(profile))
            gate = QuietGate()
            gate.wait()
            print(gate.summary(), flush=True)
            command = [*pin, sys.executable, "-m", "bench", "run", str(profile_path), "--json", str(report_path), "--quiet"]
            with open(stderr_path, "w") as stderr:
                started = time.monotonic()
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
                deadline = started + args.max_seconds + KILL_MARGIN_S
                next_sample = started
                last_report = started
                while proc.poll() is None:
                    now = time.monotonic()
                    if now > deadline:
                        print(f"bench did not finish within {args.max_seconds + KILL_MARGIN_S:.0f} s: stopping it")
                        break
                    children = children_of(proc.pid)
                    seen_children.update(children)
                    samples.append((now - started, rss_kib(proc.pid), {c: rss_kib(c) for c in children}))
                    if now - last_report >= 30:
                        last_report = now
                        print(f"  {now - started:5.0f} s: parent {samples[-1][1]} KiB, workers {list(samples[-1][2].values())} KiB", flush=True)
                    next_sample += args.interval
                    time.sleep(max(0.0, next_sample - time.monotonic()))
                elapsed = time.monotonic() - started
        finally:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # bench drains and writes its report
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            for pid in seen_children:  # workers die with their parent (PDEATHSIG); make sure, by PID
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            mock.stop()
        if report_path.exists():
            report = json.loads(report_path.read_text())
        else:
            print(f"no report (exit {proc.returncode if proc else '?'}): {stderr_path.read_text()[-500:]}")
            return 1

    worker_pids = [int(p) for p in report.get("worker_pids", [])] or sorted(seen_children)
    # The run proper: samples where every worker was alive.
    live = [s for s in samples if all(s[2].get(p) for p in worker_pids)]
    if len(live) < 3:
        print("too few samples while the workers ran")
        return 1
    t_first, t_last = live[0][0], live[-1][0]
    series = report.get("series") or []
    cumulative = []
    total = 0
    for point in series:
        total += point["sent"]
        cumulative.append(total)
    sent_total = report["requests"]["sent"] + report["warmup"]["sent"]

    def sent_at(t: float) -> float:
        """Requests sent by time t (from the per-second series; seconds count from the workers' common start)."""
        if not cumulative:
            return sent_total * (t - t_first) / max(1e-9, t_last - t_first)
        second = (t - t_first) / 1.0
        i = int(second)
        if i < 0:
            return 0.0
        if i >= len(cumulative):
            return float(cumulative[-1])
        before = cumulative[i - 1] if i > 0 else 0
        return before + (cumulative[i] - before) * (second - i)

    def at(fraction: float):
        t = t_first + fraction * (t_last - t_first)
        return min(live, key=lambda s: abs(s[0] - t))

    points = {f: at(f) for f in (0.10, 0.50, 1.00)}
    req10, req100 = sent_at(points[0.10][0]), sent_at(points[1.00][0])
    million = (req100 - req10) / 1e6
    print()
    print(f"status {report['status']}, {sent_total:,} requests sent in {report['duration_s']:.1f} s measured "
          f"({report['rps'] or NAN:,.0f} req/s), {report['requests']['client_errors'] + report['requests']['http_errors']} errors, "
          f"schedule lag p99 {fmt(report['schedule_lag']['p99'], '.2f')} ms, trusted {report.get('trusted')}; "
          f"{len(samples)} samples over {elapsed:.0f} s; 10 % -> 100 % spans {req100 - req10:,.0f} requests")
    print()
    print("| process | RSS first sample MiB | at 10 % | at 50 % | at 100 % | peak | growth 10 % -> 100 % KiB | KiB per 1 M requests |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [("parent", None)] + [(f"worker {i}", pid) for i, pid in enumerate(worker_pids)]
    for name, pid in rows:
        def value(sample, pid=pid):
            return sample[1] if pid is None else sample[2].get(pid)

        series_kib = [v for v in (value(s) for s in samples) if v]
        first = value(live[0])
        v10, v50, v100 = (value(points[f]) for f in (0.10, 0.50, 1.00))
        growth = (v100 - v10) if v100 is not None and v10 is not None else None
        per_million = growth / million if growth is not None and million > 0 else None
        mib = lambda v: fmt(None if v is None else v / 1024, ".1f")  # noqa: E731
        print(f"| {name} | {mib(first)} | {mib(v10)} | {mib(v50)} | {mib(v100)} | {mib(max(series_kib) if series_kib else None)} "
              f"| {fmt(growth, '+,.0f')} | {fmt(per_million, '+,.1f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
