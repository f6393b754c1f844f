"""Runs that must not pass by accident: generator self-check, error-aware latency, min_samples, window aborts.

Each runs real worker processes against the real mock server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.results.selfcheck import assess
from procs import ctrl_c_at

pytestmark = pytest.mark.slow


def write(tmp_path: Path, data: dict, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def run_profile(tmp_path: Path, data: dict) -> bench.RunResult:
    return bench.run(bench.load_profile(write(tmp_path, data)))


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "120"}
    )


def test_an_overloaded_generator_is_flagged_and_strict_fails_the_run(tmp_path: Path) -> None:
    # One worker asked for 100,000,000 requests/s: 2,000 requests due within
    # 20 µs, one every 10 ns, a few dozen clock cycles. No CPU sends a request
    # through CPython that fast (a worker reads the clock for every send; the
    # whole send path takes microseconds), so the generator falls behind on
    # any machine, by a factor of hundreds or more, not by a guess about how
    # fast a core is. The in-flight cap equals the request count, so no request
    # can ever wait for it: the generator is the only possible cause.
    profile = write(
        tmp_path,
        {
            "strict": True,
            "mock": {"latency": {"model": "none"}},
            "load": {"rate": "100000000/s", "requests": 2000, "workers": 1, "max_in_flight": 2000},
            "client": {"pool_size": 16},
            "output": {"json": "report.json"},
        },
    )
    result = cli(["run", str(profile)], cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not be trustworthy" in result.stderr and "the generator could not keep up; add workers" in result.stderr
    assert "max_in_flight" not in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["trusted"] is False
    assert report["generator"]["requested_rps"] == pytest.approx(1e8, rel=1e-3)
    assert report["generator"]["rate_ratio"] < 0.95
    assert any("achieved send rate" in r and "add workers" in r for r in report["trust"]["reasons"])
    assert report["trust"]["generator_limited"] is True
    # Nothing was dropped, and nothing waited for the cap: every scheduled request was sent late instead.
    req = report["requests"]
    assert req["sent"] == req["ok"] == 2000
    assert req["waited_for_cap"] == 0 and req["due_but_not_sent"] == 0


def test_a_run_held_back_by_the_in_flight_cap_names_the_cap_not_the_generator(tmp_path: Path) -> None:
    # 100 requests due at 1,000/s, at most 2 in flight, each held by the server
    # for 20 ms: the last can leave no earlier than 49 x 20 ms after the first,
    # so the send rate is at most about a tenth of the schedule by
    # construction, whatever the CPU. More workers would share the same cap.
    profile = write(
        tmp_path,
        {
            "strict": True,
            "mock": {"latency": {"model": "fixed", "delay": "20ms"}},
            "load": {"rate": "1000/s", "requests": 100, "workers": 1, "max_in_flight": 2},
            "output": {"json": "report.json"},
        },
    )
    result = cli(["run", str(profile)], cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not be trustworthy" in result.stderr and "add workers" not in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["trusted"] is False
    assert report["generator"]["rate_ratio"] < 0.2
    assert report["schedule_lag"]["p99"] > 500
    reasons = report["trust"]["reasons"]
    assert len(reasons) == 2 and all("waited for a free slot" in r and "raise load.max_in_flight" in r for r in reasons), reasons
    assert report["trust"]["generator_limited"] is False  # the target was slow, not bench
    req = report["requests"]
    assert req["sent"] == req["ok"] == 100 and req["waited_for_cap"] > 0


def test_a_saturated_worker_is_named_beside_the_cap() -> None:
    summary = {
        "requests": {"waited_for_cap": 7},
        "generator": {"requested_rps": 1000.0, "achieved_rps": 500.0, "rate_ratio": 0.5, "worker_cpu": {"0": 0.5, "1": 0.99}},
        "schedule_lag": {"p99": 3.0},
    }
    verdict = assess("open", summary)
    (reason,) = verdict["reasons"]
    assert "7 requests waited for a free slot" in reason and "99 % of a CPU core: the generator could not keep up; add workers" in reason
    assert verdict["generator_limited"] is True
    summary["generator"]["worker_cpu"]["1"] = 0.9
    (reason,) = assess("open", summary)["reasons"]
    assert "raise load.max_in_flight" in reason and "add workers" not in reason
    summary["requests"]["waited_for_cap"] = 0
    (reason,) = assess("open", summary)["reasons"]
    assert reason.endswith("the generator could not keep up; add workers or lower the rate")


def test_a_generator_that_keeps_up_is_trusted(tmp_path: Path) -> None:
    result = run_profile(
        tmp_path,
        {"mock": {"latency": {"model": "fixed", "delay": "2ms"}}, "load": {"rate": "200/s", "duration": "2s", "workers": 1}},
    )
    trust = result.summary["trust"]
    assert trust["trusted"], trust["reasons"]
    assert 0.95 <= result.summary["generator"]["rate_ratio"] <= 1.05
    assert result.summary["schedule_lag"]["p99"] < 10


def test_error_aware_latency_fails_a_service_that_is_fast_because_it_fails(tmp_path: Path) -> None:
    # 10 % of answers are 500s and every answer is fast: the plain p95 passes,
    # but counting failures as infinitely slow, p95 (and p90) is infinite.
    data = {
        "mock": {"latency": {"model": "fixed", "delay": "2ms"}, "errors": {"rate": 0.1, "statuses": [500]}, "seed": 3},
        "load": {"concurrency": 10, "requests": 1000, "workers": 1},
        "sla": {"p95": "800ms"},
    }
    plain = run_profile(tmp_path, data)
    latency_check, default_errors = plain.verdict.checks
    assert latency_check.passed  # fast, because it fails
    assert default_errors.rule.default and not default_errors.passed  # the default error criterion catches it
    assert 50 < plain.summary["requests"]["http_errors"] < 150
    data["sla"]["error_aware"] = True
    aware = run_profile(tmp_path, data)
    check = aware.verdict.checks[0]
    assert not check.passed and check.measured == float("inf")
    stats = aware.summary["latency_error_aware"]
    assert stats["failures"] == aware.summary["requests"]["http_errors"]
    assert stats["p50"] < 50  # below the failure share the successes still count
    assert stats["p99"] == float("inf")


def test_a_gate_on_too_few_requests_is_not_measurable(tmp_path: Path) -> None:
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "1ms"}},
            "load": {"concurrency": 2, "requests": 5, "workers": 1},
            "sla": {"p95": "800ms", "min_samples": 100},
        },
    )
    check = result.verdict.checks[0]
    assert check.status == "not measurable" and not result.verdict.passed
    assert "5 requests" in check.note


def test_window_criterion_aborts_the_run_early(tmp_path: Path) -> None:
    # The server stalls from 1 s to 3 s; the responses it held arrive at 3 s,
    # so the 1 s window ending then has a p95 near 2 s, failing p95 <= 500 ms.
    # The run, planned for 20 s, stops right after and exits 1.
    profile = write(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "stall": {"at": "1s", "duration": "2s"}},
            "load": {"rate": "100/s", "duration": "20s", "workers": 1},
            "sla": {"windows": [{"p95": "500ms", "window": "1s", "abort_on_fail": True}]},
            "output": {"json": "report.json"},
        },
    )
    started = time.monotonic()
    result = cli(["run", str(profile)], cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 12, f"the run should stop soon after 3 s, took {elapsed:.1f} s"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "aborted"
    assert any(m.startswith("aborted at") and "p95" in m for m in report["messages"])
    check = report["sla"]["checks"][0]
    assert check["window_s"] == 1 and check["passed"] is False and check["measured"] > 500
    # Still every request sent is counted.
    req = report["requests"]
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"]


def test_window_criterion_passes_when_every_window_passes(tmp_path: Path) -> None:
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}},
            "load": {"rate": "100/s", "duration": "3s", "workers": 1},
            "sla": {"windows": [{"p95": "500ms", "window": "1s"}, {"min_rps": "50/s", "window": "1s"}]},
        },
    )
    assert result.status == "completed"
    assert result.verdict.passed, [c.as_dict() for c in result.verdict.checks]
    values = result.summary["windows"]["p95@1s"]
    assert len(values) >= 2 and all(v["value"] < 500 for v in values)


def test_requests_due_but_never_sent_are_counted_when_interrupted(tmp_path: Path) -> None:
    # Interrupt during a server stall with the in-flight cap reached: the
    # requests that fell due meanwhile never left, and the report says how many.
    path = write(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "stall": {"at": "1s", "duration": "3s"}},
            "load": {"rate": "200/s", "duration": "10s", "workers": 1, "max_in_flight": 4},
            "target": {"timeout": "1s"},
        },
    )
    result = bench.run(bench.load_profile(path), on_progress=ctrl_c_at(1.6))
    assert result.status == "interrupted"
    req = result.summary["requests"]
    # About 0.6 s x 200/s = 120 requests were due during the stall; 4 were in flight.
    assert 60 <= req["due_but_not_sent"] <= 200, req
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"]
    # The 4 held requests were drained within their 1 s timeout, or cancelled: counted either way.
    assert req["unfinished"] == 0


def test_closed_loop_starts_at_the_common_start_and_has_no_phantom_warmup(tmp_path: Path) -> None:
    # Without a warm-up, every request is measured, and none is sent before the common start.
    rows = tmp_path / "rows.csv"
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "2ms"}},
            "load": {"concurrency": 8, "requests": 200, "workers": 2},
            "output": {"csv": str(rows)},
        },
    )
    assert result.summary["warmup"]["sent"] == 0
    assert result.summary["requests"]["sent"] == 200
    import csv

    with open(rows, newline="") as f:
        records = list(csv.DictReader(f))
    assert len(records) == 200 and all(r["phase"] == "measured" for r in records)
    assert min(float(r["sent_ms"]) for r in records) >= 0.0
