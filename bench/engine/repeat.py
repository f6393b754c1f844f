"""Repeated runs: one profile run N times as independent samples; per metric each run's value, the median and a 95 % interval.

One 30 s run is one sample: its p99 moves from run to run. ``run`` with
``load.repeat`` (or ``repeat=``) above 1 runs the profile N times through
``runner.run`` and combines them:

- **Independent samples.** Run k uses ``load.seed + k - 1`` and, against the
  bundled mock, a mock started afresh for that run with its own ``seed + k - 1``:
  a restarted mock with the same seed would draw the same latencies again, and
  one kept up would carry its state (queue, prefix cache, connections) from run
  to run. Run 1 is exactly the single run.
- **Statistics.** Per metric (latency p50/p90/p95/p99/max/mean, rps,
  error_rate; TTFT/TPOT p50/p95/p99 and output tokens/s when streamed) the
  values of the runs that completed, their median, and ``compare.ci95``: a
  Student-t interval of the mean for 2-5 runs (``method: student-t``), the
  distribution-free order-statistic interval of the median from 6 runs on
  (``method: order-statistic``, with its exact ``coverage``).
- **The SLA.** Each criterion is judged on the median of its per-run values, or
  with ``sla.repeat_judge: bound`` on the interval's pessimistic end (the high
  end of a ``<=`` criterion, the low end of a ``>=``); not measurable in any
  run means not measurable.
- **The report**, written once at the end: the top level is the *median run*
  (the completed run whose latency p95 is the median; for an even count the
  lower middle one), so ``bench report``, JUnit and Markdown read it as a run,
  with ``sla`` (the verdict above), ``status``, ``messages`` and ``trust`` for
  all runs; ``runs`` holds every run's full report (histograms included) and
  ``aggregate`` the statistics. A run that ends otherwise than completed
  (interrupted, crashed, unmeasurable, aborted) stops the repeats; the report
  still has every run so far, and the aggregate the completed ones.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from bench.engine.results.aggregate import Snapshot
from bench.engine.results.compare import ORDER_STATISTIC, ci95, ci_method, order_statistic_rank
from bench.engine.errors import RunError
from bench.engine.results.exports import junit_xml
from bench.engine.results.gate import FAIL, PASS, UNMEASURABLE, Check, Verdict, compare as meets, measured_value
from bench.engine.plan.profile import Profile
from bench.engine.results.report import json_safe, write_json
from bench.engine.runner import ABORTED, COMPLETED, CRASHED, INTERRUPTED, RunResult, preflight
from bench.engine import runner

#: The metrics the aggregate holds, by their SLA metric names (``gate.measured_value``) -> their path in ``aggregate``.
AGGREGATE_METRICS: dict[str, tuple[str, ...]] = {
    **{m: ("latency", m) for m in ("p50", "p90", "p95", "p99", "max", "mean")},
    "rps": ("rps",),
    "error_rate": ("error_rate",),
    **{f"{f}.{p}": (f, p) for f in ("ttft", "tpot") for p in ("p50", "p95", "p99")},
    "output_tokens_per_s": ("output_tokens_per_s",),
}
OPTIONAL_METRICS = frozenset(m for m in AGGREGATE_METRICS if m.startswith(("ttft.", "tpot.", "output_tokens")))
#: The metric that picks the median run shown at the top level of the report.
REPRESENTATIVE_METRIC = "p95"


@dataclass
class RepeatResult(RunResult):
    """A repeated run: ``runs`` in order, the ``aggregate`` statistics; the inherited fields are the combined view.

    ``summary`` and ``report`` are the median run's (see the module docstring) with the
    status, trust, messages and verdict of all runs; ``verdict`` judges the medians
    (or bounds); ``representative`` is the median run's number (1-based, 0 when none completed).
    """

    runs: list[RunResult] = field(default_factory=list)
    aggregate: dict[str, Any] = field(default_factory=dict)
    planned: int = 0
    representative: int = 0


def run(
    profile: Profile,
    on_progress: Callable[[Snapshot], None] | None = None,
    *,
    repeat: int | None = None,
    on_run_start: Callable[[int, int, Profile], None] | None = None,
    on_run_end: Callable[[int, int, RunResult], None] | None = None,
) -> RunResult:
    """Run the profile ``repeat`` times (default ``load.repeat``); with 1, exactly ``runner.run``.

    Returns a ``RepeatResult`` (a ``RunResult``) when it repeats. ``on_run_start(k, n, run_profile)``
    and ``on_run_end(k, n, result)`` bracket each run; ``on_progress`` is as for ``runner.run``.

    Raises:
        ValueError: ``repeat`` below 1.
        RunError: the first run could not start (a later one that cannot is recorded, and the runs so far are reported).
    """
    count = profile.repeat if repeat is None else repeat
    if count < 1:
        raise ValueError(f"repeat must be at least 1, got {count}")
    if count == 1:
        return runner.run(profile, on_progress)
    preflight(profile)  # the combined outputs are writable before the first run starts
    results: list[RunResult] = []
    notes: list[str] = []
    status = COMPLETED
    for k in range(1, count + 1):
        run_profile = profile_for_run(profile, k)
        try:
            if on_run_start is not None:
                on_run_start(k, count, run_profile)
            result = runner.run(run_profile, on_progress)
        except KeyboardInterrupt:  # between runs (a run itself takes Ctrl-C as its own drain)
            status = INTERRUPTED
            notes.append(f"interrupted before run {k} of {count} started")
            break
        except RunError as exc:
            if not results:
                raise
            status = CRASHED
            notes.append(f"run {k} of {count} could not start: {exc}")
            break
        results.append(result)
        if on_run_end is not None:
            try:
                on_run_end(k, count, result)
            except KeyboardInterrupt:
                status = INTERRUPTED
                notes.append(f"interrupted after run {k} of {count}")
                break
        if result.status != COMPLETED:
            status = result.status
            if k < count:
                rest = f"run {count}" if k + 1 == count else f"runs {k + 1} to {count}"
                notes.append(f"run {k} of {count} ended {result.status}; {rest} not started")
            break
    return combine(profile, results, count, status, notes)


def profile_for_run(profile: Profile, k: int) -> Profile:
    """Run k of a repeated profile: seeds moved on by k - 1, per-request outputs numbered, no JSON or JUnit (written once, combined)."""
    load = dataclasses.replace(profile.load, seed=profile.load.seed + k - 1)
    mock = dataclasses.replace(profile.mock, seed=profile.mock.seed + k - 1) if profile.mock is not None else None
    out = profile.output
    output = dataclasses.replace(
        out, json_path=None, csv_path=numbered(out.csv_path, k), hlog_path=numbered(out.hlog_path, k),
        series_csv_path=numbered(out.series_csv_path, k), junit_path=None, html_path=None, chunks_path=numbered(out.chunks_path, k),
    )  # fmt: skip
    resolved = dict(profile.resolved)
    resolved["load"] = {**resolved.get("load", {}), "seed": load.seed, "repeat": 1}
    resolved["run_of_repeat"] = {"run": k, "of": profile.repeat}
    return dataclasses.replace(profile, load=load, mock=mock, output=output, resolved=resolved, repeat=1)


def numbered(path: Path | None, k: int) -> Path | None:
    """``requests.csv`` -> ``requests.run2.csv``: each run's own per-request, interval-log and per-second files."""
    return None if path is None else path.with_name(f"{path.stem}.run{k}{path.suffix}")


