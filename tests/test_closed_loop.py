"""The closed loop's virtual users, both kinds: coroutines (aiohttp, h2) and callback chains (fast, via ``submit``).

Each test runs ``bench.run`` for real (worker processes, the bundled mock on
127.0.0.1) once per transport, so the coroutine user and the callback-driven
user must show the same behaviour: exact request budgets, the concurrency a
ramp asks for, a share that ends for every user at once, and an interrupted
run whose held requests are cancelled and counted.
"""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import yaml

import bench

pytestmark = pytest.mark.slow

USERS = ("aiohttp", "fast")  # aiohttp: coroutine users; fast: users driven by the transport's callbacks


def run_profile(tmp_path: Path, data: dict, on_progress=None) -> bench.RunResult:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return bench.run(bench.load_profile(path), on_progress=on_progress)


@pytest.mark.parametrize("transport", USERS)
def test_a_request_budget_is_sent_exactly_once_over_all_users(tmp_path: Path, transport: str) -> None:
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "uniform", "min": "0ms", "max": "3ms"}},
            "load": {"concurrency": 7, "requests": 501, "warmup": 13, "workers": 2},
            "client": {"transport": transport},
        },
    )
    req = result.summary["requests"]
    assert (req["sent"], req["ok"], req["client_errors"]) == (501, 501, 0)
    assert result.summary["warmup"]["sent"] == 13


@pytest.mark.parametrize("transport", USERS)
def test_every_request_has_its_csv_row(tmp_path: Path, transport: str) -> None:
    # With the CSV on, the callback-driven user leaves its lean lane: a row per request, phases and statuses as counted.
    rows_path = tmp_path / "rows.csv"
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "1ms"}, "errors": {"rate": 0.2, "statuses": [503]}, "seed": 4},
            "load": {"concurrency": 5, "requests": 300, "warmup": 20, "workers": 2},
            "client": {"transport": transport},
            "output": {"csv": str(rows_path)},
        },
    )
    with open(rows_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    req = result.summary["requests"]
    assert req["sent"] == 300 and req["ok"] + req["http_errors"] == 300
    assert sum(r["phase"] == "measured" for r in rows) == 300 and sum(r["phase"] == "warmup" for r in rows) == 20
    assert sum(r["status"] == "503" for r in rows if r["phase"] == "measured") == req["http_errors"] > 0


@pytest.mark.parametrize("transport", USERS)
def test_concurrency_follows_the_stages(tmp_path: Path, transport: str) -> None:
    # A 20 ms server: c users complete about c / 20 ms requests per second, so each second's count shows c.
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "20ms"}},
            "load": {
                "workers": 1,
                "stages": [
                    {"duration": "0s", "concurrency": 2},
                    {"duration": "1s", "concurrency": 2},
                    {"duration": "0s", "concurrency": 8},
                    {"duration": "1s", "concurrency": 8},
                    {"duration": "0s", "concurrency": 1},
                    {"duration": "2s", "concurrency": 1},
                ],
            },
            "client": {"transport": transport},
        },
    )
    # Second 2 mixes the last requests of users above the new limit (the limit is looked at every 50 ms): second 3 is clean.
    per_second = {p["second"]: p["completed"] for p in result.summary["series"]}
    two, eight, one = per_second[0], per_second[1], per_second[3]
    assert 50 <= two <= 100, per_second  # at most 2 / 20 ms = 100 per second
    assert 2.5 <= eight / two <= 4.5, per_second  # 4x the users
    assert 0.35 <= one / two <= 0.65, per_second  # half
    assert result.summary["requests"]["client_errors"] == 0


@pytest.mark.parametrize("transport", USERS)
def test_interrupted_run_cancels_held_requests_and_counts_them(tmp_path: Path, transport: str) -> None:
    # The mock stops answering at 0.5 s; Ctrl-C at 1 s; the drain waits at most 3 s, then cancels what is held.
    interrupted: list[float] = []

    def interrupt(snapshot) -> None:
        if snapshot.elapsed_s >= 1.0 and not interrupted:
            interrupted.append(snapshot.elapsed_s)
            os.kill(os.getpid(), signal.SIGINT)

    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "stall": {"at": "0.5s", "duration": "20s"}},
            "load": {"concurrency": 4, "duration": "30s", "workers": 1},
            "target": {"timeout": "20s"},
            "client": {"transport": transport},
        },
        on_progress=interrupt,
    )
    assert result.status == "interrupted"
    req = result.summary["requests"]
    assert result.summary["errors"].get("cancelled") == 4, result.summary["errors"]
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"], req
    assert req["unfinished"] == 0
