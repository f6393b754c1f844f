"""bench itself is hurt: a worker killed, Ctrl-C once and twice, SIGTERM, the parent killed, file limits, bad outputs.

Every case runs `bench run` as a subprocess with real workers, against a mock
server this test starts and stops itself, and checks that no process is left.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.mock import MockConfig, MockServerProcess
from procs import alive, children, first_status_line, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with MockServerProcess(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": "20ms"}})) as mock:
        yield mock








def start_bench(tmp_path: Path, data: dict, *extra: str, **popen) -> subprocess.Popen:
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(profile), "--json", str(tmp_path / "report.json"), *extra],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.fixture
def reaper():
    """Kill, by PID, whatever a test started and left running, even when the test fails."""
    started: list[int] = []
    yield started
    for pid in started:
        for child in children(pid):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def long_run(url: str, workers: int = 2) -> dict:
    return {"target": {"url": url, "timeout": "5s"}, "load": {"rate": "100/s", "duration": "60s", "workers": workers}}


def wait_for_workers(proc: subprocess.Popen, count: int) -> list[int]:
    assert wait_until(lambda: len(children(proc.pid)) >= count, 15), "workers did not start"
    line = first_status_line(proc.stdout)  # past the run's header: the run has started
    assert "[bench]" in line, line
    return children(proc.pid)


def test_a_killed_worker_stops_the_run_with_exit_3_and_a_partial_report(tmp_path, server, reaper):
    proc = start_bench(tmp_path, long_run(server.url + "/"))
    reaper.append(proc.pid)
    workers = wait_for_workers(proc, 2)
    time.sleep(0.5)  # let some requests complete first
    killed = workers[0]
    t0 = time.monotonic()
    os.kill(killed, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stdout + stderr
    assert time.monotonic() - t0 < 8  # noticed within a second, then the other worker drains
    assert f"pid {killed}) killed by SIGKILL" in stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "crashed" and report["complete"] is False
    assert report["requests"]["sent"] > 0
    assert all(not alive(pid) for pid in workers)


def test_ctrl_c_twice_stops_at_once(tmp_path, reaper):
    # The server holds every response for 20 s, so draining would wait; the second Ctrl-C must not.
    with MockServerProcess(MockConfig.from_mapping({"latency": {"model": "fixed", "delay": "20s"}})) as slow:
        proc = start_bench(tmp_path, {**long_run(slow.url + "/"), "target": {"url": slow.url + "/", "timeout": "30s"}})
        reaper.append(proc.pid)
        workers = wait_for_workers(proc, 2)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
        assert time.monotonic() - t0 < 3
    assert proc.returncode == 130, stdout + stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "interrupted"
    assert any("interrupted twice" in m for m in report["messages"])
    assert all(not alive(pid) for pid in workers)


def test_sigterm_drains_like_ctrl_c(tmp_path, server, reaper):
    proc = start_bench(tmp_path, long_run(server.url + "/"))
    reaper.append(proc.pid)
    workers = wait_for_workers(proc, 2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stdout + stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "interrupted"
    req = report["requests"]
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"] + req["check_failures"]
    assert all(not alive(pid) for pid in workers)


def test_killing_bench_leaves_no_orphan_workers_or_mock(tmp_path, reaper):
    # No target URL: bench starts its own mock server, a third child.
    data = {"mock": {"latency": {"model": "fixed", "delay": "10ms"}}, "load": {"rate": "50/s", "duration": "60s", "workers": 2}}
    proc = start_bench(tmp_path, data)
    reaper.append(proc.pid)
    kids = wait_for_workers(proc, 3)
    assert len(kids) == 3
    proc.kill()
    proc.wait(timeout=10)
    assert wait_until(lambda: not any(alive(pid) for pid in kids), 5), [p for p in kids if alive(p)]


def test_concurrency_above_the_file_limit_is_refused_before_the_run(tmp_path, server):
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    data = {"target": {"url": server.url + "/"}, "load": {"concurrency": 2000, "requests": 10, "workers": 1}}
    profile = tmp_path / "fd.yaml"
    profile.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(profile)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, preexec_fn=low_limit)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "hard limit is 256" in done.stderr and "add workers" in done.stderr


def test_the_soft_file_limit_is_raised_when_it_can_be(tmp_path, server):
    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 4096))

    data = {"target": {"url": server.url + "/"}, "load": {"concurrency": 600, "requests": 1200, "workers": 1}}
    profile = tmp_path / "fd.yaml"
    profile.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(profile), "-q", "--json", "r.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, preexec_fn=low_soft_limit)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["requests"]["ok"] == 1200 and report["errors"] == {}


def test_an_unwritable_output_is_an_error_before_the_run(tmp_path, server):
    data = {"target": {"url": server.url + "/"}, "load": {"concurrency": 1, "requests": 5}}
    profile = tmp_path / "out.yaml"
    profile.write_text(yaml.safe_dump(data))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(profile), "--json", "/proc/bench-report.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot write /proc/bench-report.json" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - t0 < 10


def test_ctrl_c_to_the_process_group_leaves_the_bundled_mock_serving_the_drain(tmp_path, reaper):
    # A terminal's Ctrl-C reaches the whole foreground group: bench, its workers and its own mock.
    # The mock must outlive the drain, or the report fills with errors the target never made.
    data = {
        "mock": {"latency": {"model": "uniform", "min": "50ms", "max": "200ms"}},
        "target": {"timeout": "10s"},
        "load": {"concurrency": 40, "duration": "60s", "workers": 2},
    }
    proc = start_bench(tmp_path, data, start_new_session=True)
    reaper.append(proc.pid)
    kids: list[int] = []
    try:
        kids = wait_for_workers(proc, 3)  # two workers and the mock
        time.sleep(0.5)  # requests in flight on every connection
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        all_gone = wait_until(lambda: not any(alive(pid) for pid in kids), 5)
    finally:
        for pid in kids:  # the mock has a process group of its own
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, stdout + stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "interrupted" and report["complete"] is False
    req = report["requests"]
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"] + req["check_failures"], req
    assert req["unfinished"] == 0 and req["ok"] > 0
    # Only what the target did: a request in flight at the drain's deadline may be cancelled, nothing else.
    assert set(report["errors"]) <= {"cancelled"}, report["errors"]
    assert req["http_errors"] == 0
    assert all_gone, "a worker or the mock outlived bench"