def metric_values(result: RunResult) -> dict[str, float | None]:
    """One run's aggregate metrics: the values its summary shows and its SLA judges (``gate.measured_value``)."""
    return {m: _number(measured_value(result.summary, m)[0]) for m in AGGREGATE_METRICS}


def _number(value: Any) -> float | None:
    if value == "inf":
        return float("inf")
    return float(value) if isinstance(value, (int, float)) else None


def stats(values: Sequence[float | None]) -> dict[str, Any]:
    """``values`` (one per run, None where a run had none), their median and 95 % interval over the measured ones."""
    measured = [v for v in values if v is not None]
    low, high = ci95(measured)
    return {
        "values": list(values),
        "median": statistics.median(measured) if measured else None,
        "ci95_low": low,
        "ci95_high": high,
    }


def aggregate(results: Sequence[RunResult], numbers: Sequence[int]) -> dict[str, Any]:
    """The ``aggregate`` section: per metric each counted run's value, median and interval, and the method used."""
    per_run = [metric_values(r) for r in results]
    n = len(results)
    method = ci_method(n)
    out: dict[str, Any] = {
        "runs": n,
        "counted_runs": list(numbers),
        "confidence": 0.95,
        "method": method or "none",
        "method_text": _method_text(n),
    }
    if method == ORDER_STATISTIC:
        k, coverage = order_statistic_rank(n)
        out["order_statistic_ranks"] = [k, n + 1 - k]
        out["coverage"] = coverage
    for metric, path in AGGREGATE_METRICS.items():
        values = [values_of_run[metric] for values_of_run in per_run]
        if metric in OPTIONAL_METRICS and all(v is None for v in values):
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = stats(values)
    return out


def _method_text(n: int) -> str:
    method = ci_method(n)
    if method is None:
        return "one run: no interval"
    if method == ORDER_STATISTIC:
        k, coverage = order_statistic_rank(n)
        return f"order-statistic interval of the median: sorted runs {k} and {n + 1 - k} of {n} (coverage {coverage * 100:.1f} %)"
    return f"Student-t interval of the mean over {n} runs (t = {_t(n):.3f})"


def _t(n: int) -> float:
    from bench.engine.results.compare import _T95

    return _T95[min(n - 2, len(_T95) - 1)]


