"""The live view and the plain status line, as a person reads them: nothing wraps at 80 columns, no number that looks like a fault.

Snapshots come from a real short run (real workers against the mock: warm-up,
a ramp, injected errors) and from constructed Snapshots for the edge cases.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
from rich.console import Console

import bench
from bench.cli import render
from bench.engine.results.aggregate import Snapshot
from bench.engine.plan.schedule import rate_ramp

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"

SENT_VS_DUE = re.compile(r"sent/s ([\d,.]+) of ~?([\d,.]+) due")


def text_of(profile, snap: Snapshot, width: int = 80, console_width: int | None = None) -> str:
    """The view laid out for ``width`` columns, printed on a console ``console_width`` wide (default: as wide)."""
    console = Console(file=io.StringIO(), width=console_width or width, color_system=None, legacy_windows=False)
    console.print(render.live_view(profile, snap, width=width))
    return console.file.getvalue()  # type: ignore[attr-defined]


def assert_fits(profile, snap: Snapshot, width: int = 80) -> str:
    """Laid out for ``width``, printed on a console 4 times wider: no line may pass ``width`` (nothing cropped it),
    and on a ``width`` console the same lines come out (nothing wrapped)."""
    wide = text_of(profile, snap, width, console_width=4 * width)
    lines = [line.rstrip() for line in wide.splitlines()]
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, f"lines over {width} columns:\n" + "\n".join(too_long)
    narrow = [line.rstrip() for line in text_of(profile, snap, width).splitlines()]
    assert narrow == lines, "the view wrapped or was cropped at its own width"
    head, _, body = wide.partition("\n")
    assert "…" not in body and "…" not in head[head.find("  "):], wide  # only a long profile name is shortened
    return wide


def snap(**fields) -> Snapshot:
    """A Snapshot with everything zero or empty unless given."""
    base = dict(
        elapsed_s=0.0, sent=0, completed=0, ok=0, errors=0, in_flight=0, warmup_sent=0,
        total_p50_ms=None, total_p95_ms=None, total_p99_ms=None,
        last_p50_ms=None, last_p95_ms=None, last_p99_ms=None,
        last_rps=0.0, average_rps=0.0, lag_p50_ms=None, lag_p99_ms=None, last_sent_rps=0.0,
        max_worker_cpu=None, workers_done=0, workers=2,
    )
    base.update(fields)
    return Snapshot(**base)


def profile_from(tmp_path: Path, text: str, **overrides):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return bench.load_profile(path, overrides)


RAMP_WITH_ERRORS = """
name: a-ramp-with-a-rather-long-profile-name-for-the-head
target:
  method: GET
  timeout: 300ms
mock:
  latency: {model: lognormal, median: 20ms, p95: 200ms}
  errors: {rate: 0.05, statuses: [500, 503, 429]}
  seed: 5
load:
  rate: 40/s
  warmup: 1s
  workers: 2
  stages:
    - {duration: 2s, rate: 200/s}
    - {duration: 1s, rate: 200/s}
sla:
  p95: 100ms
  p99: 250ms
  error_rate: 1%
