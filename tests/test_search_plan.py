"""The capacity search's plan and its probe verdicts, without processes: which level next, when to stop, what is noise."""

from __future__ import annotations

import pytest

from bench.engine.results.gate import Check, Verdict
from bench.engine.plan.profile import SlaRule
from bench.engine.workers.samples import new_histogram
from bench.search.judge import LIMITED, UNMEASURED, judge, quantile_interval
from bench.search.strategy import FAIL, PASS, UNSURE, Plan, parse_level


def searched(plan: Plan, passes) -> list[float]:
    """Drive the plan against a target that passes exactly the levels ``passes`` accepts; the levels probed."""
    probed = []
    while (level := plan.next_level()) is not None:
        assert level not in probed, f"probed {level} twice: {probed}"
        probed.append(level)
        plan.record(level, PASS if passes(level) else FAIL)
        assert len(probed) < 40
    return probed


@pytest.mark.parametrize("capacity", [1, 2, 3, 4, 5, 7, 8, 13, 31, 63, 64])
def test_concurrency_is_found_exactly_in_few_probes(capacity: int) -> None:
    plan = Plan("concurrency", 1, 64)
    probed = searched(plan, lambda level: level <= capacity)
    best, worst = plan.bracket()
    assert best == capacity
    assert worst == (None if capacity == 64 else capacity + 1)  # adjacent integers: the exact answer
    assert len(probed) <= 12, probed
    if capacity == 4:
        assert probed == [1, 2, 4, 8, 6, 5] and len(probed) <= 10


@pytest.mark.parametrize("capacity", [5.0, 80.0, 333.3, 9000.0])
def test_a_rate_is_found_within_the_tolerance(capacity: float) -> None:
    plan = Plan("rate", 1.0, 100_000.0, tolerance=0.1)
    searched(plan, lambda level: level <= capacity)
    best, worst = plan.bracket()
    assert best <= capacity < worst
    assert (worst - best) <= 0.1 * best


def test_large_concurrency_stops_at_the_tolerance_not_at_adjacent_integers() -> None:
    plan = Plan("concurrency", 1, 4096, tolerance=0.1)
    probed = searched(plan, lambda level: level <= 1000)
    best, worst = plan.bracket()
    assert best <= 1000 < worst and worst - best <= max(1, 0.1 * best)
    assert len(probed) <= 16


def test_the_lowest_level_failing_ends_the_search_without_a_capacity() -> None:
    plan = Plan("concurrency", 4, 64)
    assert searched(plan, lambda level: False) == [4]
    assert plan.bracket() == (None, 4)


def test_indeterminate_never_counts_as_a_pass() -> None:
    plan = Plan("concurrency", 1, 64)
    for level, outcome in ((1, PASS), (2, PASS), (4, UNSURE)):
        plan.record(level, outcome)
    assert plan.bracket() == (2, 4) and plan.next_level() == 3


def test_a_pass_above_a_failure_does_not_raise_the_answer() -> None:
    plan = Plan("concurrency", 1, 64)
    for level, outcome in ((4, PASS), (8, FAIL), (6, PASS), (5, FAIL)):
        plan.record(level, outcome)
    assert plan.bracket() == (4, 5)


@pytest.mark.parametrize(("over", "text", "level"), [("concurrency", "16", 16.0), ("rate", "50/s", 50.0), ("rate", "50", 50.0), ("rate", "3/ms", 3000.0)])
def test_levels_are_plain_numbers_in_the_unit_of_over(over: str, text: str, level: float) -> None:
    assert parse_level(over, text) == level


@pytest.mark.parametrize(("over", "text"), [("concurrency", "0"), ("concurrency", "2.5"), ("concurrency", "many"), ("rate", "0/s"), ("rate", "fast")])
def test_bad_levels_are_refused(over: str, text: str) -> None:
    with pytest.raises(ValueError):
        parse_level(over, text)


def report_with(values_us: list[int], trust: dict | None = None) -> dict:
    h = new_histogram()
    for v in values_us:
        h.record_value(v)
    return {"histograms": {"latency": h.encode().decode("ascii")}, "trust": trust or {"trusted": True}, "messages": []}


P95 = SlaRule("p95", "p95", "<=", 50.0, "ms")


def verdict(measured: float, passed: bool) -> Verdict:
    return Verdict((Check(P95, measured, passed, "pass" if passed else "fail", 1000),))


def test_a_p95_far_from_its_threshold_is_a_clear_verdict() -> None:
    fast = report_with([10_000] * 1000)
    assert judge("completed", verdict(10.0, True), fast).outcome == PASS
    slow = report_with([90_000] * 1000)
    assert judge("completed", verdict(90.0, False), slow).outcome == FAIL


def test_a_p95_whose_interval_straddles_the_threshold_is_within_noise() -> None:
    # 100 samples spread 1..100 ms: p95 ~95 ms, and its 95 % interval covers roughly 90-99 ms.
    spread = report_with([i * 1000 for i in range(1, 101)])
    low, high = quantile_interval(__import__("hdrh.histogram").histogram.HdrHistogram.decode(spread["histograms"]["latency"]), 0.95)
    assert low < 95_000 < high
    rule = SlaRule("p95", "p95", "<=", 96.0, "ms")
    close = Verdict((Check(rule, 95.0, True, "pass", 100),))
    result = judge("completed", close, spread)
    assert result.outcome == UNSURE and "within noise of 96 ms" in result.why
    far = Verdict((Check(SlaRule("p95", "p95", "<=", 200.0, "ms"), 95.0, True, "pass", 100),))
    assert judge("completed", far, spread).outcome == PASS


def test_a_generator_limited_or_unanswered_probe_is_no_verdict_on_the_target() -> None:
    limited = report_with([10_000] * 10, trust={"trusted": False, "generator_limited": True, "reasons": ["add workers"]})
    assert judge("completed", verdict(10.0, True), limited).outcome == LIMITED
    capped = report_with([90_000] * 1000, trust={"trusted": False, "generator_limited": False, "reasons": ["raise max_in_flight"]})
    assert judge("completed", verdict(90.0, False), capped).outcome == FAIL  # a slow target held requests back: its failure
    assert judge("unmeasurable", verdict(10.0, False), report_with([])).outcome == UNMEASURED
