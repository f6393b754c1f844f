"""Faults end to end: bench keeps working against a misbehaving target and loses no request.

Every case runs the real thing: ``python -m bench run PROFILE --json OUT --csv
ROWS`` in a subprocess, with its real worker processes, against a real server
on 127.0.0.1 running in a process of its own (``SERVER``, a small asyncio
script below) that the test starts, kills, restarts and stops by PID. Each
case ends with:

* every request sent counted exactly once (``sent == ok + http_errors +
  client_errors + check_failures``, ``unfinished == 0``, errors by kind as
  expected, one CSV row per request),
* a JSON report written, and the documented exit code (0/1 when measurable,
  3 when no request got an HTTP response),
* no bench worker (nor any other child of the bench process) left running.

Faults that happen before any HTTP is spoken (connection refused, DNS) run
with every transport; the others with ``aiohttp`` and ``fast`` (the server
speaks HTTP/1.1 only). ``pytest -s`` prints one line per run with its numbers.

The server counts its connections the way the kernel sees them: a connection
is "established" while its TCP state is ESTABLISHED (TCP_INFO), so a client
that aborted a connection and opened the next one at once is never counted
twice just because the server's loop has not read the EOF yet.
"""

from __future__ import annotations

import csv
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from procs import alive, children

pytestmark = pytest.mark.slow

TRANSPORTS = ("aiohttp", "fast")
ALL_TRANSPORTS = ("aiohttp", "fast", "h2")  # for faults before any HTTP is spoken (the servers below speak HTTP/1.1 only)
HUGE_BYTES = 50_000_000  # the "huge body" case: 50 MB announced with Content-Length and streamed

# --------------------------------------------------------------------------- the misbehaving server

SERVER = r'''
import asyncio, json, os, signal, socket, sys

MODE, PORT, STATS, ARG = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
state = {"accepted": 0, "requests": 0, "open": 0, "established": 0, "max_established": 0, "responses": 0}
socks = set()


def sample():
    n = 0
    for sock in list(socks):
        try:
            if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 1:  # TCP_ESTABLISHED
                n += 1
        except OSError:
            pass
    state["established"] = n
    state["max_established"] = max(state["max_established"], n)


def dump():
    sample()
    tmp = STATS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, STATS)


async def drain_until_eof(reader):
    while await reader.read(65536):
        pass


async def act(reader, writer):
    """Answer one request as MODE says; False when the connection is done."""
    if MODE == "never":
        await drain_until_eof(reader)
        return False
    if MODE == "close_mid":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        return False
    if MODE == "garbage":
        writer.write(b"SPAM spam spam\r\nnot: http\r\n\r\n")
        await writer.drain()
        await drain_until_eof(reader)
        return False
    if MODE == "huge":
        size = int(ARG)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * (1 << 20)
        left = size
        while left:
            piece = chunk[: min(left, len(chunk))]
            writer.write(piece)
            left -= len(piece)
            await writer.drain()
        state["responses"] += 1
        return True
    status = 200
    if MODE == "ok" and ARG:  # ARG: the delay before answering
        await asyncio.sleep(ARG)
    elif MODE == "status":
        status = int(ARG)
    body = b'{"ok":true}'
    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
    await writer.drain()
    state["responses"] += 1
    return True


async def handle(reader, writer):
    state["accepted"] += 1
    state["open"] += 1
    sock = writer.get_extra_info("socket")
    socks.add(sock)
    sample()
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            state["requests"] += 1
            if not await act(reader, writer):
                return
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        socks.discard(sock)
        state["open"] -= 1
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, reuse_address=True, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    dump()
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    while not stop.is_set():
        dump()
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except asyncio.TimeoutError:
            pass
    server.close()
    dump()


asyncio.run(main())
'''


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]