"""


@pytest.mark.slow
def test_a_real_ramp_with_warmup_and_errors_reads_right_at_80_and_120_columns(tmp_path: Path) -> None:
    profile = profile_from(tmp_path, RAMP_WITH_ERRORS)
    snaps: list[Snapshot] = []
    result = bench.run(profile, on_progress=snaps.append)
    assert result.summary["requests"]["sent"] > 200
    assert len(snaps) >= 6
    ramp = rate_ramp(profile.load)
    seen_warmup = seen_stage2 = False
    for s in snaps:
        for width in (80, 120):
            text = assert_fits(profile, s, width)
            line = render.status_line(profile, s)
            assert "\n" not in line
            if s.done:
                continue
            if s.sent == 0 and s.warmup_sent:
                seen_warmup = True
                assert "warm-up" in text and "warm-up" in line
                assert "req/s 0" not in text
            for achieved, due in SENT_VS_DUE.findall(text) + SENT_VS_DUE.findall(line):
                achieved_f, due_f = float(achieved.replace(",", "")), float(due.replace(",", ""))
                # The same second on both sides: no "143 of 112" while the rate climbs, no "0 of 200" in warm-up.
                assert due_f == pytest.approx(ramp.integral_to(s.closed_s) - ramp.integral_to(s.closed_s - 1), abs=0.51)
                assert achieved_f <= 1.2 * due_f + 3, (achieved, due, text)
                assert achieved_f > 0, text
            seen_stage2 |= "stage 2/2" in text
    assert seen_warmup and seen_stage2
    final = snaps[-1]
    assert final.done
    text = assert_fits(profile, final, 80)
    assert "done after" in text and "overall" in text
    assert " now" not in text and "last 1 s" not in text
    assert re.search(r"errors [\d,]+ \([\d.]+ %\): ", text), text
    assert "http 5xx" in text and "status 200" in text
    line = render.status_line(profile, final)
    assert "done after" in line and " now" not in line and "http 5xx" in line


@pytest.mark.slow
def test_a_real_inference_run_shows_ttft_tpot_itl_and_tokens(tmp_path: Path) -> None:
    profile = bench.load_profile(PROFILES / "openai-chat.yaml", {"requests": 24, "json": str(tmp_path / "r.json")})
    snaps: list[Snapshot] = []
    bench.run(profile, on_progress=snaps.append)
    final = snaps[-1]
    assert final.ttft_p95_ms is not None and final.tpot_p95_ms is not None and final.output_tokens_per_s
    for s in snaps:
        assert_fits(profile, s, 80)
    text = assert_fits(profile, final, 80)
    for word in ("TTFT", "TPOT", "ITL", "output tokens/s", "p95 <= 800 ms", "p95 <= 40 ms"):
        assert word in text, text
    assert "TTFT p50" in render.status_line(profile, final)


def open_loop(tmp_path: Path):
    return profile_from(
        tmp_path,
        "name: open\ntarget: {method: GET}\nload: {rate: 200/s, duration: 10s, warmup: 2s}\nsla: {p95: 100ms, error_rate: 1%}\n",
    )


def test_warmup_says_warm_up_and_shows_its_progress_not_zero_sent(tmp_path: Path) -> None:
    profile = open_loop(tmp_path)
    s = snap(elapsed_s=1.25, closed_s=1, warmup_sent=250, warmup_completed=245, warmup_errors=3, last_sent_rps=200.0, in_flight=5)
    text = assert_fits(profile, s)
    assert "warm-up" in text and "1.2/2 s" in text and "sent 250" in text
    assert "sent/s 200 of 200 due" in text
    assert "errors 0" not in text  # nothing measured yet: "errors 0" beside warm-up errors would contradict them
    assert not re.search(r"sent/s 0 of", text) and "req/s 0" not in text
    line = render.status_line(profile, s)
    assert "warm-up 1.2/2 s" in line and "sent/s 0" not in line


def test_count_warmup_progress_and_an_eta_for_a_count_based_run(tmp_path: Path) -> None:
    profile = bench.load_profile(PROFILES / "sla.yaml", {})  # 400 requests after 20 warm-up requests
    text = assert_fits(profile, snap(elapsed_s=0.25, warmup_sent=12, in_flight=12))
    assert "warm-up" in text and "12/20 requests" in text and "ETA -" in text
    running = snap(elapsed_s=2.0, sent=180, completed=160, ok=160, measured_s=2.0, average_rps=80.0, last_rps=82.0, closed_s=2)
    text = assert_fits(profile, running)
    assert "160/400 req" in text and "ETA 3.0 s" in text and "warm-up" not in text
    assert "ETA 3.0 s" in render.status_line(profile, running)


def test_during_a_ramp_the_due_rate_is_the_schedules_over_the_same_second_and_the_stage_shows(tmp_path: Path) -> None:
    profile = bench.load_profile(PROFILES / "ramp.yaml", {})  # 50 -> 300/s over 4 s, hold 4 s, down to 100/s over 2 s
    # Second [2, 3): the schedule asks for 50 + 250 * 2.5 / 4 = 206.25 sends on average; an instant value would say otherwise.
    s = snap(elapsed_s=3.25, sent=400, completed=398, ok=398, closed_s=3, last_sent_rps=206.0, last_rps=205.0, average_rps=140.0, measured_s=3.2)
    text = assert_fits(profile, s)
    assert "sent/s 206 of 206 due" in text, text
    assert "stage 1/3: 50 -> 300/s, now 253, 0.8 s left" in text
    later = dataclasses.replace(s, elapsed_s=8.5, closed_s=8, last_sent_rps=300.0)
    text = assert_fits(profile, later)
    assert "stage 3/3: 300 -> 100/s, now 250, 1.5 s left" in text and "sent/s 300 of 300 due" in text
    assert "8.5 s of 10.0 s, 1.5 s left" in text


def test_the_final_frame_shows_the_runs_overall_figures_not_a_partial_second(tmp_path: Path) -> None:
    profile = bench.load_profile(PROFILES / "ramp.yaml", {})
    final = snap(
        elapsed_s=10.25, sent=2300, completed=2300, ok=2300, closed_s=11, last_rps=3.0, last_sent_rps=0.0,
        average_rps=230.0, measured_s=10.0, workers_done=2, total_p50_ms=11.0, total_p95_ms=12.0, total_p99_ms=14.0,
        last_p50_ms=11.0, status_codes=((200, 2300),),
    )
    text = assert_fits(profile, final)
    assert "done after 10.2 s" in text and "req/s 230 overall" in text and "completed 2,300 in 10.0 s" in text
    assert "now" not in text and "req/s 3" not in text and "last 1 s" not in text and "due" not in text
    line = render.status_line(profile, final)
    assert "done after" in line and "230 req/s overall" in line and "now" not in line


def test_draining_after_the_schedule_ends(tmp_path: Path) -> None:
    profile = open_loop(tmp_path)
    s = snap(elapsed_s=12.25, sent=2000, completed=1990, ok=1990, in_flight=10, closed_s=12, last_rps=40.0, average_rps=199.0, measured_s=10.0)
    text = assert_fits(profile, s)
    assert "12.2 s, schedule ended at 12.0 s" in text and "draining: nothing more due, 10 in flight" in text
    assert "sent/s" not in text and " of 12.0 s" not in text
    line = render.status_line(profile, s)
    assert "draining" in line and "sent/s" not in line


def test_errors_by_kind_and_status_codes_fit_at_80_columns(tmp_path: Path) -> None:
    profile = open_loop(tmp_path)
    s = snap(
        elapsed_s=6.0, sent=800, completed=790, ok=700, errors=90, http_errors=60, in_flight=10, closed_s=6,
        last_rps=200.0, average_rps=198.0, measured_s=4.0, last_sent_rps=200.0,
        status_codes=((200, 700), (503, 30), (500, 20), (429, 10), (404, 3), (502, 2)),
        error_kinds=(("timeout", 20), ("connect", 6), ("read", 3), ("check", 1)),
    )
    text = assert_fits(profile, s)
    assert "errors 90 (11.39 %): http 5xx 52, timeout 20, http 4xx 13, connect 6, +2 more" in text, text  # 83 columns in full
    assert "status 200 700, 503 30" in text
    line = render.status_line(profile, s)
    assert "http 5xx 52" in line and "timeout 20" in line


def style_of(profile, s: Snapshot, value: str) -> str | None:
    """The colour the view gives the first cell that reads ``value``."""
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")
    for segment in console.render(render.live_view(profile, s)):
        if segment.text.strip() == value and segment.style is not None and segment.style.color is not None:
            return segment.style.color.name
    return None


def test_inference_percentiles_are_coloured_against_their_sla() -> None:
    profile = bench.load_profile(PROFILES / "openai-chat.yaml", {})  # ttft.p95 <= 800 ms, tpot.p95 <= 40 ms
    s = snap(
        elapsed_s=4.0, sent=30, completed=22, ok=22, closed_s=4, last_rps=6.0, average_rps=6.0, measured_s=3.5,
        ttft_p50_ms=210.0, ttft_p95_ms=950.0, tpot_p50_ms=22.5, tpot_p95_ms=31.0, itl_p50_ms=22.4, itl_p95_ms=24.0,
        output_tokens=700, output_tokens_per_s=200.0, total_p95_ms=1200.0,
    )
    assert_fits(profile, s)
    assert style_of(profile, s, "950.00 ms") == "red"
    assert style_of(profile, s, "31.00 ms") == "green"
    assert style_of(profile, s, "210.00 ms") is None  # no criterion on ttft.p50


def test_latency_percentiles_are_coloured_against_their_sla(tmp_path: Path) -> None:
    profile = open_loop(tmp_path)  # p95 <= 100 ms
    s = snap(elapsed_s=5.0, sent=600, completed=600, ok=600, closed_s=5, total_p50_ms=20.0, total_p95_ms=120.0, total_p99_ms=300.0,
             last_p95_ms=80.0, measured_s=3.0, average_rps=200.0, last_rps=200.0)
    assert style_of(profile, s, "120.00 ms") == "red"
    assert style_of(profile, s, "80.00 ms") == "green"


def test_an_interrupted_run_says_so_while_it_drains_and_at_the_end(tmp_path: Path) -> None:
    profile = open_loop(tmp_path)
    s = snap(elapsed_s=4.25, sent=450, completed=440, ok=440, in_flight=10, closed_s=4, last_sent_rps=0.0, last_rps=150.0,
             average_rps=200.0, measured_s=2.2, stopping="interrupted")
    text = assert_fits(profile, s)
    assert "draining: interrupted, stopped sending, 10 in flight" in text
    assert "sent/s" not in text and "left" not in text
    final = dataclasses.replace(s, workers_done=2, in_flight=0)
    text = assert_fits(profile, final)
    assert "stopped (interrupted) after 4.2 s" in text and "done" not in text and "now" not in text
    assert "stopped (interrupted)" in render.status_line(profile, final)


def test_many_criteria_share_the_sla_column_without_widening_the_table(tmp_path: Path) -> None:
    profile = profile_from(
        tmp_path,
        "name: many\ntarget: {method: GET}\nload: {rate: 200/s, duration: 10s}\n"
        "sla:\n  mean: 60ms\n  p50: 50ms\n  p95: 100ms\n  p99: 250ms\n  max: 1s\n  ttft.p95: 800ms\n"
        "  windows:\n    - {p95: 150ms, window: 10s}\n",
    )
    s = snap(elapsed_s=5.0, sent=600, completed=600, ok=600, closed_s=5, total_p50_ms=20.0, total_p95_ms=1120.0, total_p99_ms=1300.0,
             total_max_ms=2000.0, measured_s=3.0, average_rps=200.0, last_rps=200.0, last_sent_rps=200.0, ttft_p50_ms=1234.5, ttft_p95_ms=2345.6)
    text = assert_fits(profile, s, 80)
    assert "p50 <= 50 ms, +5 more" in text, text  # criteria on shown columns first, as many as fit
    wide = assert_fits(profile, s, 120)
    assert "p50 <= 50 ms, p95 <= 100 ms, p99 <= 250 ms, +3 more" in wide, wide
    assert style_of(profile, s, "1.120 s") == "red" and style_of(profile, s, "20.00 ms") == "green"


def test_the_run_header_names_what_is_sent() -> None:
    """An API preset sends POST to its path, whatever target.method says; a plain profile sends its method."""
    import bench

    def header(path: Path) -> str:
        console = Console(file=io.StringIO(), width=100, color_system=None, legacy_windows=False)
        console.print(render.run_header(bench.load_profile(path), "0"))
        return console.file.getvalue()

    assert "target  POST openai-chat on bundled mock server" in header(PROFILES / "openai-chat.yaml")
    assert "target  GET bundled mock server" in header(PROFILES / "ramp.yaml")
