"""sla.fail_fast: a run stops as soon as a whole-run criterion can no longer pass, and not a request sooner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import bench
from bench.engine.results.gate import certain_failure
from bench.engine.plan.profile import SlaRule
from bench.engine.workers.samples import new_histogram


def histogram(values_us: list[int]):
    h = new_histogram()
    for v in values_us:
        h.record_value(v)
    return h


P95 = SlaRule("p95", "p95", "<=", 10.0, "ms")
MAX = SlaRule("max", "max", "<=", 10.0, "ms")
ERRORS = SlaRule("error_rate", "error_rate", "<=", 0.02, "ratio")


@pytest.mark.parametrize(
    ("rules", "slow", "failed", "planned", "fails"),
    [
        ([P95], 50, 0, 1000, False),  # exactly 5 % of the planned 1,000 slower: p95 can still pass
        ([P95], 51, 0, 1000, True),  # one more, and no later answer can bring p95 back under 10 ms
        ([P95], 51, 0, 1100, False),  # a longer plan leaves room
        ([MAX], 1, 0, 10**6, True),
        ([ERRORS], 0, 20, 1000, False),
        ([ERRORS], 0, 21, 1000, True),
        ([SlaRule("p95", "p95", "<=", 10.0, "ms", window_s=5.0)], 500, 0, 1000, False),  # windows are judged at the end
    ],
)
def test_a_criterion_fails_for_certain_only_when_no_rest_of_the_run_can_save_it(rules, slow, failed, planned, fails) -> None:
    latency = histogram([2_000] * 100 + [50_000] * slow)
    assert (certain_failure(rules, latency, failed, planned) is not None) is fails


def run(tmp_path: Path, sla: dict, requests: int) -> bench.RunResult:
    path = tmp_path / "p.yaml"
    data = {"mock": {"latency": {"model": "fixed", "delay": "40ms"}}, "load": {"concurrency": 4, "requests": requests, "workers": 1}, "sla": sla}
    path.write_text(yaml.safe_dump(data))
    return bench.run(bench.load_profile(path))


@pytest.mark.slow
def test_a_run_that_cannot_pass_stops_early_with_the_same_verdict(tmp_path: Path) -> None:
    # 4 users against 40 ms answers: 100/s at most, so 2,000 requests would take 20 s; p95 <= 20 ms is lost at request 101.
    result = run(tmp_path, {"p95": "20ms", "fail_fast": True}, 2000)
    assert result.status == "aborted" and not result.passed
    assert result.summary["requests"]["sent"] < 400
    assert any(m.startswith("stopped early (fail_fast)") and "p95 > 20 ms whatever follows" in m for m in result.messages)
    p95 = next(c for c in result.verdict.checks if c.rule.name == "p95")
    assert not p95.passed and p95.measured > 20
    req = result.summary["requests"]
    assert req["sent"] == req["ok"] + req["http_errors"] + req["client_errors"]


@pytest.mark.slow
def test_a_run_that_passes_is_never_cut_short(tmp_path: Path) -> None:
    result = run(tmp_path, {"p95": "500ms", "fail_fast": True}, 60)
    assert result.status == "completed" and result.passed
    assert result.summary["requests"]["sent"] == 60


@pytest.mark.slow
def test_a_session_run_is_judged_on_its_requests_not_its_session_count(tmp_path: Path) -> None:
    """100 sessions of 5 steps are up to 500 requests: 3 failed requests are 0.6 % of them, not 3 % of 100."""
    profile = {
        "name": "ff-sessions",
        "mock": {"latency": {"model": "fixed", "delay": "1ms"}, "flow": True},
        "session": [{"name": f"s{i}", "method": "GET", "path": "/flow/stats"} for i in range(5)],
        "load": {"concurrency": 4, "requests": 100, "workers": 1},
        "sla": {"error_rate": "2%", "fail_fast": True},
    }
    from bench.engine.runner import planned_measured_requests

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    loaded = bench.load_profile(path)
    assert planned_measured_requests(loaded) == 500
    result = bench.run(loaded)
    assert result.status == "completed" and result.summary["requests"]["sent"] == 500


@pytest.mark.slow
def test_responses_that_all_fail_their_check_are_measured_failures_not_unmeasurable(tmp_path: Path) -> None:
    profile = {
        "name": "all-checks-fail",
        "mock": {"latency": {"model": "fixed", "delay": "1ms"}},
        "target": {"checks": {"body_contains": "a string the mock never sends"}},
        "load": {"concurrency": 2, "requests": 20, "workers": 1},
        "sla": {"p95": "1s"},  # and the default error_rate <= 1 %
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    result = bench.run(bench.load_profile(path))
    assert result.summary["requests"]["check_failures"] == 20
    assert result.status == "completed" and not result.passed  # exit 1 (the SLA), not 3 (nothing measured)
    assert not any("no request got an HTTP response" in m for m in result.messages)
