"""bench search against the mock's known capacity: real workers, a real mock with N slots and a FIFO queue.

With 4 slots of exactly 50 ms, 4 users never wait (p95 ~50 ms) and a 5th
makes someone wait at least 12.5 ms on average (p95 far above it), so with
p95 <= 56 ms the capacity is exactly 4 users; with constant arrivals it is
4 / 50 ms = 80 requests per second.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.search import search

pytestmark = pytest.mark.slow

CAPACITY = {
    "name": "known-capacity",
    "mock": {"latency": {"model": "fixed", "delay": "50ms"}, "capacity": {"slots": 4}},
    "load": {"concurrency": 1, "duration": "1.5s", "warmup": "0.3s"},
    "sla": {"p95": "56ms", "error_rate": "1%"},
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}  # the one-line answer on one line
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=240, env=env)


def test_a_closed_loop_search_finds_exactly_n_users_and_require_gates_on_it(tmp_path: Path) -> None:
    path = write(tmp_path, CAPACITY)
    result = cli(["search", str(path), "--over", "concurrency", "--max", "64", "--require", "5", "--json", "s.json", "--html", "s.html"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # capacity 4 < the 5 required
    report = json.loads((tmp_path / "s.json").read_text())
    found = report["search"]
    assert (found["capacity"], found["first_failing"]) == (4, 5)
    levels = [p["level"] for p in found["probes"]]
    assert len(levels) <= 10, levels
    assert list(dict.fromkeys(levels))[:3] == [1, 2, 4] and set(levels) >= {4, 5}  # a level within noise is measured again
    capacity_probe = [p for p in found["probes"] if p["level"] == 4][-1]  # a level within noise is measured again: the last counts
    assert capacity_probe["outcome"] == "pass" and capacity_probe["report"]["histograms"]["latency"]  # a whole run report
    assert capacity_probe["report"]["profile"]["target"]["url"] is None  # the bundled mock, not its port: compares across searches
    assert 70 <= found["capacity_rps"] <= 82  # 4 users / 50 ms
    assert "capacity: 4 users" in result.stdout and "5 users fail" in result.stdout
    page = (tmp_path / "s.html").read_text()
    assert "capacity 4 users" in page and "<svg" in page  # the latency-throughput curve, the answer marked
    # The same search asking for what the service has passes the gate.
    enough = cli(["search", str(path), "--over", "concurrency", "--min", "2", "--max", "4", "--require", "4", "--quiet"], tmp_path)
    assert enough.returncode == 0, enough.stdout + enough.stderr
    assert "every level up to --max 4 users passed" in enough.stdout


def test_an_open_loop_search_finds_n_over_d_within_the_tolerance(tmp_path: Path) -> None:
    result = search(write(tmp_path, CAPACITY), "rate", 20.0, 320.0, tolerance=0.1)
    assert result.measured and result.stopped is None
    capacity, failing = result.capacity, result.first_failing
    assert capacity is not None and failing is not None
    assert 72 <= capacity <= 88 and (failing - capacity) <= 0.1 * capacity, (capacity, failing)
    # Probes past capacity are cut short: latency grows without bound, and fail_fast stops them within about a second.
    for probe in result.probes:
        if probe.outcome == "fail":
            assert probe.result.status == "aborted" and probe.summary["duration_s"] < 2.5, probe.summary["duration_s"]  # of 1.5 s, or 3 s measured again


def test_a_generator_that_cannot_keep_up_ends_the_search_without_an_answer(tmp_path: Path) -> None:
    # 100,000,000 requests/s: no CPU sends that fast (see test_trust_and_gates), so the first probe is generator-limited.
    data = {
        "mock": {"latency": {"model": "none"}},
        "load": {"rate": "10/s", "requests": 2000, "workers": 1, "max_in_flight": 2000},
        "client": {"pool_size": 16},
        "sla": {"p95": "1s"},
    }
    result = cli(["search", str(write(tmp_path, data)), "--over", "rate", "--min", "100000000/s", "--quiet", "--json", "s.json"], tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the generator, not the target, was the bottleneck" in result.stdout and "add workers or cores" in result.stdout
    found = json.loads((tmp_path / "s.json").read_text())["search"]
    assert found["stopped"] == "generator-limited" and found["capacity"] is None
    assert [p["outcome"] for p in found["probes"]] == ["generator-limited"]


def test_an_unreachable_target_is_no_answer_exit_3(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = {"target": {"url": f"http://127.0.0.1:{port}/"}, "load": {"concurrency": 1, "requests": 5}, "sla": {"p95": "1s"}}
    result = cli(["search", str(write(tmp_path, data)), "--over", "concurrency", "--quiet"], tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no request got an answer at 1 user" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--over", "users"], "error: --over: expected concurrency or rate, got 'users'"),
        (["--over", "concurrency", "--min", "0"], "error: --min: expected a whole number of users"),
        (["--over", "rate", "--max", "fast"], "error: --max: expected a rate such as 500/s"),
        (["--over", "rate", "--min", "100", "--max", "10"], "error: --max 10 is below --min 100"),
        (["--over", "rate", "--tolerance", "0%"], "error: --tolerance: must be at least 0.1% and below 100%"),
        (["--over", "rate", "--tolerance", "1e-20"], "error: --tolerance: must be at least 0.1% and below 100%"),  # bisected forever
        (["--over", "rate", "--budget", "10"], "error: --budget: a duration needs a unit"),
    ],
)
def test_bad_search_flags_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(["search", str(write(tmp_path, CAPACITY)), *args], tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr


def test_a_profile_without_an_sla_cannot_be_searched(tmp_path: Path) -> None:
    data = {k: v for k, v in CAPACITY.items() if k != "sla"}
    result = cli(["search", str(write(tmp_path, data)), "--over", "concurrency"], tmp_path)
    assert result.returncode == 2 and "needs SLA criteria" in result.stderr


def test_an_unwritable_report_path_is_refused_before_probing(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir(mode=0o500)
    result = cli(["search", str(write(tmp_path, CAPACITY)), "--over", "concurrency", "--json", str(tmp_path / "locked" / "s.json")], tmp_path)
    if os.geteuid() == 0:  # root writes anywhere: a directory as the path is refused instead
        result = cli(["search", str(write(tmp_path, CAPACITY)), "--over", "concurrency", "--json", str(tmp_path)], tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: --json: cannot write"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_search_serves_live_metrics_on_one_port_and_scrapes_the_target_per_probe(tmp_path: Path) -> None:
    """--metrics-port 0 picks one port for every probe; each probe's report holds the mock's queue, scraped from its /metrics."""
    import re
    import threading
    import urllib.request

    path = write(tmp_path, {**CAPACITY, "target": {"metrics_url": "/metrics"}})
    ports: list[int] = []
    elapsed: list[float] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.wait(0.2):
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics", timeout=2).read().decode()
            except OSError:
                continue  # between probes
            found = re.search(r'^bench_elapsed_seconds\{profile="known-capacity",scenario=""\} (\S+)$', text, re.M)
            if found:
                elapsed.append(float(found.group(1)))

    scraper = threading.Thread(target=scrape, daemon=True)

    def on_probe(number: int, level: float, profile) -> None:
        ports.append(profile.output.metrics_port)
        if number == 1:
            scraper.start()

    try:
        result = search(path, "concurrency", 4, 5, overrides={"metrics_port": "0", "metrics_linger": "0s"}, on_probe=on_probe)
    finally:
        stop.set()
    scraper.join(5)
    assert len(ports) >= 2 and len(set(ports)) == 1 and ports[0] > 0
    assert any(later < earlier for earlier, later in zip(elapsed, elapsed[1:])), elapsed  # a second probe started over on the same port
    waiting = {p.level: max(v for _, v in p.summary["target_metrics"]["mock:num_requests_waiting"]) for p in result.probes}
    assert waiting[4] == 0 and waiting[5] >= 1  # 4 users fit the 4 slots; a 5th waits


def test_a_metrics_address_that_cannot_be_bound_ends_the_search_before_probing(tmp_path: Path) -> None:
    path = write(tmp_path, CAPACITY)
    result = cli(["search", str(path), "--over", "concurrency", "--metrics-port", "192.0.2.1:0", "-q"], tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot serve metrics on 192.0.2.1" in result.stderr and "Traceback" not in result.stderr
    assert "probe 1" not in result.stdout + result.stderr


def test_a_replay_profile_cannot_be_searched(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"timestamp_ms": 0}\n{"timestamp_ms": 10}\n')
    path = write(tmp_path, {"load": {"replay": "t.jsonl"}, "sla": {"p95": "1s"}})
    result = cli(["search", str(path), "--over", "rate"], tmp_path)
    assert result.returncode == 2 and "load.replay: a replayed trace sets its own load" in result.stderr and "--rate" not in result.stderr
