"""Baseline vs candidate: `bench compare`, scenarios, and the outputs other tools read (.hlog, JUnit, CSV, Markdown)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

import bench
from bench.engine.results.compare import CompareError, parse_bounds

ROOT = Path(__file__).resolve().parent.parent


def cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "140", **(env or {})},
    )


def make_report(tmp_path: Path, name: str, delay: str = "50ms", **load) -> Path:
    """Run a small closed-loop profile against the mock and return its JSON report."""
    out = tmp_path / f"{name}.json"
    profile = tmp_path / f"{name}.yaml"
    data = {
        "name": name,
        "mock": {"latency": {"model": "fixed", "delay": delay}},
        "load": {"concurrency": 8, "requests": 240, "workers": 1, **load},
        "sla": {"p95": "500ms", "error_rate": "1%"},
        "output": {"json": str(out), "hlog": str(tmp_path / f"{name}.hlog"), "junit": str(tmp_path / f"{name}.xml"),
                   "series_csv": str(tmp_path / f"{name}-series.csv")},
    }
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    result = bench.run(bench.load_profile(profile))
    assert result.status == "completed"
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("reports")
    return {
        "base": make_report(tmp, "base"),
        "same": make_report(tmp, "same"),
        "slower": make_report(tmp, "slower", delay="70ms"),
        "open": make_report(tmp, "open", concurrency=None, rate="200/s", duration="1s"),
    }


@pytest.mark.slow
def test_two_runs_of_the_same_profile_show_no_regression(reports, tmp_path):
    # The median is robust to the odd slow request a busy CI machine adds; the mock's delay is 50 ms.
    result = cli(["compare", str(reports["base"]), str(reports["same"]), "--fail-on-regression", "p50=10%,error_rate=0.5pp"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no regression beyond p50=10%, error_rate=0.5pp" in result.stdout
    assert "p99.9" in result.stdout and "base.json" in result.stdout


@pytest.mark.slow
def test_a_slower_mock_is_a_regression_and_exits_1(reports, tmp_path):
    result = cli(["compare", str(reports["base"]), str(reports["slower"]), "--fail-on-regression", "p50=10%"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "p50 regressed beyond p50=10% in slower.json" in result.stderr
    # Without bounds it reports, and does not gate.
    assert cli(["compare", str(reports["base"]), str(reports["slower"])], tmp_path).returncode == 0


@pytest.mark.slow
def test_mismatched_load_models_are_refused(reports, tmp_path):
    result = cli(["compare", str(reports["base"]), str(reports["open"])], tmp_path)
    assert result.returncode == 2
    assert "differ in load model: 'closed' vs 'open'" in result.stderr
    forced = cli(["compare", str(reports["base"]), str(reports["open"]), "--force"], tmp_path)
    assert forced.returncode == 0 and "warning" in forced.stderr


@pytest.mark.slow
def test_several_runs_per_side_give_median_and_interval(reports, tmp_path):
    result = cli(["compare", str(reports["base"]), str(reports["same"]), "--", str(reports["slower"]), str(reports["slower"])], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "median of runs" in result.stdout and "base.json + same.json" in result.stdout
    assert "[" in result.stdout  # the confidence interval


@pytest.mark.slow
def test_compare_uses_the_stored_histograms_not_the_rounded_summary(reports):
    from bench.engine.results.compare import load_run

    run = load_run(reports["base"])
    data = json.loads(reports["base"].read_text())
    histogram = HdrHistogram.decode(data["histograms"]["latency"])
    assert run.values["p99"] == histogram.get_value_at_percentile(99) / 1000
    assert run.values["p95"] == pytest.approx(data["latency"]["p95"])


@pytest.mark.slow
def test_hlog_decodes_back_to_the_report(reports):
    data = json.loads(reports["base"].read_text())
    hlog = reports["base"].with_suffix(".hlog")
    reader = HistogramLogReader(str(hlog), HdrHistogram(1, 3_600_000_000, 3))
    total = HdrHistogram(1, 3_600_000_000, 3)
    intervals = 0
    while True:
        interval = reader.get_next_interval_histogram()
        if interval is None:
            break
        total.add(interval)
        intervals += 1
    reader.close()
    assert intervals >= 1
    assert total.get_total_count() == data["latency"]["count"] == 240
    for p, key in ((50, "p50"), (95, "p95"), (99, "p99")):
        assert total.get_value_at_percentile(p) / 1000 == pytest.approx(data["latency"][key])


@pytest.mark.slow
def test_junit_has_one_case_per_criterion_with_the_verdict(reports, tmp_path):
    base = ET.parse(reports["base"].with_suffix(".xml")).getroot()
    cases = base.findall(".//testcase")
    assert [c.get("name").split()[0] for c in cases] == ["p95", "error_rate"]
    assert all(c.find("failure") is None for c in cases)
    # A run that fails p95 <= 500ms: that case carries a failure, the other does not.
    slow = make_report(tmp_path, "slowest", delay="600ms", requests=16)
    root = ET.parse(slow.with_suffix(".xml")).getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failing = {c.get("name").split()[0]: c.find("failure") is not None for c in root.findall(".//testcase")}
    assert failing == {"p95": True, "error_rate": False}


@pytest.mark.slow
def test_series_csv_has_a_row_per_second_summing_to_the_total(reports):
    import csv

    data = json.loads(reports["base"].read_text())
    with open(reports["base"].with_name("base-series.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(data["series"]) >= 1
    assert sum(int(r["completed"]) for r in rows) == 240


@pytest.mark.slow
def test_bad_reports_are_exit_2_without_traceback(reports, tmp_path):
    truncated = tmp_path / "truncated.json"
    truncated.write_text(reports["base"].read_text()[:200])
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": "world"}')
    corrupt = tmp_path / "corrupt.json"
    data = json.loads(reports["base"].read_text())
    data["histograms"]["latency"] = "HISTFAAAnotbase64"
    corrupt.write_text(json.dumps(data))
    for bad, words in ((truncated, "truncated"), (foreign, "not a bench JSON report"), (corrupt, "cannot be decoded"), (tmp_path / "nope.json", "not found")):
        result = cli(["compare", str(reports["base"]), str(bad)], tmp_path)
        assert result.returncode == 2, (bad, result.stderr)
        assert words in result.stderr and bad.name in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text, metric, kind, amount",
    [("p95=10%", "p95", "%", 10.0), ("error_rate=0.5pp", "error_rate", "pp", 0.5), ("p99=20ms", "p99", "abs", 20.0), ("rps=5%", "rps", "%", 5.0),
     ("ttft.p95=20ms", "ttft.p95", "abs", 20.0), ("output_tokens_per_s=50/s", "output_tokens_per_s", "abs", 50.0)],
)
def test_parse_bounds(text, metric, kind, amount):
    (bound,) = parse_bounds(text)
    assert (bound.metric, bound.kind, bound.amount) == (metric, kind, amount)


@pytest.mark.parametrize("text", ["p96=10%", "p95=ten", "p95=2pp", "rps=3ms", "ttft.p95=5/s", "ttft.p90=10%", "output_tokens_per_s=3ms"])
def test_parse_bounds_rejects(text):
    with pytest.raises(CompareError):
        parse_bounds(text)


@pytest.mark.slow
def test_compare_profile_runs_both_scenarios_and_the_optimized_client_wins(tmp_path):
    summary = tmp_path / "summary.md"
    result = cli(["run", str(ROOT / "profiles" / "compare.yaml"), "-q", "--requests", "100"], tmp_path, env={"GITHUB_STEP_SUMMARY": str(summary)})
    # The baseline (3 connections, no keep-alive) fails p95 <= 800 ms; the optimized client passes.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Scenarios compared" in result.stdout
    base = json.loads((tmp_path / "compare-baseline.json").read_text())
    optimized = json.loads((tmp_path / "compare-optimized.json").read_text())
    assert base["sla"]["passed"] is False and optimized["sla"]["passed"] is True
    assert optimized["latency"]["p95"] < base["latency"]["p95"] / 2
    assert optimized["rps"] > 2 * base["rps"]
    text = summary.read_text()
    assert text.count("### bench:") == 2 and "SLA not met" in text and "SLA met" in text


def inference_report(tmp_path: Path, name: str, ttft: str) -> Path:
    """A small streamed chat run against the mock's OpenAI endpoint with a fixed time to first token."""
    out = tmp_path / f"{name}.json"
    data = {
        "name": name,
        "target": {"api": "openai-chat", "stream": True, "max_tokens": 16, "timeout": "10s"},
        "data": {"synthetic": {"count": 10, "prompt_tokens": 5, "max_tokens": 16}},
        "mock": {"seed": 3, "openai": {"ttft": {"model": "fixed", "delay": ttft}, "inter_token": {"model": "fixed", "delay": "2ms"},
                                       "output_tokens": {"fixed": 8}}},
        # The warm-up keeps connection set-up and the mock's first streamed answers out of a 40-sample p95.
        "load": {"concurrency": 4, "requests": 40, "warmup": 8, "workers": 1},
        "output": {"json": str(out)},
    }
    profile = tmp_path / f"{name}.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    assert bench.run(bench.load_profile(profile)).status == "completed"
    return out


@pytest.mark.slow
def test_inference_runs_compare_ttft_and_gate_on_it(reports, tmp_path):
    fast, slow = inference_report(tmp_path, "fast-ttft", "20ms"), inference_report(tmp_path, "slow-ttft", "80ms")
    stored = json.loads(fast.read_text())
    decoded = HdrHistogram.decode(stored["histograms"]["ttft"])
    assert decoded.get_total_count() == stored["inference"]["ttft"]["count"] == 40
    result = cli(["compare", str(fast), str(slow), "--fail-on-regression", "ttft.p95=50%"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ttft.p95 regressed beyond ttft.p95=50% in slow-ttft.json" in result.stderr
    assert "tpot.p50" in result.stdout and "output_tokens_per_s" in result.stdout
    # Plain HTTP runs show no inference rows, and a bound on one cannot be judged there.
    plain = cli(["compare", str(reports["base"]), str(reports["same"]), "--fail-on-regression", "ttft.p95=10%"], tmp_path)
    assert plain.returncode == 1 and "ttft.p95: cannot judge" in plain.stderr
    assert "ttft" not in plain.stdout
