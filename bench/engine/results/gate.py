"""The SLA gate: compare a run's summary with the profile's criteria. Pure; no I/O.

Latency criteria use the summary's ``latency`` distribution (response time
from the intended send in an open loop, service time in a closed loop) over
requests that got an HTTP response of any status; failures count only in
``error_rate``. With ``sla.error_aware: true`` they use the error-aware
distribution instead, where every failed request (HTTP error status or no
response) counts as infinitely slow, so failures can never make a service look
faster.

A criterion measured on fewer than ``min_samples`` requests fails as not
measurable, and so does one with no value at all: a gate never passes on
missing data. A window criterion passes when every full window passes; its
measured value is the worst window's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bench.engine.plan.profile import SlaOptions, SlaRule
from bench.engine.results.windows import WindowSpec

INFERENCE_FAMILIES = ("ttft", "tpot", "itl")
PASS = "pass"
FAIL = "fail"
UNMEASURABLE = "not measurable"


@dataclass(frozen=True, slots=True)
class Check:
    """One criterion's outcome: ``measured`` is None when the run produced no value for it."""

    rule: SlaRule
    measured: float | None
    passed: bool
    status: str = PASS
    samples: int | None = None
    note: str = ""
    #: A repeated run's criterion (see bench.engine.repeat): each run's value, median, ci95_low/high, judged_on, bound.
    repeat: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        extra = {} if self.repeat is None else {"repeat": dict(self.repeat)}
        return {
            "criterion": self.rule.name,
            "label": self.rule.label,
            "metric": self.rule.metric,
            "op": self.rule.op,
            "threshold": self.rule.threshold,
            "unit": self.rule.unit,
            "window_s": self.rule.window_s,
            "default": self.rule.default,
            "step": self.rule.step,
            "measured": _json_number(self.measured),
            "samples": self.samples,
            "status": self.status,
            "passed": self.passed,
            "note": self.note,
            **extra,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]
    aborted: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


#: Above this share of failed requests a run says so loudly, whatever its SLA (or with none).
MOSTLY_FAILED = 0.5


def failure_alarm(summary: Mapping[str, Any]) -> str | None:
    """A loud line when most completed requests failed, naming what they failed with; None otherwise."""
    rate = summary.get("error_rate")
    completed = summary["requests"]["completed"]
    if rate is None or rate <= MOSTLY_FAILED:
        return None
    causes = [(f"status {code}", n) for code, n in summary.get("status_codes", {}).items() if int(code) >= 400]
    causes += list(summary.get("errors", {}).items())
    top = ", ".join(f"{name}: {n:,}" for name, n in sorted(causes, key=lambda c: -c[1])[:3])
    return f"most requests failed: {round(rate * completed):,} of {completed:,} ({rate * 100:.1f} %)" + (f"; {top}" if top else "")


def _json_number(value: float | None) -> float | str | None:
    return "inf" if value == float("inf") else value


def window_key(rule: SlaRule) -> str:
    """The name of a window criterion's series in the summary, e.g. ``p95@10s``."""
    return f"{rule.name}@{rule.window_s:g}s"


def window_specs(rules: Sequence[SlaRule], options: SlaOptions) -> list[WindowSpec]:
    """What the aggregator must compute for the window criteria."""
    return [
        WindowSpec(window_key(r), r.metric, int(r.window_s), options.error_aware and r.unit == "ms")
        for r in rules
        if r.window_s is not None
    ]


def compare(rule: SlaRule, value: float) -> bool:
    return value <= rule.threshold if rule.op == "<=" else value >= rule.threshold


def measured_value(summary: Mapping[str, Any], metric: str, error_aware: bool = False) -> tuple[float | None, int]:
    """The summary's whole-run value for an SLA metric, and how many requests it rests on."""
    completed = summary["requests"]["completed"]
    if metric in ("error_rate", "rps"):
        return summary.get(metric), completed
    if metric == "goodput":
        goodput = summary.get("goodput") or {}
        return goodput.get("ratio"), completed
    inference = summary.get("inference") or {}
    if metric == "output_tokens_per_s":
        return inference.get("output_tokens_per_s"), completed
    family, _, stat = metric.partition(".")
    if family in INFERENCE_FAMILIES:  # ttft.p95, tpot.mean, itl.p99: no value at all when no response was streamed
        stats = inference.get(family) or {}
        return stats.get(stat), stats.get("count", 0) or 0
    source = summary["latency_error_aware"] if error_aware else summary["latency"]
    if metric == "mean" and error_aware:
        failures = source.get("failures", 0)
        return (float("inf") if failures else summary["latency"]["mean"]), source["count"]
    return source.get(metric), source["count"]


