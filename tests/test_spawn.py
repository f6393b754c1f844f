"""Closed-loop users start spread over a window (``load.spawn``) and the report shows the load's shape.

The plan (``SpawnPlan``) is pure and seeded; the Recorder counts sends per
millisecond and ships counts of counts (``generator.send_bursts``). The slow
tests run real workers against the bundled mock with a fixed latency: with
the default spread the sends are not bunched, with ``spawn: 0s`` they are.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.results.aggregate import send_bursts
from bench.engine.errors import ProfileError
from bench.engine.plan.profile import load_profile
from bench.engine.workers.samples import MEASURED, Recorder
from bench.engine.plan.schedule import SPAWN_AUTO_S, SpawnPlan


def closed(tmp_path: Path, load: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(load), encoding="utf-8")
    return load_profile(path).load


# ------------------------------------------------------------------ the plan


def test_a_fixed_window_puts_one_start_in_each_slot_first_user_at_once(tmp_path: Path) -> None:
    load = closed(tmp_path, "load: {concurrency: 16, duration: 5s, spawn: 800ms}")
    plan = SpawnPlan(load, 0, 8)
    dues = [plan.due_s(j) for j in range(8)]
    assert dues[0] == 0.0
    for j in range(1, 8):
        assert j * 0.1 <= dues[j] < (j + 1) * 0.1  # stratified: user j in its own tenth of 800 ms
    assert plan.due_s(8) == 0.0  # beyond the plan (a ramp's user): at once
    assert not plan.waiting_for_response(1)


def test_the_plan_is_seeded_per_seed_and_worker(tmp_path: Path) -> None:
    one = closed(tmp_path, "load: {concurrency: 8, duration: 5s, spawn: 1s, seed: 3}", "a.yaml")
    two = closed(tmp_path, "load: {concurrency: 8, duration: 5s, spawn: 1s, seed: 4}", "b.yaml")
    dues = lambda load, index: [SpawnPlan(load, index, 4).due_s(j) for j in range(4)]  # noqa: E731
    assert dues(one, 0) == dues(one, 0)
    assert dues(one, 0) != dues(two, 0)
    assert dues(one, 0) != dues(one, 1)  # workers draw differently, so their users interleave


def test_spawn_0s_starts_every_user_at_once(tmp_path: Path) -> None:
    plan = SpawnPlan(closed(tmp_path, "load: {concurrency: 8, duration: 5s, spawn: 0s}"), 0, 8)
    assert [plan.due_s(j) for j in range(8)] == [0.0] * 8
    assert not plan.waiting_for_response(0)


def test_auto_spreads_the_rest_over_one_response_time_once_it_is_known(tmp_path: Path) -> None:
    load = closed(tmp_path, "load: {concurrency: 10, duration: 5s}")
    assert load.spawn_s is None
    plan = SpawnPlan(load, 0, 10)
    before = [plan.due_s(j) for j in range(10)]
    assert all(j / 10 * SPAWN_AUTO_S <= before[j] < (j + 1) / 10 * SPAWN_AUTO_S for j in range(1, 10))
    assert plan.waiting_for_response(1)
    plan.response_seen(0.15)  # the first response ended at 150 ms
    after = [plan.due_s(j) for j in range(10)]
    assert after[:2] == before[:2]  # started before 150 ms: unchanged
    later = after[2:]
    assert later == sorted(later) and 0.15 <= later[0] and later[-1] < 0.30  # the rest within [R, 2R)
    assert not plan.waiting_for_response(2)


def test_auto_leaves_a_run_ended_by_its_request_count_alone_unspread(tmp_path: Path) -> None:
    plan = SpawnPlan(closed(tmp_path, "load: {concurrency: 8, requests: 400}"), 0, 8)
    assert [plan.due_s(j) for j in range(8)] == [0.0] * 8 and not plan.waiting_for_response(0)
    plan = SpawnPlan(closed(tmp_path, "load: {concurrency: 8, requests: 400, spawn: 1s}", "b.yaml"), 0, 8)
    assert plan.due_s(7) > 0.8  # asked for: spread


def test_auto_with_a_response_slower_than_the_cap_keeps_the_cap(tmp_path: Path) -> None:
    plan = SpawnPlan(closed(tmp_path, "load: {concurrency: 4, duration: 5s}"), 0, 4)
    before = [plan.due_s(j) for j in range(4)]
    plan.response_seen(3.0)
    assert [plan.due_s(j) for j in range(4)] == before and max(before) < SPAWN_AUTO_S


# ------------------------------------------------------------------ the profile


@pytest.mark.parametrize(
    "load, fragment",
    [
        ("{rate: 10/s, duration: 5s, spawn: 1s}", "open loop"),
        ("{concurrency: 4, duration: 5s, spawn: 2}", "needs a unit"),
        ("{concurrency: 4, duration: 5s, spawn: -1s}", "spawn"),
        ("{concurrency: 4, duration: 5s, spawn: soon}", "expected auto or a duration"),
        ("{concurrency: 4, duration: 2s, spawn: 2s}", "not shorter than the duration"),
    ],
)
def test_bad_spawn_is_refused_with_its_field(tmp_path: Path, load: str, fragment: str) -> None:
    with pytest.raises(ProfileError) as caught:
        closed(tmp_path, f"load: {load}")
    assert caught.value.field == "load.spawn"
    assert fragment in str(caught.value)


def test_spawn_values_and_resolved_form(tmp_path: Path) -> None:
    assert closed(tmp_path, "load: {concurrency: 4, requests: 10, spawn: auto}").spawn_s is None
    assert closed(tmp_path, "load: {concurrency: 4, requests: 10, spawn: 0s}").spawn_s == 0.0
    assert closed(tmp_path, "load: {concurrency: 4, requests: 10, spawn: 0}").spawn_s == 0.0
    path = tmp_path / "r.yaml"
    path.write_text("load: {concurrency: 4, requests: 10, spawn: 250ms}\n")
    profile = load_profile(path)
    assert profile.load.spawn_s == 0.25 and profile.resolved["load"]["spawn"] == "0.25s"
    assert load_profile(path, {"rate": "100/s"}).load.spawn_s is None  # --rate makes it open loop: spawn dropped


# ------------------------------------------------------------------ the shape


def test_recorder_counts_sends_per_millisecond_and_ships_counts_of_counts() -> None:
    rec = Recorder()
    ms = 1_000_000
    for t in (0, 10, 20, ms + 5, 3 * ms, 3 * ms + 1, 3 * ms + 2):  # 3 sends in ms 0, 1 in ms 1, 3 in ms 3
        rec.sent(MEASURED, 10**9 + t)
    first = rec.flush(0, 0, 0, 0.0)
    assert first.bursts == {3: 1, 1: 1}  # ms 3 is still open
    rec.closed_response(MEASURED, 10**9, 10**9 + 3 * ms + 500, 200, 10, again=True)  # a 4th send in ms 3
    last = rec.flush(0, 1, 0, 0.0, final=True)
    assert last.bursts == {4: 1} and rec.sends == 8


def test_send_bursts_percentiles_by_nearest_rank() -> None:
    assert send_bursts({}) is None
    summary = send_bursts({1: 80, 2: 10, 5: 9, 30: 1})
    assert summary == {"busy_ms": 100, "sends": 80 + 20 + 45 + 30, "p50": 1, "p90": 2, "p99": 5, "max": 30}


# ------------------------------------------------------------------ real workers


def run_closed(tmp_path: Path, transport: str, load_extra: dict, csv_path: Path | None = None, latency: str = "50ms") -> dict:
    data = {
        "mock": {"latency": {"model": "fixed", "delay": latency}},
        "load": {"concurrency": 32, "duration": "2s", "workers": 2, **load_extra},
        "client": {"transport": transport},
    }
    if csv_path is not None:
        data["output"] = {"csv": str(csv_path)}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return bench.run(bench.load_profile(path)).summary


@pytest.mark.slow
@pytest.mark.parametrize("transport", ("aiohttp", "fast"))
def test_spread_users_do_not_send_in_bursts_and_spawn_0s_does(tmp_path: Path, transport: str) -> None:
    # One worker, 32 users, 200 ms: 160 sends/s, little enough that aiohttp's own cost does not smear a burst.
    # Measured: spread p50 1, p90 1-2 (both transports); lock-step p90 15 (aiohttp), 32 (fast).
    one = {"workers": 1, "duration": "2s"}
    spread = run_closed(tmp_path, transport, one, latency="200ms")["generator"]["send_bursts"]
    lockstep = run_closed(tmp_path, transport, {**one, "spawn": "0s"}, latency="200ms")["generator"]["send_bursts"]
    assert spread["p50"] == 1 and spread["p90"] <= 3, spread
    assert lockstep["p90"] >= 8, lockstep  # 32 users answered together: their sends share milliseconds


@pytest.mark.slow
def test_a_fixed_window_spreads_the_first_sends_over_it_seeded(tmp_path: Path) -> None:
    def first_sends(seed: int) -> list[float]:
        rows = tmp_path / f"rows-{seed}.csv"
        # A 1 s response: every send in the first 600 ms is a user's first.
        run_closed(tmp_path, "fast", {"spawn": "500ms", "seed": seed, "duration": "1500ms"}, rows, latency="1s")
        with open(rows) as f:
            return sorted(float(r["sent_ms"]) for r in csv.DictReader(f) if float(r["sent_ms"]) < 600)

    one, again, other = first_sends(1), first_sends(1), first_sends(2)
    assert len(one) == 32 and one[0] < 20 and 430 < one[-1] < 520
    gaps = [b - a for a, b in zip(one, one[1:])]
    assert max(gaps) < 70  # no hole: two workers, one start per 1/16 of the window each
    assert max(abs(a - b) for a, b in zip(one, again)) < 10  # the same seed: the same starts (to the timers, on a busy machine)
    assert max(abs(a - b) for a, b in zip(one, other)) > 10


@pytest.mark.slow
def test_session_users_start_spread_too(tmp_path: Path) -> None:
    def first_sends(load_extra: dict) -> list[float]:
        rows = tmp_path / "rows.csv"
        data = {
            "mock": {"latency": {"model": "fixed", "delay": "1s"}},  # every send in the first 600 ms is a user's first step
            "session": [{"name": "home", "path": "/home"}, {"name": "item", "path": "/item"}],
            "load": {"concurrency": 16, "duration": "1500ms", "workers": 2, **load_extra},
            "output": {"csv": str(rows)},
        }
        path = tmp_path / "session.yaml"
        path.write_text(yaml.safe_dump(data))
        bench.run(bench.load_profile(path))
        with open(rows) as f:
            return sorted(float(r["sent_ms"]) for r in csv.DictReader(f) if float(r["sent_ms"]) < 600)

    spread, lockstep = first_sends({"spawn": "500ms"}), first_sends({"spawn": "0s"})
    assert len(spread) == len(lockstep) == 16
    assert spread[0] < 20 and 400 < spread[-1] < 520 and max(b - a for a, b in zip(spread, spread[1:])) < 130
    assert lockstep[-1] - lockstep[0] < 50
