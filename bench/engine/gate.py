"""The SLA gate: compare a run's summary with the profile's criteria. Pure; no I/O.

Latency criteria use the summary's ``latency`` distribution: response time
from the intended send in an open loop, service time in a closed loop; they
cover requests that got an HTTP response (any status). Requests that got none
(connect errors, timeouts) count in ``error_rate``. A criterion whose metric
could not be measured (no responses at all) fails: a gate never passes on
missing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bench.engine.profile import SlaRule


@dataclass(frozen=True, slots=True)
class Check:
    """One criterion's outcome: ``measured`` is None when the run produced no value for it."""

    rule: SlaRule
    measured: float | None
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.rule.name,
            "metric": self.rule.metric,
            "op": self.rule.op,
            "threshold": self.rule.threshold,
            "unit": self.rule.unit,
            "measured": self.measured,
            "passed": self.passed,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def measured_value(summary: Mapping[str, Any], metric: str) -> float | None:
    """The summary's value for an SLA metric name (see profile.SLA_METRICS)."""
    if metric in ("error_rate", "rps"):
        return summary.get(metric)
    return summary["latency"].get(metric)


def evaluate(summary: Mapping[str, Any], rules: Sequence[SlaRule]) -> Verdict:
    """Check every rule; an unmeasured value fails its rule."""
    checks = []
    for rule in rules:
        value = measured_value(summary, rule.metric)
        if value is None:
            passed = False
        elif rule.op == "<=":
            passed = value <= rule.threshold
        else:
            passed = value >= rule.threshold
        checks.append(Check(rule, value, passed))
    return Verdict(tuple(checks))
