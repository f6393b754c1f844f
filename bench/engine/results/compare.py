"""Baseline vs candidate: compare runs from their stored HdrHistograms, and judge regressions.

Percentiles are recomputed from each report's encoded latency histogram (not
from rounded summaries); with several runs per side, each side's value is the
median of its runs, with a 95 % confidence interval beside it (``ci95``: a
Student-t interval of the mean for 2 to 5 runs, the distribution-free
order-statistic interval of the median from 6). A repeated report (``bench
run --repeat N``) counts as its N runs. Runs are only comparable when they offered the same load to the
same target: ``comparability`` lists every difference, and the caller
refuses (or, when forced, warns) before comparing.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import orjson
from hdrh.histogram import HdrHistogram

from bench.engine.results.aggregate import mean_and_stddev
from bench.engine.errors import BenchError

#: metric -> (unit, True when lower is better)
METRICS: dict[str, tuple[str, bool]] = {
    "p50": ("ms", True),
    "p90": ("ms", True),
    "p95": ("ms", True),
    "p99": ("ms", True),
    "p99.9": ("ms", True),
    "max": ("ms", True),
    "mean": ("ms", True),
    "rps": ("req/s", False),
    "error_rate": ("ratio", True),
    # Inference runs (streamed OpenAI-style APIs); shown only when some run has them.
    "ttft.p50": ("ms", True),
    "ttft.p95": ("ms", True),
    "ttft.p99": ("ms", True),
    "tpot.p50": ("ms", True),
    "tpot.p95": ("ms", True),
    "tpot.p99": ("ms", True),
    "output_tokens_per_s": ("tokens/s", False),
}
#: A session step's own metrics: steps.NAME.p50 / .p95 / .p99 (recomputed from its histogram) and .error_rate.
STEP_STATS = ("p50", "p95", "p99", "error_rate")
_STEP_METRIC = re.compile(r"^steps\.([A-Za-z0-9_.-]+)\.(p50|p95|p99|error_rate)$")
#: A conversation turn's own metrics: turns.K.p50 / .p95 / .p99 (latency), turns.K.ttft.p50 / .p95 / .p99 (from their histograms) and .error_rate.
TURN_STATS = ("p50", "p95", "p99", "ttft.p50", "ttft.p95", "ttft.p99", "error_rate")
_TURN_METRIC = re.compile(r"^turns\.([0-9]+)\.(p50|p95|p99|ttft\.p50|ttft\.p95|ttft\.p99|error_rate)$")


def metric_info(metric: str) -> tuple[str, bool] | None:
    """(unit, lower is better) of a metric, a session step's or a conversation turn's included; None when unknown."""
    if metric in METRICS:
        return METRICS[metric]
    match = _STEP_METRIC.match(metric) or _TURN_METRIC.match(metric)
    if match is None:
        return None
    return ("ratio", True) if match.group(2) == "error_rate" else ("ms", True)


INFERENCE_METRICS = frozenset(m for m in METRICS if m.startswith(("ttft.", "tpot.", "output_tokens")))

# Two-sided 95 % Student-t critical values by degrees of freedom (1..30); the normal value beyond.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip


#: From this many runs on, the order-statistic interval of the median reaches 95 % (below, even min..max covers less).
ORDER_STATISTIC_MIN_RUNS = 6
STUDENT_T = "student-t"
ORDER_STATISTIC = "order-statistic"


def ci_method(n: int) -> str | None:
    """Which 95 % interval ``ci95`` gives for ``n`` runs: None for one run."""
    if n < 2:
        return None
    return ORDER_STATISTIC if n >= ORDER_STATISTIC_MIN_RUNS else STUDENT_T


def order_statistic_rank(n: int) -> tuple[int, float]:
    """For ``n`` >= 6 runs: the largest k such that [x_(k), x_(n+1-k)] (sorted values, 1-based) covers the median
    with probability >= 95 % whatever the distribution, and that coverage, 1 - 2 P(Binomial(n, 1/2) <= k - 1)."""
    k, below = 0, 0.0
    while True:
        below_next = below + math.comb(n, k) / 2**n  # P(B <= k)
        if 1 - 2 * below_next < 0.95:
            return k, 1 - 2 * below
        k, below = k + 1, below_next


def ci95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """A 95 % interval for a metric measured once per run.

    2-5 runs: Student-t interval of the mean, mean +- t(0.975, n-1) s / sqrt(n), its low end
    clipped at 0 (no metric here is negative). 6 or more: the order-statistic interval of the
    median, [x_(k), x_(n+1-k)] (``order_statistic_rank``), which assumes nothing about the
    distribution. One run: (None, None). An infinite value (error-aware latency) makes the
    Student-t high end infinite.
    """
    n = len(values)
    method = ci_method(n)
    if method is None:
        return None, None
    ordered = sorted(values)
    if method == ORDER_STATISTIC:
        k, _ = order_statistic_rank(n)
        return ordered[k - 1], ordered[n - k]
    if not all(math.isfinite(v) for v in values):
        return ordered[0], math.inf
    mean = statistics.fmean(values)
    half = _T95[min(n - 2, len(_T95) - 1)] * statistics.stdev(values) / math.sqrt(n)
    return max(0.0, mean - half), mean + half


class CompareError(BenchError):
    """A report that cannot be read or compared; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Run:
    """One report, with its latency metrics recomputed from the stored histogram."""

    label: str
    report: Mapping[str, Any]
    values: Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class SideValue:
    """A side's value for one metric: the median over its runs, and a 95 % CI when it has several."""

    value: float | None
    low: float | None = None
    high: float | None = None
    runs: int = 1


