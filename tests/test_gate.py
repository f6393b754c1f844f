"""bench.engine.results.gate: the SLA verdict from a run summary."""

from __future__ import annotations

import pytest

from bench.engine.results.aggregate import PERCENTILES, latency_stats
from bench.engine.results.gate import Check, Verdict, evaluate, measured_value
from bench.engine.plan.profile import SLA_METRICS, SlaRule, parse_profile
from bench.engine.workers.samples import new_histogram


def rule(name: str, threshold: float) -> SlaRule:
    metric, op, unit = SLA_METRICS[name]
    return SlaRule(name, metric, op, threshold, unit)


def summary(latency=None, error_rate=0.0, rps=100.0) -> dict:
    base = {"p50": 10.0, "p90": 20.0, "p95": 30.0, "p99": 50.0, "p99.9": 80.0, "max": 120.0, "mean": 12.0}
    return {
        "latency": {**base, **(latency or {}), "count": 1000},
        "error_rate": error_rate,
        "rps": rps,
        "requests": {"completed": 1000},
    }


# (summary, rule, expected pass) -- one row per boundary or edge
CASES = [
    (summary(), rule("p95", 40.0), True),  # well below
    (summary(), rule("p95", 30.0), True),  # equal to the threshold passes
    (summary(), rule("p95", 29.999), False),  # just above fails
    (summary({"p95": 30.000001}), rule("p95", 30.0), False),
    (summary(), rule("p50", 10.0), True),
    (summary(), rule("p90", 19.0), False),
    (summary(), rule("p99", 50.0), True),
    (summary(), rule("p99.9", 79.9), False),
    (summary(), rule("max", 120.0), True),
    (summary(), rule("max", 100.0), False),
    (summary(), rule("mean", 12.0), True),
    (summary(), rule("mean", 11.0), False),
    (summary(error_rate=0.01), rule("error_rate", 0.01), True),  # equal passes
    (summary(error_rate=0.0100001), rule("error_rate", 0.01), False),
    (summary(error_rate=0.0), rule("error_rate", 0.0), True),  # zero tolerance, zero errors
    (summary(error_rate=1.0), rule("error_rate", 0.5), False),
    (summary(rps=180.0), rule("min_rps", 180.0), True),  # min_rps uses >=: equal passes
    (summary(rps=179.99), rule("min_rps", 180.0), False),  # below the floor fails
    (summary(rps=1000.0), rule("min_rps", 180.0), True),  # far above passes (not <=)
    (summary({"p95": None}), rule("p95", 1e9), False),  # unmeasured latency fails, whatever the threshold
    (summary(error_rate=None), rule("error_rate", 1.0), False),  # no completed requests: no error rate
    (summary(rps=None), rule("min_rps", 0.001), False),  # no duration: no rate
    (summary({"p99": float("nan")}), rule("p99", 1e9), False),  # NaN never passes
]


@pytest.mark.parametrize(("summary_", "rule_", "expected"), CASES)
def test_rule(summary_, rule_, expected):
    verdict = evaluate(summary_, [rule_])
    (check,) = verdict.checks
    assert check.passed is expected
    assert verdict.passed is expected
    assert check.rule is rule_
    expected_value = summary_["latency"][rule_.metric] if rule_.unit == "ms" else summary_[rule_.metric]
    if expected_value is None:
        assert check.measured is None
    elif expected_value == expected_value:  # not NaN
        assert check.measured == expected_value


def test_min_rps_reads_the_rps_key():
    assert SLA_METRICS["min_rps"] == ("rps", ">=", "req/s")
    assert measured_value(summary(rps=42.0), "rps") == (42.0, 1000)
    assert measured_value(summary(error_rate=0.25), "error_rate") == (0.25, 1000)
    assert measured_value(summary({"p99.9": 7.0}), "p99.9") == (7.0, 1000)


@pytest.mark.parametrize(
    ("outcomes", "passed"),
    [
        ([True, True, True], True),
        ([True, False, True], False),  # one failure fails the gate
        ([False], False),
        ([False, False], False),
        ([], True),  # no criteria: nothing to fail
    ],
)
def test_verdict_passed_is_all(outcomes, passed):
    checks = tuple(Check(rule("p95", 1.0), 0.5, ok) for ok in outcomes)
    assert Verdict(checks).passed is passed


def test_every_check_is_reported_even_after_a_failure():
    rules = [rule("p95", 1.0), rule("error_rate", 0.5), rule("min_rps", 1.0)]
    verdict = evaluate(summary(), rules)
    assert [c.passed for c in verdict.checks] == [False, True, True]
    assert not verdict.passed
    assert [c.rule.name for c in verdict.checks] == ["p95", "error_rate", "min_rps"]
    assert verdict.checks[0].as_dict() == {
        "criterion": "p95",
        "metric": "p95",
        "op": "<=",
        "threshold": 1.0,
        "unit": "ms",
        "measured": 30.0,
        "passed": False,
        "label": "p95 <=",
        "window_s": None,
        "default": False,
        "step": None,
        "samples": 1000,
        "status": "fail",
        "note": "",
    }


