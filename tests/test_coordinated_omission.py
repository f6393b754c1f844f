"""Coordinated omission, shown the way wrk2 shows it: a server that stalls for 1 s in the middle of a run.

Real worker processes against the real mock server, whose stall mode holds
every response due in [1 s, 2 s) after its first request until 2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import bench

pytestmark = pytest.mark.slow

STALL = {"at": "1s", "duration": "1s"}


def run_profile(tmp_path: Path, data: dict) -> bench.RunResult:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return bench.run(bench.load_profile(path))


def test_open_loop_reports_the_stall_and_service_time_does_not(tmp_path: Path) -> None:
    # 200 requests/s for 4 s = 800 requests, at most 4 in flight (like 4 connections).
    # About 200 requests fall due during the stall: they cannot be sent until a
    # connection frees up at 2 s, so from their intended send time they waited
    # up to a second. That is a quarter of the run, so p99 must show the stall.
    # Only the 4 requests in flight when the stall began waited inside the
    # server (0.5 % of the run): from the actual send, p99 stays near the 5 ms delay.
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "stall": STALL},
            "load": {"rate": "200/s", "duration": "4s", "workers": 1, "max_in_flight": 4},
        },
    )
    summary = result.summary
    assert summary["requests"]["sent"] == 800
    assert summary["requests"]["ok"] == 800
    latency, service = summary["latency"], summary["service"]
    assert latency["p99"] >= 900, latency  # the stall, seen by the users who were kept waiting
    assert latency["p90"] >= 300, latency  # not a single outlier: a fifth of the run waited
    assert service["p99"] < 100, service  # the service-time view hides it: coordinated omission
    assert service["max"] >= 900  # ...except for the few requests the server really held
    assert summary["schedule_lag"]["p99"] >= 800  # and the generator says why: requests left late
    assert result.report["latency_meaning"].startswith("response time: from the intended send")


def test_closed_loop_is_labelled_service_time_and_hides_the_stall(tmp_path: Path) -> None:
    # The same server and stall, 4 virtual users: during the stall they all wait
    # and send nothing, so only 4 samples are slow, exactly what wrk2's
    # demonstration shows for closed-loop tools.
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "stall": STALL},
            "load": {"concurrency": 4, "duration": "3s", "workers": 1},
        },
    )
    summary = result.summary
    assert result.report["latency_meaning"].startswith("service time")
    assert summary["latency"]["max"] >= 900
    assert 4 / summary["latency"]["count"] < 0.01, "enough samples that the four held ones sit above p99"
    assert summary["latency"]["p99"] < 100, summary["latency"]  # the stall is invisible in p99
