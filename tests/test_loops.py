"""The open and closed loops, each both ways of sending: coroutines and tasks (aiohttp, h2), and the
transport's callbacks (fast, via ``submit``).

Each test runs ``bench.run`` for real (worker processes, the bundled mock on
127.0.0.1) once per transport, so both ways must show the same behaviour:
exact request budgets with a CSV row per request, the concurrency a ramp asks
for, a share that ends for every user at once, and an interrupted run whose
held requests are cancelled and counted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

import bench
from procs import ctrl_c_at

pytestmark = pytest.mark.slow

USERS = ("aiohttp", "fast")  # aiohttp: coroutines and tasks; fast: requests driven by the transport's callbacks


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
def test_open_loop_sends_a_request_budget_exactly_once_with_a_row_each(tmp_path: Path, transport: str) -> None:
    rows_path = tmp_path / "rows.csv"
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "uniform", "min": "0ms", "max": "3ms"}, "errors": {"rate": 0.2, "statuses": [503]}, "seed": 3},
            "load": {"rate": 1500, "requests": 501, "warmup": 13, "workers": 2},
            "client": {"transport": transport},
            "output": {"csv": str(rows_path)},
        },
    )
    req = result.summary["requests"]
    assert (req["sent"], req["ok"] + req["http_errors"], req["client_errors"]) == (501, 501, 0), req
    assert req["http_errors"] > 0
    assert result.summary["warmup"]["sent"] == 13
    with open(rows_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(r["phase"] == "measured" for r in rows) == 501 and sum(r["phase"] == "warmup" for r in rows) == 13
    assert sum(r["status"] == "503" for r in rows if r["phase"] == "measured") == req["http_errors"]
    # Latency counts from the due time: never less than the service time.
    assert all(float(r["latency_ms"]) >= float(r["service_ms"]) for r in rows if r["latency_ms"])


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
@pytest.mark.parametrize(
    "load, held",
    [
        ({"concurrency": 4}, 4),  # 4 users, each holding one request
        ({"rate": 100, "max_in_flight": 8}, 8),  # the open loop's cap: later requests fall due behind it
    ],
    ids=["closed", "open"],
)
def test_interrupted_run_cancels_held_requests_and_counts_them(tmp_path: Path, transport: str, load: dict, held: int) -> None:
    # The mock stops answering at 0.5 s; Ctrl-C at 1 s; the drain waits at most 3 s, then cancels what is held.
    result = run_profile(
        tmp_path,
        {
            "mock": {"latency": {"model": "fixed", "delay": "5ms"}, "stall": {"at": "0.5s", "duration": "20s"}},
            "load": {**load, "duration": "30s", "workers": 1},
            "target": {"timeout": "20s"},
            "client": {"transport": transport},
        },
        on_progress=ctrl_c_at(1.0),
    )
    assert result.status == "interrupted"
    req = result.summary["requests"]
    assert result.summary["errors"].get("cancelled") == held, result.summary["errors"]
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"], req
    assert req["unfinished"] == 0
    if "rate" in load:
        assert req["due_but_not_sent"] >= 20, req  # about 0.5 s x 100/s fell due behind the full cap