@dataclass(frozen=True, slots=True)
class Bound:
    """A regression bound such as ``p95=10%``, ``error_rate=0.5pp`` or ``p99=20ms``."""

    metric: str
    amount: float
    kind: str  # "%", "pp" or "abs"
    text: str


def load_run(path: str | Path) -> Run:
    """Read a bench JSON report (or ``search.json#N``, probe N of a search); raise CompareError naming the file for anything that is not one."""
    name = str(path)
    file, probe = split_probe(name)
    try:
        data = orjson.loads(Path(file).read_bytes())
    except FileNotFoundError:
        raise CompareError(f"{file}: file not found") from None
    except IsADirectoryError:
        raise CompareError(f"{file}: is a directory, not a report") from None
    except OSError as exc:
        raise CompareError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise CompareError(f"{file}: not valid JSON ({exc}); is the file truncated?") from None
    data = select_report(data, file, probe)
    label = Path(file).name + (f"#{probe}" if probe is not None else "")
    return run_from_report(data, name, label=label)


def load_runs(path: str | Path) -> list[Run]:
    """A report's runs: the N runs of a repeated report (``bench run --repeat N``), else the one run ``load_run`` reads."""
    run = load_run(path)
    return runs_of(run.report, str(path), label=run.label) or [run]


def is_repeat_report(data: Any) -> bool:
    """A ``bench run --repeat N`` report: each run's full report under ``runs``, the statistics under ``aggregate``."""
    return isinstance(data, dict) and isinstance(data.get("runs"), list) and isinstance(data.get("aggregate"), dict)


def runs_of(data: Any, source: str, *, label: str | None = None) -> list[Run]:
    """The runs a repeated report counts in its aggregate (its completed runs), each as a Run; [] for any other report."""
    if not is_repeat_report(data):
        return []
    counted = data["aggregate"].get("counted_runs")
    numbers = counted if isinstance(counted, list) else list(range(1, len(data["runs"]) + 1))
    runs = []
    for number in numbers:
        if not isinstance(number, int) or not 1 <= number <= len(data["runs"]):
            raise CompareError(f"{source}: malformed repeated report (aggregate.counted_runs names run {number!r})")
        runs.append(run_from_report(data["runs"][number - 1], f"{source} run {number}", label=f"{label or source} run {number}"))
    return runs


def split_probe(name: str) -> tuple[str, str | None]:
    """``search.json#3`` -> ("search.json", "3"); a name without ``#`` (or an existing file whose name has one) -> (name, None).

    The part after ``#`` is returned as written; ``select_report`` checks it.
    """
    file, mark, probe = name.rpartition("#")
    if not mark or not file or Path(name).exists():
        return name, None
    return file, probe