def step_value(summary: Mapping[str, Any], rule: SlaRule) -> tuple[float | None, int]:
    """A session step's own value for a criterion (sla.steps.NAME), and how many of its requests it rests on."""
    step = (summary.get("steps") or {}).get(rule.step) or {}
    completed = (step.get("requests") or {}).get("completed", 0)
    if rule.metric in ("error_rate", "rps"):
        return step.get(rule.metric), completed
    latency = step.get("latency") or {}
    return latency.get(rule.metric), latency.get("count", 0) or 0


def evaluate(summary: Mapping[str, Any], rules: Sequence[SlaRule], options: SlaOptions = SlaOptions()) -> Verdict:
    """Check every rule; an unmeasured or under-sampled value fails its rule."""
    checks = []
    for rule in rules:
        error_aware = options.error_aware and rule.unit == "ms"
        if rule.step is not None:
            value, samples = step_value(summary, rule)
            note = ""
        elif rule.window_s is None:
            value, samples = measured_value(summary, rule.metric, error_aware)
            note = ""
        else:
            value, samples, note = _worst_window(summary, rule, options.min_samples)
        if value is None or samples < options.min_samples:
            reason = note or (
                f"measured on {samples} requests, fewer than min_samples {options.min_samples}" if value is not None else "no value was measured"
            )
            checks.append(Check(rule, value, False, UNMEASURABLE, samples, reason))
            continue
        passed = compare(rule, value)
        checks.append(Check(rule, value, passed, PASS if passed else FAIL, samples, note))
    return Verdict(tuple(checks))


#: Whole-run criteria that can fail for certain before a run ends: a latency quantile, the max, the error rate.
_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}


def certain_failure(rules: Sequence[SlaRule], latency: Any, failed: int, planned: int) -> str | None:
    """The first whole-run criterion that can no longer pass, however the rest of a run of ``planned`` requests goes.

    ``latency`` is the measured-phase HdrHistogram (µs) so far and ``failed`` the
    failed requests so far. ``p95 <= T`` fails for certain once more than 5 % of
    ``planned`` responses took longer than T (a run completes at most
    ``planned``, and none of those can get faster); ``error_rate <= r`` once
    more than ``r * planned`` failed; ``max <= T`` once any response took
    longer. Windows, error-aware latency and throughput are left to the end.
    """
    for rule in rules:
        if rule.window_s is not None or rule.step is not None:
            continue
        if rule.metric == "error_rate":
            if failed > rule.threshold * planned:
                return f"{failed} of at most {planned} requests failed, so error_rate > {rule.threshold * 100:g} % whatever follows"
            continue
        quantile = _QUANTILES.get(rule.metric)
        if quantile is None and rule.metric != "max":
            continue
        slower = count_above(latency, rule.threshold * 1000)
        allowed = 0 if rule.metric == "max" else (1 - quantile) * planned  # type: ignore[operator]
        if slower > allowed:
            return (
                f"{slower} of at most {planned} responses took longer than {rule.threshold:g} ms, "
                f"so {rule.metric} > {rule.threshold:g} ms whatever follows"
            )
    return None


def count_above(histogram: Any, threshold_us: float) -> int:
    """Recorded values whose whole bucket lies above ``threshold_us`` (never more than are truly above it)."""
    total = histogram.get_total_count()
    if not total or histogram.get_max_value() <= threshold_us:
        return 0
    index = histogram.get_counts_array_index(int(threshold_us))
    last = min(histogram.get_counts_array_index(histogram.get_max_value()), histogram.counts_len - 1)
    return int(sum(histogram.counts[index + 1 : last + 1]))


def _worst_window(summary: Mapping[str, Any], rule: SlaRule, min_samples: int) -> tuple[float | None, int, str]:
    """The worst judged window's value (windows under min_samples are not judged)."""
    values = summary.get("windows", {}).get(window_key(rule), [])
    judged = [v for v in values if v["value"] is not None and v["samples"] >= min_samples]
    if not judged:
        return None, max((v["samples"] for v in values), default=0), f"no {rule.window_s:g} s window had {min_samples} or more requests"
    pick = max if rule.op == "<=" else min
    worst = pick(judged, key=lambda v: v["value"])
    where = "the whole run (shorter than the window)" if worst["end_second"] < 0 else f"window ending at second {worst['end_second'] + 1}"
    return worst["value"], worst["samples"], f"worst: {where}; {len(judged)} window(s) judged"
