"""Repeated runs (--repeat N, load.repeat): the interval arithmetic by hand, the SLA on medians and bounds, and real runs against the mock."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.results.compare import ci95, ci_method, load_runs, order_statistic_rank
from bench.engine.results.gate import Check, Verdict
from bench.engine.repeat import judge, representative, run as run_repeated

ROOT = Path(__file__).resolve().parent.parent


def cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "120"}
    )


def write_profile(tmp_path: Path, name: str = "fixed", sla: dict | None = None, **load) -> Path:
    """A closed loop against the mock answering in exactly 20 ms."""
    data = {
        "name": name,
        "mock": {"latency": {"model": "fixed", "delay": "20ms"}},
        "load": {"concurrency": 4, "requests": 80, "workers": 1, **load},
        "sla": sla if sla is not None else {"p95": "500ms"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- the interval, by hand


def test_student_t_interval_of_the_mean_for_two_to_five_runs() -> None:
    # 10, 12, 14: mean 12, s = 2, t(0.975, 2) = 4.303: 12 -+ 4.303 * 2 / sqrt(3) = 12 -+ 4.9687
    low, high = ci95([14.0, 10.0, 12.0])
    assert ci_method(3) == "student-t"
    assert low == pytest.approx(7.0313, abs=1e-4) and high == pytest.approx(16.9687, abs=1e-4)
    # 1, 3: mean 2, s = sqrt(2), t(0.975, 1) = 12.706: 2 -+ 12.706, the low end clipped at 0 (no metric is negative)
    assert ci95([1.0, 3.0]) == (0.0, pytest.approx(14.706))
    # 5 runs: 100, 102, 104, 106, 108: mean 104, s = sqrt(10), t(0.975, 4) = 2.776: 104 -+ 3.926
    low, high = ci95([100.0, 102.0, 104.0, 106.0, 108.0])
    assert low == pytest.approx(104 - 2.776 * math.sqrt(10) / math.sqrt(5)) and high == pytest.approx(104 + 2.776 * math.sqrt(2))
    # Identical runs: a zero-width interval at the value.
    assert ci95([20.5, 20.5, 20.5]) == (20.5, 20.5)


def test_order_statistic_interval_of_the_median_from_six_runs() -> None:
    # 6 runs: [min, max] covers the median with 1 - 2 (1/2)^6 = 96.9 %; 5 runs would give only 93.75 %.
    assert ci_method(5) == "student-t" and ci_method(6) == "order-statistic"
    assert order_statistic_rank(6) == (1, pytest.approx(1 - 2 / 64))
    assert ci95([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]) == (1.0, 6.0)
    # 9 runs: P(B <= 1) = 10/512, so the 2nd and 8th values cover 96.1 %; the 3rd and 7th would cover only 82 %.
    assert order_statistic_rank(9) == (2, pytest.approx(1 - 2 * 10 / 512))
    assert ci95([float(v) for v in (9, 1, 8, 2, 7, 3, 6, 4, 5)]) == (2.0, 8.0)
    # 17 runs: the textbook 5th and 13th (95.1 %).
    assert order_statistic_rank(17)[0] == 5
    # One run: no interval.
    assert ci95([3.0]) == (None, None) and ci_method(1) is None


def test_an_infinite_run_makes_the_student_t_high_end_infinite() -> None:
    assert ci95([1.0, 2.0, math.inf]) == (1.0, math.inf)


# ---------------------------------------------------------------- the SLA over runs


def _verdicts(profile, values: list[float]) -> list[Verdict]:
    rule = profile.sla[0]
    return [Verdict((Check(rule, v, v <= rule.threshold),)) for v in values]


def test_bound_fails_where_the_median_passes(tmp_path: Path) -> None:
    # p95 of three runs: 80, 90, 99 ms against p95 <= 100 ms. Median 90 passes; the t interval's
    # high end, 89.67 + 4.303 * 9.50 / sqrt(3) = 113.3 ms, does not.
    median_profile = bench.load_profile(write_profile(tmp_path, "median", {"p95": "100ms", "error_rate": "off"}))
    bound_profile = bench.load_profile(write_profile(tmp_path, "bound", {"p95": "100ms", "error_rate": "off", "repeat_judge": "bound"}))
    assert bound_profile.sla_options.repeat_judge == "bound"
    by_median = judge(_verdicts(median_profile, [99.0, 80.0, 90.0]), median_profile)
    by_bound = judge(_verdicts(bound_profile, [99.0, 80.0, 90.0]), bound_profile)
    assert by_median.passed and by_median.checks[0].measured == 90.0
    assert not by_bound.passed and by_bound.checks[0].measured == pytest.approx(113.28, abs=0.01)
    assert by_bound.checks[0].repeat["median"] == 90.0 and by_bound.checks[0].repeat["values"] == [99.0, 80.0, 90.0]
    # A >= criterion's pessimistic end is the low one.
    rps_profile = bench.load_profile(write_profile(tmp_path, "rps", {"min_rps": "100/s", "error_rate": "off", "repeat_judge": "bound"}))
    by_low = judge(_verdicts(rps_profile, [120.0, 110.0, 130.0]), rps_profile)
    assert by_low.checks[0].repeat["bound"] == pytest.approx(120 - 4.303 * 10 / math.sqrt(3), abs=0.01)
    assert by_low.passed is False  # 95.2 req/s < 100


def test_a_criterion_not_measurable_in_one_run_is_not_measurable(tmp_path: Path) -> None:
    profile = bench.load_profile(write_profile(tmp_path, "p", {"p95": "100ms", "error_rate": "off"}))
    rule = profile.sla[0]
    verdicts = [Verdict((Check(rule, 50.0, True),)), Verdict((Check(rule, None, False, "not measurable", 0, "no value was measured"),))]
    check = judge(verdicts, profile).checks[0]
    assert check.status == "not measurable" and not check.passed and "run(s) 2" in check.note


def test_repeat_fields_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"load": {"concurrency": 1, "requests": 1, "repeat": 0}}))
    with pytest.raises(bench.ProfileError, match="load.repeat.*at least 1"):
        bench.load_profile(bad)
    bad.write_text(yaml.safe_dump({"load": {"concurrency": 1, "requests": 1}, "sla": {"p95": "1s", "repeat_judge": "worst"}}))
    with pytest.raises(bench.ProfileError, match="sla.repeat_judge.*median.*bound"):
        bench.load_profile(bad)
    assert bench.load_profile(write_profile(tmp_path, repeat=4)).repeat == 4


def test_repeat_zero_on_the_command_line_exits_2_naming_the_flag(tmp_path: Path) -> None:
    result = cli(["run", str(write_profile(tmp_path)), "--repeat", "0"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: --repeat") and "at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_median_run_is_the_middle_one_by_p95() -> None:
    class R:
        def __init__(self, p95):
            self.summary = {"latency": {"p95": p95}}

    assert representative([R(30.0), R(10.0), R(20.0)]) == 2
    assert representative([R(40.0), R(10.0), R(30.0), R(20.0)]) == 3  # even: the lower middle one (20)


# ---------------------------------------------------------------- real runs against the mock


@pytest.fixture(scope="module")
def repeated(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("repeat")
    out = tmp / "fixed.json"
    result = cli(["run", str(write_profile(tmp)), "--repeat", "3", "--json", str(out), "--junit", str(tmp / "fixed.xml")], tmp)
    return out, result


@pytest.mark.slow
def test_repeat_3_runs_three_times_and_reports_the_aggregate(repeated) -> None:
    out, result = repeated
    assert result.returncode == 0, result.stdout + result.stderr
    for k in (1, 2, 3):
        assert f"run {k} of 3" in result.stdout
    assert "median" in result.stdout and "95 % CI" in result.stdout and "Student-t" in result.stdout
    report = json.loads(out.read_text())
    assert len(report["runs"]) == 3 and report["repeat"]["planned"] == 3 and report["status"] == "completed"
    assert [r["profile"]["load"]["seed"] for r in report["runs"]] == [1, 2, 3]  # independent samples
    assert all(r["requests"]["sent"] == 80 and "latency" in r["histograms"] for r in report["runs"])
    agg = report["aggregate"]
    assert agg["method"] == "student-t" and agg["runs"] == 3 and agg["counted_runs"] == [1, 2, 3]
    p95 = agg["latency"]["p95"]
    assert p95["values"] == [r["latency"]["p95"] for r in report["runs"]]
    assert p95["median"] == sorted(p95["values"])[1]
    # A mock answering in exactly 20 ms: every run's p50 a little above 20 ms, and a narrow interval around it.
    p50 = agg["latency"]["p50"]
    assert 20 <= p50["ci95_low"] <= p50["median"] <= p50["ci95_high"] < 30
    assert p50["ci95_high"] - p50["ci95_low"] < 5
    assert agg["error_rate"]["median"] == 0 and "ttft" not in agg
    # The top level is the median run (by p95), judged over all runs.
    median_run = report["runs"][report["repeat"]["median_run"] - 1]
    assert report["latency"] == median_run["latency"] and report["histograms"] == median_run["histograms"]
    check = report["sla"]["checks"][0]
    assert check["measured"] == p95["median"] and check["repeat"]["judged_on"] == "median" and report["sla"]["passed"]
    assert "<testsuite" in (out.parent / "fixed.xml").read_text()


@pytest.mark.slow
def test_compare_reads_a_repeated_report_as_its_runs(repeated, tmp_path: Path) -> None:
    out, _ = repeated
    assert [r.label for r in load_runs(out)] == ["fixed.json run 1", "fixed.json run 2", "fixed.json run 3"]
    result = cli(["compare", str(out), str(out), "--fail-on-regression", "p95=10%"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fixed.json (3 runs)" in result.stdout and "[" in result.stdout  # medians with intervals


@pytest.mark.slow
def test_the_sla_on_the_bound_fails_where_the_median_passes(tmp_path: Path) -> None:
    # A lognormal mock and few requests: the runs' p95 spread widely. The first repeat (threshold far away)
    # measures the median and the high end; a threshold between them passes on the median and fails on the bound.
    mock = {"latency": {"model": "lognormal", "median": "40ms", "p95": "200ms"}, "seed": 3}
    profile = tmp_path / "spread.yaml"

    def repeat(threshold: str, judge_on: str) -> tuple[int, dict]:
        data = {"name": "spread", "mock": mock, "load": {"concurrency": 4, "requests": 40, "workers": 1, "repeat": 3},
                "sla": {"p95": threshold, "error_rate": "off", "repeat_judge": judge_on}}  # fmt: skip
        profile.write_text(yaml.safe_dump(data, sort_keys=False))
        out = tmp_path / f"{judge_on}.json"
        result = run_repeated(bench.load_profile(profile, {"json": str(out)}))
        return result, json.loads(out.read_text())

    first, report = repeat("10s", "median")
    spread = report["sla"]["checks"][0]["repeat"]
    assert first.passed and spread["ci95_high"] - spread["median"] > 20, spread
    threshold = (spread["median"] + spread["ci95_high"]) / 2
    second, report = repeat(f"{threshold:.3f}ms", "bound")
    check = report["sla"]["checks"][0]
    assert check["repeat"]["median"] < threshold < check["repeat"]["ci95_high"], check
    assert check["passed"] is False and check["measured"] == check["repeat"]["ci95_high"]
    assert not second.verdict.passed and report["sla"]["passed"] is False


@pytest.mark.slow
def test_ctrl_c_in_the_second_run_writes_the_completed_run(tmp_path: Path) -> None:
    out = tmp_path / "cut.json"
    profile = bench.load_profile(write_profile(tmp_path, requests=None, duration="1500ms"), {"json": str(out), "repeat": "3"})
    running = [0]
    sent: list[int] = []

    def on_progress(snapshot) -> None:
        if running[0] == 2 and snapshot.elapsed_s >= 0.5 and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    result = run_repeated(profile, on_progress, on_run_start=lambda k, n, p: running.__setitem__(0, k))
    assert result.status == "interrupted" and len(result.runs) == 2
    report = json.loads(out.read_text())
    assert report["status"] == "interrupted" and report["complete"] is False
    assert [r["status"] for r in report["runs"]] == ["completed", "interrupted"]
    assert report["aggregate"]["counted_runs"] == [1] and report["aggregate"]["method"] == "none"
    assert report["aggregate"]["latency"]["p95"]["ci95_low"] is None
    assert any("interrupted" in m for m in report["messages"])