def is_search_report(data: Any) -> bool:
    """A ``bench search --json`` report: every probe's full run report under ``search.probes``."""
    return isinstance(data, dict) and data.get("kind") == "search" and isinstance(data.get("search"), dict)


def select_report(data: Any, source: str, probe: str | None, *, search_ok: bool = False) -> Any:
    """The run report that ``source`` (with ``#probe``, if given) names: the one place probes are picked.

    ``probe`` is 1-based, in the order the search ran its probes. A search
    report without a probe is refused unless ``search_ok`` (the HTML report
    draws a whole search); ``#N`` on a run report is refused too. Raises
    CompareError with a one-line message naming the file.
    """
    search = is_search_report(data)
    if probe is None:
        if search and not search_ok:
            count = _probe_count(data, source)
            raise CompareError(f"{source}: a search report ({count} probes), not a run; pick probes with {source}#N (N from 1 to {count}, in the order run)")
        return data
    if not search:
        raise CompareError(f"{source}#{probe}: #N picks a probe of a search report, and {source} is not one (a run report is given without #)")
    count = _probe_count(data, source)
    if count == 0:
        raise CompareError(f"{source}#{probe[:20]}: this search report holds no probes")
    if not probe.isdigit() or not probe.isascii():
        raise CompareError(f"{source}#{probe[:20]}: expected a probe number after #, from 1 to {count}")
    number = int(probe)
    if not 1 <= number <= count:
        raise CompareError(f"{source}#{number}: no such probe; this search ran {count} (#1 to #{count}, in the order run)")
    entry = data["search"]["probes"][number - 1]
    if not isinstance(entry, dict) or not isinstance(entry.get("report"), dict):
        raise CompareError(f"{source}#{number}: the probe holds no run report")
    return entry["report"]


def _probe_count(data: Mapping[str, Any], source: str) -> int:
    probes = data["search"].get("probes")
    if not isinstance(probes, list):
        raise CompareError(f"{source}: malformed search report (search.probes is not a list)")
    return len(probes)


def run_from_report(data: Any, source: str, *, label: str | None = None) -> Run:
    """Check that ``data`` is a bench report and recompute its metrics from its histogram.

    ``source`` names it in errors; ``label`` (default: ``source``) in tables.
    """
    if not isinstance(data, dict) or "schema_version" not in data or not isinstance(data.get("histograms"), dict):
        raise CompareError(f"{source}: not a bench JSON report (no schema_version or histograms)")
    if data["schema_version"] != 1:
        raise CompareError(f"{source}: report schema version {data['schema_version']!r}; this bench reads version 1")
    try:
        requests = data["requests"]
        completed = int(requests["completed"])
        failures = int(requests["http_errors"]) + int(requests["client_errors"]) + int(requests.get("check_failures", 0))
        rps = data.get("rps")
        histograms = data["histograms"]
        encoded = histograms.get("latency") or ""
        inference = data.get("inference") or {}
        tokens_per_s = inference.get("output_tokens_per_s")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CompareError(f"{source}: malformed bench report (missing or wrong field {exc})") from None
    values: dict[str, float | None] = {"rps": float(rps) if isinstance(rps, (int, float)) else None}
    values["error_rate"] = failures / completed if completed else None
    values.update(latency_values(encoded, source))
    for name in ("ttft", "tpot"):  # recomputed from their histograms too (reports from before these were stored: none)
        part = latency_values(histograms.get(name) or "", f"{source}: {name}")
        values.update({f"{name}.{p}": part[p] for p in ("p50", "p95", "p99")})
    values["output_tokens_per_s"] = float(tokens_per_s) if isinstance(tokens_per_s, (int, float)) else None
    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
    for name, step in steps.items():  # a session's steps, from their own histograms
        part = latency_values(histograms.get(f"step:{name}") or "", f"{source}: step {name}")
        values.update({f"steps.{name}.{p}": part[p] for p in ("p50", "p95", "p99")})
        rate = step.get("error_rate") if isinstance(step, dict) else None
        values[f"steps.{name}.error_rate"] = float(rate) if isinstance(rate, (int, float)) else None
    turns = data.get("turns") if isinstance(data.get("turns"), dict) else {}
    for number, turn in turns.items():  # a conversation's turns, from their own histograms
        turn = turn if isinstance(turn, dict) else {}
        for key, prefix in (("", ""), (":ttft", "ttft.")):
            part = latency_values(histograms.get(f"turn:{number}{key}") or "", f"{source}: turn {number}")
            if part["p50"] is None:  # a report without the turn's histograms: its summary's figures (from the same histogram)
                stats = turn.get(prefix.rstrip(".") or "latency")
                stats = stats if isinstance(stats, dict) else {}
                part = {p: float(stats[p]) if isinstance(stats.get(p), (int, float)) else None for p in ("p50", "p95", "p99")}
            values.update({f"turns.{number}.{prefix}{p}": part[p] for p in ("p50", "p95", "p99")})
        rate = turn.get("error_rate")
        values[f"turns.{number}.error_rate"] = float(rate) if isinstance(rate, (int, float)) else None
    return Run(label or source, data, values)