def metric_stats(agg: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """The aggregate's entry for a metric named as in ``AGGREGATE_METRICS`` (``p95``, ``ttft.p95``, ``rps``)."""
    node: Any = agg
    for part in AGGREGATE_METRICS[metric]:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def judge(verdicts: Sequence[Verdict], profile: Profile) -> Verdict:
    """Each criterion over the runs: on the median of its per-run values, or (``sla.repeat_judge: bound``) the 95 % interval's pessimistic end."""
    mode = profile.sla_options.repeat_judge
    checks = []
    for i, rule in enumerate(profile.sla):
        per_run = [v.checks[i] for v in verdicts if i < len(v.checks)]
        values = [c.measured for c in per_run]
        summary = stats(values) if per_run else stats([])
        summary["judged_on"] = mode
        samples = min((c.samples or 0 for c in per_run), default=0)
        unmeasured = [k for k, c in enumerate(per_run, 1) if c.status == UNMEASURABLE]
        if not per_run or unmeasured or summary["median"] is None:
            if not per_run:
                where = "no run completed"
            elif unmeasured:
                where = f"not measurable in run(s) {', '.join(map(str, unmeasured))} ({per_run[unmeasured[0] - 1].note})"
            else:
                where = "no value was measured"
            checks.append(Check(rule, summary["median"], False, UNMEASURABLE, samples, where, repeat=summary))
            continue
        bound = summary["ci95_high"] if rule.op == "<=" else summary["ci95_low"]
        judged = summary["median"] if mode == "median" or bound is None else bound
        summary["bound"] = bound
        passed = meets(rule, judged)
        note = "" if mode == "median" or bound is not None else "one run: no interval, judged on its value"
        checks.append(Check(rule, judged, passed, PASS if passed else FAIL, samples, note, repeat=summary))
    return Verdict(tuple(checks))


def representative(results: Sequence[RunResult]) -> int:
    """The index of the median run by latency p95 (the lower middle one for an even count; ties: the earliest)."""
    keyed = sorted(range(len(results)), key=lambda i: (_p95(results[i]), i))
    return keyed[(len(keyed) - 1) // 2]


def _p95(result: RunResult) -> float:
    value = (result.summary.get("latency") or {}).get(REPRESENTATIVE_METRIC)
    return float("inf") if value is None else float(value)


def combine(profile: Profile, results: list[RunResult], planned: int, status: str, notes: list[str]) -> RepeatResult:
    """The combined result and report of the runs so far; writes the JSON report and JUnit XML the profile names."""
    counted = [r for r in results if r.status == COMPLETED]
    numbers = [k for k, r in enumerate(results, 1) if r.status == COMPLETED]
    agg = aggregate(counted, numbers)
    verdict = judge([r.verdict for r in counted], profile)
    if status == ABORTED and results:
        verdict = Verdict(verdict.checks, aborted=results[-1].verdict.aborted)
    if counted:
        pick = results.index(counted[representative(counted)])
    elif results:
        pick = len(results) - 1
    else:
        raise RunError("no run of the repeated profile started")
    base = results[pick]
    messages = [f"run {k}: {m}" for k, r in enumerate(results, 1) for m in r.messages] + notes
    reasons = [f"run {k}: {why}" for k, r in enumerate(results, 1) for why in r.summary.get("trust", {}).get("reasons", [])]
    trust = {**base.summary.get("trust", {}), "trusted": all(r.summary.get("trust", {}).get("trusted", True) for r in results), "reasons": reasons}
    summary = {**base.summary, "trust": trust}
    report = dict(base.report)
    report.update(
        {
            "profile": profile.resolved,
            "status": status,
            "complete": status == COMPLETED and len(results) == planned,
            "messages": messages,
            "trust": trust,
            "trusted": trust["trusted"],
            "sla": {
                "passed": verdict.passed and status == COMPLETED,
                "error_aware": profile.sla_options.error_aware,
                "min_samples": profile.sla_options.min_samples,
                "repeat_judge": profile.sla_options.repeat_judge,
                "checks": [c.as_dict() for c in verdict.checks],
            },
            "repeat": {"planned": planned, "ran": len(results), "median_run": pick + 1 if counted else None, "by": f"latency {REPRESENTATIVE_METRIC}"},
            "aggregate": agg,
            "runs": [r.report for r in results],
        }
    )
    written = [path for r in results for path in r.written]
    if profile.output.json_path:
        write_json(profile.output.json_path, report)
        written.append(profile.output.json_path)
    if profile.output.junit_path:
        profile.output.junit_path.write_text(junit_xml(json_safe(report)), encoding="utf-8")
        written.append(profile.output.junit_path)
    return RepeatResult(
        profile, status, summary, verdict, report, messages, written,
        runs=results, aggregate=agg, planned=planned, representative=pick + 1 if counted else 0,
    )  # fmt: skip