def test_every_latency_metric_exists_in_latency_stats():
    # The gate reads summary["latency"][metric]: each latency SLA metric must be a key latency_stats produces.
    h = new_histogram()
    for v in range(1, 1001):
        h.record_value(v * 100)
    stats = latency_stats(h)
    for name, (metric, _op, unit) in SLA_METRICS.items():
        if unit == "ms":  # ttft.p95 reads stat p95 of the ttft histogram's stats
            family, _, stat = metric.partition(".")
            assert stats.get(stat if family in ("ttft", "tpot", "itl") else metric) is not None, name
    assert {f"p{p:g}" for p in PERCENTILES} <= set(stats)


def test_gate_with_rules_from_a_profile():
    profile = parse_profile(
        {"load": {"concurrency": 2, "requests": 10}, "sla": {"p95": "800ms", "error_rate": "1%", "min_rps": "30/m"}}
    )
    ok = evaluate(summary({"p95": 800.0}, error_rate=0.01, rps=0.5), profile.sla)
    assert ok.passed, [c.as_dict() for c in ok.checks]
    slow = evaluate(summary({"p95": 801.0}, error_rate=0.01, rps=0.5), profile.sla)
    assert [c.passed for c in slow.checks] == [False, True, True]
    starved = evaluate(summary({"p95": 1.0}, error_rate=0.0, rps=0.49), profile.sla)
    assert [c.passed for c in starved.checks] == [True, True, False]


# ---------------------------------------------------------------- error-aware, min_samples, windows

from bench.engine.plan.profile import SlaOptions  # noqa: E402


def test_error_aware_latency_counts_failures_as_infinitely_slow():
    s = summary({"p95": 30.0})
    s["latency_error_aware"] = {"count": 1000, "failures": 100, "p95": float("inf"), "p50": 11.0}
    plain = evaluate(s, [rule("p95", 800.0)])
    aware = evaluate(s, [rule("p95", 800.0)], SlaOptions(error_aware=True))
    assert plain.passed and not aware.passed
    assert aware.checks[0].measured == float("inf")
    assert aware.checks[0].as_dict()["measured"] == "inf"  # JSON has no infinity
    # error_rate is not a latency criterion: error_aware does not change it.
    assert evaluate(s, [rule("error_rate", 0.5)], SlaOptions(error_aware=True)).passed


@pytest.mark.parametrize("count, min_samples, status", [(1000, 1000, "pass"), (999, 1000, "not measurable"), (5, 1, "pass")])
def test_min_samples_makes_a_thin_gate_not_measurable(count, min_samples, status):
    s = summary()
    s["latency"]["count"] = count
    check = evaluate(s, [rule("p95", 800.0)], SlaOptions(min_samples=min_samples)).checks[0]
    assert check.status == status
    assert check.passed is (status == "pass")


def window_rule(name: str, threshold: float, seconds: float) -> SlaRule:
    import dataclasses

    return dataclasses.replace(rule(name, threshold), window_s=seconds)


def test_window_criterion_is_judged_on_its_worst_window():
    s = summary()
    s["windows"] = {
        "p95@10s": [
            {"end_second": 9, "value": 100.0, "samples": 500},
            {"end_second": 10, "value": 900.0, "samples": 500},  # one bad window
            {"end_second": 11, "value": 100.0, "samples": 500},
        ]
    }
    check = evaluate(s, [window_rule("p95", 800.0, 10)]).checks[0]
    assert not check.passed and check.measured == 900.0 and "second 11" in check.note
    # min_rps takes the lowest window, not the highest.
    s["windows"]["min_rps@5s"] = [{"end_second": 4, "value": 50.0, "samples": 250}, {"end_second": 5, "value": 500.0, "samples": 2500}]
    check = evaluate(s, [window_rule("min_rps", 100.0, 5)]).checks[0]
    assert check.measured == 50.0 and not check.passed


def test_windows_below_min_samples_are_not_judged():
    s = summary()
    s["windows"] = {"p95@10s": [{"end_second": 9, "value": 5000.0, "samples": 3}, {"end_second": 10, "value": 100.0, "samples": 500}]}
    check = evaluate(s, [window_rule("p95", 800.0, 10)], SlaOptions(min_samples=100)).checks[0]
    assert check.passed and check.measured == 100.0
    s["windows"] = {"p95@10s": [{"end_second": 9, "value": 100.0, "samples": 3}]}
    check = evaluate(s, [window_rule("p95", 800.0, 10)], SlaOptions(min_samples=100)).checks[0]
    assert check.status == "not measurable"


def test_inference_criteria_read_the_inference_section():
    s = summary()
    s["inference"] = {"ttft": {"p95": 420.0, "count": 1000}, "output_tokens_per_s": 900.0}
    s["goodput"] = {"ratio": 0.97}
    rules = [rule("ttft.p95", 500.0), rule("min_output_tokens_per_s", 1000.0), rule("min_goodput", 0.95)]
    verdict = evaluate(s, rules)
    assert [c.passed for c in verdict.checks] == [True, False, True]
    assert verdict.checks[0].samples == 1000
    # A run that streamed nothing cannot pass a TTFT criterion.
    assert evaluate(summary(), [rule("ttft.p95", 500.0)]).checks[0].status == "not measurable"