def latency_values(encoded: str, label: str = "histogram") -> dict[str, float | None]:
    """p50..p99.9, max and mean in ms from an encoded microsecond HdrHistogram ('' means empty).

    Latency, TTFT and TPOT histograms alike.
    """
    names = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")
    if not encoded:
        return {n: None for n in names}
    try:
        histogram = HdrHistogram.decode(encoded)
    except Exception as exc:  # noqa: BLE001 - hdrh raises assorted errors for corrupt payloads
        raise CompareError(f"{label}: a stored histogram cannot be decoded ({type(exc).__name__})") from None
    if histogram is None or histogram.get_total_count() == 0:
        return {n: None for n in names}
    points = histogram.get_percentile_to_value_dict([50.0, 90.0, 95.0, 99.0, 99.9])
    values: dict[str, float | None] = {f"p{p:g}": v / 1000 for p, v in points.items()}
    values["max"] = histogram.get_max_value() / 1000
    values["mean"] = mean_and_stddev(histogram)[0] / 1000
    return values


def fingerprint(report: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for two runs to be comparable: load model, offered load, request mix, target URL."""
    profile = report.get("profile") if isinstance(report.get("profile"), dict) else {}
    load = profile.get("load") if isinstance(profile.get("load"), dict) else {}
    target = profile.get("target") if isinstance(profile.get("target"), dict) else {}
    return {
        "load model": report.get("load_model"),
        "rate": load.get("rate_per_s"),
        "concurrency": load.get("concurrency"),
        "stages": load.get("stages"),
        "arrival": load.get("arrival"),
        # A replayed trace offers the load its lines and speed make: the same file (by content) at the same speed.
        "replay": (replay.get("sha256"), replay.get("speed")) if isinstance(replay := load.get("replay"), dict) else None,
        "request": (target.get("method"), target.get("body_sha256", target.get("body_bytes"))),
        # The bundled mock stands in for the API under test: a slower mock is a slower API, not another target.
        "target": target.get("url") or "bundled mock server",
    }


def comparability(runs: Sequence[Run]) -> list[str]:
    """Every way in which the runs differ in what they measured; empty when comparable."""
    problems = []
    base = fingerprint(runs[0].report)
    for run in runs[1:]:
        other = fingerprint(run.report)
        for key, value in base.items():
            if other[key] != value:
                problems.append(f"{runs[0].label} and {run.label} differ in {key}: {value!r} vs {other[key]!r}")
    return problems


def side_value(runs: Sequence[Run], metric: str) -> SideValue:
    values = [r.values[metric] for r in runs if r.values.get(metric) is not None]
    if not values:
        return SideValue(None, runs=len(runs))
    if len(values) == 1:
        return SideValue(values[0], runs=len(runs))
    low, high = ci95(values)
    return SideValue(statistics.median(values), low, high, len(values))


def compare(sides: Sequence[Sequence[Run]]) -> dict[str, list[SideValue]]:
    """Per metric, each side's value (median of its runs); inference metrics only when some run has them."""
    table = {}
    for metric in METRICS:
        values = [side_value(side, metric) for side in sides]
        if metric in INFERENCE_METRICS and all(v.value is None for v in values):
            continue
        table[metric] = values
    step_metrics = dict.fromkeys(m for side in sides for run in side for m in run.values if m.startswith(("steps.", "turns.")))
    for metric in step_metrics:  # a session's steps or a conversation's turns, in the order the runs list them
        table[metric] = [side_value(side, metric) for side in sides]
    return table


_BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*([0-9]*\.?[0-9]+)\s*(%|pp|ms|s|/s)?\s*$")


def parse_bounds(text: str) -> list[Bound]:
    """Parse ``p95=10%,error_rate=0.5pp,p99=20ms,rps=5%``; raise CompareError on anything else.

    Every amount carries its unit: ``p95=10`` could mean 10 % or 10 ms, so it is refused.
    """
    bounds = []
    for part in (p for p in text.split(",") if p.strip()):
        match = _BOUND.match(part)
        if not match:
            raise CompareError(f"--fail-on-regression: cannot read {part.strip()!r}; write e.g. p95=10%,error_rate=0.5pp,p99=20ms")
        metric, amount, unit = match.groups()
        info = metric_info(metric)
        if info is None:
            raise CompareError(f"--fail-on-regression: unknown metric {metric!r}; known: {', '.join(METRICS)}, steps.NAME.{{{','.join(STEP_STATS)}}}, turns.K.{{{','.join(TURN_STATS)}}}")
        metric_unit = info[0]
        if unit is None:
            absolute = {"ms": f"{amount}ms", "ratio": f"{amount}pp"}.get(metric_unit, f"{amount}/s")
            raise CompareError(
                f"--fail-on-regression: {part.strip()!r} needs a unit: {metric}={amount}% (relative to the baseline) or {metric}={absolute} (absolute)"
            )
        kind = {"%": "%", "pp": "pp"}.get(unit, "abs")
        if kind == "pp" and metric_unit != "ratio":
            raise CompareError(f"--fail-on-regression: {part.strip()!r}: pp (percentage points) applies to error rates only")
        if kind == "abs" and not (metric_unit == "ms" if unit in ("ms", "s") else metric_unit.endswith("/s")):
            raise CompareError(f"--fail-on-regression: {part.strip()!r}: {unit} does not fit {metric} ({metric_unit})")
        value = float(amount) * (1000.0 if unit == "s" else 1.0)
        bounds.append(Bound(metric, value, kind, part.strip()))
    return bounds


def regressions(table: Mapping[str, Sequence[SideValue]], bounds: Sequence[Bound], labels: Sequence[str]) -> list[str]:
    """The bounds each candidate (every side after the first) exceeds, worded for a CI log."""
    found = []
    for bound in bounds:
        unit, lower_better = metric_info(bound.metric)  # type: ignore[misc]
        sides = table.get(bound.metric) or [SideValue(None)] * len(labels)
        base = sides[0].value
        for label, cand_side in zip(labels[1:], sides[1:]):
            cand = cand_side.value
            if base is None or cand is None:
                found.append(f"{bound.metric}: cannot judge {bound.text} for {label}: no value measured")
                continue
            worse = (cand - base) if lower_better else (base - cand)
            if bound.kind == "%":
                exceeded = worse > (abs(base) * bound.amount / 100 if base else 0.0)
            elif bound.kind == "pp":
                exceeded = worse * 100 > bound.amount
            else:
                exceeded = worse > bound.amount
            if exceeded:
                found.append(f"{bound.metric} regressed beyond {bound.text} in {label}: {_show(base, unit)} -> {_show(cand, unit)}")
    return found


def _show(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    return f"{value:,.2f} {unit}"


def show_change(delta: float, base: float | None, unit: str) -> str:
    """A change with its unit: ``+12.30 ms (+5.1 %)``, ``-40.0 req/s (-3.2 %)``, ``+0.50 pp``."""
    if unit == "ratio":
        return f"{delta * 100:+.2f} pp"
    return f"{delta:+,.2f} {unit}" + (f" ({delta / base * 100:+.1f} %)" if base else "")