def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident memory) of a live process, in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Server:
    """One server process on 127.0.0.1 in a given misbehaviour ``mode``; started, killed and stopped by PID."""

    def __init__(self, workdir: Path, mode: str, arg: float = 0.0, port: int = 0):
        self.workdir, self.mode, self.arg, self.port = workdir, mode, arg, port
        self.stats_path = workdir / f"server-{mode}-{os.urandom(4).hex()}.json"
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []

    def start(self, timeout: float = 10.0) -> "Server":
        stderr = open(self.workdir / "server.stderr", "ab")
        self.stats_path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.mode, str(self.port), str(self.stats_path), str(self.arg)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=self.workdir,
        )
        stderr.close()
        self.pids.append(self.proc.pid)
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    raise AssertionError(f"the {self.mode} server did not start within {timeout} s")
                byte = os.read(self.proc.stdout.fileno(), 1)  # type: ignore[union-attr]  # unbuffered: select sees what is left
                if not byte:
                    raise AssertionError(f"the {self.mode} server exited while starting: {(self.workdir / 'server.stderr').read_text()}")
                line += byte
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stats(self) -> dict[str, int]:
        return json.loads(self.stats_path.read_text())

    def wait_stats(self, predicate: Callable[[dict], bool], timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats) or time.monotonic() >= deadline:
                return stats
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server crashes, the kernel closes its sockets."""
        assert self.proc is not None
        kill_pid(self.proc.pid)
        self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM (the server writes its last stats), then SIGKILL if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            kill_pid(self.proc.pid)
            self.proc.wait(5)

    def close(self) -> None:
        """Finalizer: no server process of this object is left, whatever happened."""
        try:
            self.stop()
        finally:
            for pid in self.pids:
                if alive(pid):
                    kill_pid(pid)
            if self.proc is not None:
                if self.proc.stdout is not None:
                    self.proc.stdout.close()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with ``servers(mode, arg=..., port=...)``; every one is stopped by PID at teardown."""
    made: list[Server] = []

    def start(mode: str, arg: float = 0.0, port: int = 0) -> Server:
        server = Server(tmp_path, mode, arg, port)
        made.append(server)
        return server.start()

    yield start
    for server in made:
        server.close()


# --------------------------------------------------------------------------- running bench


