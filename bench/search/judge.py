"""One probe's verdict for a capacity search: pass, fail, within noise, or not a verdict on the target at all. Pure.

A probe is judged by the profile's whole SLA, as ``bench run`` judges it. On
top of that, a latency percentile criterion whose 95 % confidence interval
(from the sample count: the order statistics around the quantile's rank)
straddles its threshold is *within noise*: the same level measured again
could go either way, so the search measures it longer, and if it stays
within noise it is never counted as a pass. A probe where the generator
itself could not keep up, or where no request got an answer, says nothing
about the target: the search stops there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from hdrh.histogram import HdrHistogram

from bench.engine.results.gate import Verdict
from bench.search.strategy import FAIL, PASS, UNSURE

LIMITED = "generator-limited"
UNMEASURED = "not measured"
STOPPED = "stopped"  # interrupted
Z95 = 1.96
_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
_HISTOGRAM_OF = {"": "latency", "ttft": "ttft", "tpot": "tpot", "itl": "itl"}


@dataclass(frozen=True, slots=True)
class ProbeVerdict:
    outcome: str  # PASS, FAIL, UNSURE, LIMITED, UNMEASURED, STOPPED
    why: str


def judge(status: str, verdict: Verdict, report: Mapping[str, Any]) -> ProbeVerdict:
    """Classify a probe from its run status, SLA verdict and report (summary, trust, histograms)."""
    if status == "interrupted":
        return ProbeVerdict(STOPPED, "interrupted")
    if status in ("crashed", "unmeasurable"):
        return ProbeVerdict(UNMEASURED, "; ".join(report.get("messages") or [status]))
    trust = report.get("trust") or {}
    if trust.get("generator_limited"):
        return ProbeVerdict(LIMITED, "the generator, not the target, was the bottleneck: " + "; ".join(trust.get("reasons", [])))
    noisy = {i: note for i, c in enumerate(verdict.checks) if (note := within_noise(c, report)) is not None}
    clear_failures = [c for i, c in enumerate(verdict.checks) if not c.passed and i not in noisy]
    if clear_failures:
        return ProbeVerdict(FAIL, "; ".join(_shown(c) for c in clear_failures))
    if noisy:  # passing or failing, the same level measured again could go the other way
        return ProbeVerdict(UNSURE, "; ".join(noisy.values()))
    if status == "aborted":  # an abort_on_fail window, judged on the window
        return ProbeVerdict(FAIL, "; ".join(report.get("messages") or ["aborted"]))
    return ProbeVerdict(PASS, "; ".join(_shown(c) for c in verdict.checks) or "no SLA criteria")


def _shown(check: Any) -> str:
    rule = check.rule
    if check.measured is None:
        return f"{rule.name} not measurable"
    value = f"{check.measured:.4g} ms" if rule.unit == "ms" else (f"{check.measured * 100:.3g} %" if rule.unit == "ratio" else f"{check.measured:.4g} {rule.unit}")
    return f"{rule.name} {value}"


def within_noise(check: Any, report: Mapping[str, Any]) -> str | None:
    """A note when a latency percentile's 95 % confidence interval straddles its threshold, else None."""
    rule = check.rule
    if rule.window_s is not None or rule.unit != "ms":
        return None
    family, _, stat = rule.metric.rpartition(".")
    quantile = _QUANTILES.get(stat)
    name = _HISTOGRAM_OF.get(family)
    encoded = (report.get("histograms") or {}).get(name or "", "")
    if quantile is None or not encoded:
        return None
    histogram = HdrHistogram.decode(encoded)
    count = histogram.get_total_count()
    if not count:
        return None
    low, high = quantile_interval(histogram, quantile)
    threshold_us = rule.threshold * 1000
    if low <= threshold_us < high:
        return (
            f"{rule.metric} {check.measured:.4g} ms is within noise of {rule.threshold:g} ms "
            f"(95 % interval {low / 1000:.4g}-{high / 1000:.4g} ms from {count} samples)"
        )
    return None


def quantile_interval(histogram: HdrHistogram, quantile: float) -> tuple[int, int]:
    """The values (µs) at the ranks n·q ± 1.96·sqrt(n·q·(1-q)): a distribution-free 95 % interval for the quantile."""
    count = histogram.get_total_count()
    spread = Z95 * math.sqrt(count * quantile * (1 - quantile))
    low_rank = max(0.0, count * quantile - spread - 1)
    high_rank = min(float(count), count * quantile + spread + 1)
    low = histogram.get_value_at_percentile(100.0 * low_rank / count) if low_rank > 0 else histogram.get_min_value()
    high = histogram.get_value_at_percentile(min(100.0, 100.0 * high_rank / count))
    return low, high