class BenchRun:
    """``python -m bench run`` in a subprocess, its children watched while it runs."""

    def __init__(self, workdir: Path, profile: dict[str, Any]):
        self.workdir = workdir
        self.profile_path = workdir / "profile.yaml"
        self.profile_path.write_text(yaml.safe_dump(profile, sort_keys=False))
        self.json_path = workdir / "report.json"
        self.csv_path = workdir / "requests.csv"
        self.proc: subprocess.Popen | None = None
        self.children: set[int] = set()  # every child of bench seen while it ran: its workers
        self.peak_rss_mb: dict[int, float] = {}  # the children's VmHWM, last seen
        self.elapsed = 0.0

    def start(self) -> "BenchRun":
        env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}  # no job summary from the tests
        env["COLUMNS"] = "100"
        with open(self.workdir / "bench.stdout", "wb") as out, open(self.workdir / "bench.stderr", "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench", "run", str(self.profile_path), "--json", str(self.json_path), "--csv", str(self.csv_path)],
                cwd=self.workdir,
                stdout=out,
                stderr=err,
                env=env,
            )
        self.started = time.monotonic()
        return self

    def _watch(self) -> None:
        assert self.proc is not None
        for pid in set(children(self.proc.pid)):
            self.children.add(pid)
            rss = peak_rss_mb(pid)
            if rss is not None:
                self.peak_rss_mb[pid] = rss

    def wait(self, timeout: float) -> int:
        """Wait for bench to exit (watching its children); on timeout kill it and its children and fail."""
        assert self.proc is not None
        deadline = self.started + timeout
        while self.proc.poll() is None:
            self._watch()
            if time.monotonic() >= deadline:
                self.close()
                pytest.fail(f"bench did not finish within {timeout} s\n{self.output()}")
            time.sleep(0.05)
        self.elapsed = time.monotonic() - self.started
        if self.json_path.exists():  # one line per run, shown by ``pytest -s``
            report = json.loads(self.json_path.read_text())
            print(
                f"\n[{report['profile']['client']['transport']}] exit {self.proc.returncode} in {self.elapsed:.2f} s: "
                f"requests {report['requests']}, errors {report['errors']}, status codes {report['status_codes']}"
            )
        return self.proc.returncode

    def output(self) -> str:
        return "".join((self.workdir / name).read_text(errors="replace") for name in ("bench.stdout", "bench.stderr"))

    def report(self) -> dict[str, Any]:
        assert self.json_path.exists(), f"no JSON report was written\n{self.output()}"
        return json.loads(self.json_path.read_text())

    def rows(self) -> list[dict[str, str]]:
        with open(self.csv_path, newline="") as f:
            return list(csv.DictReader(f))

    def close(self) -> None:
        """Finalizer: bench and every child it had are gone, killed by PID if need be."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.children |= set(children(self.proc.pid))
            kill_pid(self.proc.pid)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.children:
            if alive(pid):
                kill_pid(pid)


@pytest.fixture
def bench_run(tmp_path: Path) -> Iterator[Callable[[dict], BenchRun]]:
    made: list[BenchRun] = []

    def make(profile: dict[str, Any]) -> BenchRun:
        run = BenchRun(tmp_path, profile)
        made.append(run)
        return run.start()

    yield make
    for run in made:
        run.close()


def profile_for(
    transport: str,
    url: str,
    *,
    timeout: str = "2s",
    concurrency: int | None = 2,
    rate: str | None = None,
    requests: int | None = None,
    duration: str | None = None,
    workers: int = 1,
    sla: dict | None = None,
) -> dict[str, Any]:
    load: dict[str, Any] = {"workers": workers}
    if rate is not None:
        load["rate"] = rate
    else:
        load["concurrency"] = concurrency
    if requests is not None:
        load["requests"] = requests
    if duration is not None:
        load["duration"] = duration
    profile: dict[str, Any] = {
        "name": f"faults-{transport}",
        "target": {"url": url, "method": "GET", "timeout": timeout},
        "load": load,
        "client": {"transport": transport},
    }
    if sla:
        profile["sla"] = sla
    return profile


def assert_all_counted(run: BenchRun, report: dict[str, Any]) -> list[dict[str, str]]:
    """Every request sent is counted exactly once, in the report and in the CSV; returns the measured rows."""
    req = report["requests"]
    assert req["sent"] > 0, req
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"] + req["check_failures"], req
    assert req["unfinished"] == 0, req
    assert req["completed"] == req["sent"], req
    assert req["due_but_not_sent"] == 0, req
    assert sum(report["errors"].values()) == req["client_errors"], report["errors"]
    assert sum(int(n) for n in report["status_codes"].values()) == req["ok"] + req["http_errors"] + req["check_failures"]
    rows = [r for r in run.rows() if r["phase"] == "measured"]
    assert len(rows) == req["sent"], (len(rows), req)
    assert sum(1 for r in rows if r["error"]) == req["client_errors"]
    return rows


def assert_no_process_left(run: BenchRun, report: dict[str, Any]) -> None:
    """The report's worker PIDs are real children of bench, and none of them (nor any other child) survived it."""
    pids = report["worker_pids"]
    assert pids and all(isinstance(p, int) and p > 0 for p in pids), pids
    assert run.proc is not None and run.proc.pid not in pids
    assert len(set(pids)) == len(pids), pids
    # (A very short run may end between two looks at bench's children, so "seen running" is not required.)
    deadline = time.monotonic() + 3.0
    left = [p for p in set(pids) | run.children if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    assert not left, f"processes left after bench exited: {left}"


def assert_unmeasurable(code: int, run: BenchRun, report: dict[str, Any]) -> None:
    assert code == 3, run.output()
    assert report["status"] == "unmeasurable" and report["complete"] is False, report["status"]
    assert report["requests"]["ok"] + report["requests"]["http_errors"] == 0
    assert any("no request got an HTTP response" in m for m in report["messages"]), report["messages"]


def durations_s(rows: list[dict[str, str]]) -> list[float]:
    return [(float(r["end_ms"]) - float(r["sent_ms"])) / 1000 for r in rows]


# --------------------------------------------------------------------------- the cases


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ALL_TRANSPORTS)
def test_target_down_from_the_start_is_connect_and_exit_3(transport: str, bench_run) -> None:
    run = bench_run(profile_for(transport, f"http://127.0.0.1:{free_port()}/", concurrency=2, requests=20))
    code = run.wait(20)
    report = run.report()
    rows = assert_all_counted(run, report)
    assert_unmeasurable(code, run, report)
    assert report["requests"]["sent"] == 20
    assert report["errors"] == {"connect": 20}
    assert {r["error"] for r in rows} == {"connect"}
    assert_no_process_left(run, report)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_target_killed_mid_run_and_restarted(transport: str, servers, bench_run) -> None:
    """The server is SIGKILLed once bench is sending and restarted on the same port about 1 s later:
    bench keeps sending on schedule, counts the gap's failures, and succeeds again after the restart."""
    first = servers("ok", arg=0.1)  # 100 ms per answer: a few requests are in flight when it dies
    port = first.port
    run = bench_run(profile_for(transport, first.url, timeout="500ms", rate="40/s", duration="4s"))
    stats = first.wait_stats(lambda s: s["requests"] >= 10, timeout=10)
    assert stats["requests"] >= 10, f"bench never reached the server\n{run.output()}"
    time.sleep(0.4)
    first.kill()
    time.sleep(1.0)
    second = servers("ok", arg=0.1, port=port)
    assert second.port == port
    code = run.wait(25)
    report = run.report()
    rows = assert_all_counted(run, report)
    assert code == 0, run.output()  # measurable, no SLA
    assert report["status"] == "completed"
    req = report["requests"]
    errors = report["errors"]
    assert req["client_errors"] > 0 and set(errors) <= {"connect", "read"}, errors
    assert req["http_errors"] == 0
    # Open loop, 40/s for 4 s: bench kept sending through the gap (no request skipped or held back).
    assert req["sent"] == 160, req
    failed = sorted(float(r["sent_ms"]) for r in rows if r["error"])
    ok = sorted(float(r["sent_ms"]) for r in rows if r["status"] == "200")
    assert len(ok) == req["ok"]
    gap_start, gap_end = failed[0], failed[-1]
    assert 500 <= gap_end - gap_start <= 2500, (gap_start, gap_end)  # about the 1 s the server was down
    assert sum(t < gap_start for t in ok) >= 10, "no successes before the server was killed"
    assert sum(t > gap_end for t in ok) >= 10, "no successes after the server came back"
    # Every request sent outside the gap succeeded, none inside it: nothing left broken after the restart.
    assert not [t for t in ok if gap_start < t < gap_end], "successes while the server was down"
    assert req["ok"] + len(failed) == req["sent"]
    second.stop()
    assert second.stats()["requests"] == sum(t > gap_end for t in ok)
    assert_no_process_left(run, report)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_that_never_answers_times_out_without_leaking_connections(transport: str, servers, bench_run) -> None:
    server = servers("never")
    concurrency = 4
    run = bench_run(profile_for(transport, server.url, timeout="500ms", concurrency=concurrency, duration="1600ms", workers=2))
    code = run.wait(25)
    report = run.report()
    rows = assert_all_counted(run, report)
    assert_unmeasurable(code, run, report)
    req = report["requests"]
    assert report["errors"] == {"timeout": req["sent"]}
    # Four users, 1.6 s, 0.5 s each: about 4 requests each.
    assert 12 <= req["sent"] <= 20, req
    # The timeout is enforced: each request ended 0.5 s after it was sent (plus the loop's slack).
    assert all(0.49 <= d <= 1.0 for d in durations_s(rows)), sorted(durations_s(rows))
    # Connections: never more open than the pool (concurrency split over the workers), all closed at the end.
    stats = server.wait_stats(lambda s: s["open"] == 0 and s["established"] == 0, timeout=3)
    print(f"server: {stats}")
    assert stats["max_established"] <= concurrency, stats
    assert stats["open"] == 0 and stats["established"] == 0, f"connections left open after bench exited: {stats}"
    assert stats["requests"] == req["sent"], stats  # every request reached the server once, none retried or lost
    assert_no_process_left(run, report)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_slower_than_the_timeout_is_timeout(transport: str, servers, bench_run) -> None:
    server = servers("ok", arg=1.5)
    run = bench_run(profile_for(transport, server.url, timeout="500ms", concurrency=2, requests=6))
    code = run.wait(20)
    report = run.report()
    rows = assert_all_counted(run, report)
    assert_unmeasurable(code, run, report)
    assert report["requests"]["sent"] == 6
    assert report["errors"] == {"timeout": 6}
    assert all(0.49 <= d <= 1.0 for d in durations_s(rows)), durations_s(rows)
    assert run.elapsed < 10
    assert server.wait_stats(lambda s: s["requests"] >= 6, 2)["requests"] == 6
    assert_no_process_left(run, report)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_closing_mid_response_is_read(transport: str, servers, bench_run) -> None:
    server = servers("close_mid")
    run = bench_run(profile_for(transport, server.url, concurrency=2, requests=10))
    code = run.wait(20)
    report = run.report()
    assert_all_counted(run, report)
    assert_unmeasurable(code, run, report)
    assert report["requests"]["sent"] == 10
    assert report["errors"] == {"read": 10}
    assert server.wait_stats(lambda s: s["requests"] >= 10, 2)["requests"] == 10
    assert_no_process_left(run, report)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_http_is_protocol(transport: str, servers, bench_run) -> None:
    server = servers("garbage")
    run = bench_run(profile_for(transport, server.url, concurrency=2, requests=10))
    code = run.wait(20)
    report = run.report()
    assert_all_counted(run, report)
    assert_unmeasurable(code, run, report)
    assert report["requests"]["sent"] == 10
    assert report["errors"] == {"protocol": 10}
    assert server.wait_stats(lambda s: s["requests"] >= 10, 2)["requests"] == 10
    assert_no_process_left(run, report)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_huge_body_is_read_and_counted(transport: str, servers, bench_run) -> None:
    """A 50 MB body: bench has no body-size bound (no ``client.max_body``), so it reads it all and counts it.

    The aiohttp transport holds the whole body in memory (``response.read()``);
    the fast transport counts the bytes and keeps none. The worker's peak RSS
    is printed so the difference shows in ``pytest -s``.
    """
    server = servers("huge", arg=HUGE_BYTES)
    run = bench_run(profile_for(transport, server.url, timeout="10s", concurrency=1, requests=3))
    code = run.wait(30)
    report = run.report()
    rows = assert_all_counted(run, report)
    assert code == 0, run.output()
    assert report["requests"]["ok"] == 3, report["requests"]
    assert report["bytes_received"] == 3 * HUGE_BYTES
    assert all(int(r["bytes"]) == HUGE_BYTES for r in rows)
    assert max(durations_s(rows)) < 10  # within the request timeout
    workers = [pid for pid in report["worker_pids"] if pid in run.peak_rss_mb]
    peak = max((run.peak_rss_mb[pid] for pid in workers), default=None)
    print(f"\n[{transport}] 3 x {HUGE_BYTES / 1e6:.0f} MB bodies: per-request {[round(d, 3) for d in durations_s(rows)]} s, "
          f"bench {run.elapsed:.2f} s, worker peak RSS {peak if peak is None else round(peak)} MB")
    if transport == "fast" and peak is not None:
        assert peak < HUGE_BYTES / 1e6, f"the fast transport kept the body in memory: {peak:.0f} MB"
    assert_no_process_left(run, report)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_flood_of_503_is_http_errors_and_fails_the_error_rate_sla(transport: str, servers, bench_run) -> None:
    server = servers("status", arg=503)
    run = bench_run(profile_for(transport, server.url, concurrency=2, requests=40, sla={"error_rate": "1%"}))
    code = run.wait(20)
    report = run.report()
    assert_all_counted(run, report)
    assert code == 1, run.output()
    assert report["status"] == "completed"
    req = report["requests"]
    assert req["sent"] == 40 and req["http_errors"] == 40 and req["client_errors"] == 0, req
    assert report["status_codes"] == {"503": 40}
    assert report["errors"] == {}
    assert report["error_rate"] == 1.0
    assert report["latency"]["count"] == 40  # HTTP responses, so latency is measured
    check = {c["criterion"]: c for c in report["sla"]["checks"]}
    assert report["sla"]["passed"] is False and check["error_rate"]["passed"] is False, report["sla"]
    assert server.wait_stats(lambda s: s["requests"] >= 40, 2)["requests"] == 40
    assert_no_process_left(run, report)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ALL_TRANSPORTS)
def test_dns_failure_is_connect_and_exit_3(transport: str, bench_run) -> None:
    """``.invalid`` never resolves (RFC 6761), so no traffic goes anywhere."""
    run = bench_run(profile_for(transport, "http://no-such-host.invalid/", concurrency=2, requests=10))
    code = run.wait(20)
    report = run.report()
    assert_all_counted(run, report)
    assert_unmeasurable(code, run, report)
    assert report["requests"]["sent"] == 10
    assert report["errors"] == {"connect": 10}
    assert_no_process_left(run, report)
