"""The run's live figures as plain data, taken from the Aggregator on the collecting thread.

``LiveFigures.take(aggregator)`` reads the merged counters and HdrHistograms
and returns an immutable ``Figures``: cumulative counts, gauges, the latency
histograms reduced to a fixed ladder of bucket bounds, and the SLA verdict
judged on the whole run so far. Exporters (``prometheus.py``, ``otlp.py``)
only read the last ``Figures``, from their own threads, so they never touch
a histogram the collecting thread is merging into.

Buckets. Every histogram uses ``LADDER_S``: 1-2-5 steps from 1 ms to 10 s,
then 30 s, and +Inf (15 series per histogram). 1-2-5 steps keep
``histogram_quantile`` within a factor of 2.5 of the truth anywhere from a
fast API to a slow completion with few series; the exact percentiles stay in
the JSON report. A bound's count is cumulative over whole HdrHistogram
buckets: a bucket counts under ``le`` when its highest value is at most
``le``, so a bound is exact to HdrHistogram's 3 significant digits and never
counts a slower response as faster. The +Inf bucket (``_count``) is the
histogram's total count: the report's ``latency.count`` exactly.
"""

from __future__ import annotations

import ctypes
import math
import operator
import threading
import time
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from bench.engine.results.aggregate import Aggregator, error_aware_stats, latency_stats, percentile_values
from bench.engine.workers.samples import ERROR_KINDS

#: Histogram bounds (seconds); +Inf is implied.
LADDER_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

#: How often the SLA verdict so far is judged again (it walks the latency histogram).
SLA_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Hist:
    """A histogram on ``LADDER_S``: cumulative counts per bound (then +Inf = count) and the sum of values (seconds)."""

    cumulative: tuple[int, ...]
    count: int
    sum_s: float


@dataclass(frozen=True, slots=True)
class Figures:
    """One moment of a run, as exporters show it; every count is cumulative since the start."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (phase, outcome) -> requests
    responses: dict[tuple[str, int], int] = field(default_factory=dict)  # (phase, status code) -> responses
    errors: dict[tuple[str, str], int] = field(default_factory=dict)  # (phase, kind) -> requests
    sent: dict[str, int] = field(default_factory=dict)  # phase -> requests sent
    in_flight: int = 0
    scheduled_rps: float | None = None
    achieved_rps: float | None = None
    histograms: dict[str, Hist] = field(default_factory=dict)  # latency, schedule_lag, ttft, tpot, itl (measured phase)
    output_tokens: int = 0
    steps: dict[str, tuple[dict[str, int], Hist]] = field(default_factory=dict)  # step -> (outcome -> requests, latency)
    sla: dict[str, int] = field(default_factory=dict)  # criterion label -> 1 passing / 0 failing
    elapsed_s: float = 0.0
    final: bool = False


OUTCOMES = ("ok", "http_error", "client_error", "check")


class FiguresBox:
    """The last ``Figures``, handed from the collecting thread to the exporters' threads.

    Figures are taken only when an exporter asks (``ask_fresh`` sets
    ``wanted``, which the collecting thread checks on each turn of its loop),
    so an unscraped run costs the collecting thread a flag check, and what an
    exporter serves is what the reports merged so far say, not a second old.
    """

    def __init__(self) -> None:
        self.latest: Figures | None = None
        self.generation = 0  # how many Figures were published
        self.wanted = False  # read by the collecting thread without the lock
        self._changed = threading.Condition()

    def publish(self, fig: Figures) -> None:
        """Make ``fig`` the latest (one reference swapped) and wake whoever waits for it."""
        with self._changed:
            self.latest = fig
            self.generation += 1
            self.wanted = False
            self._changed.notify_all()

    def ask_fresh(self, timeout_s: float) -> tuple[Figures | None, int]:
        """Ask for figures taken now and wait for them, at most ``timeout_s``; returns the latest either way, and its generation."""
        with self._changed:
            fig = self.latest
            if fig is not None and fig.final:
                return fig, self.generation
            target = self.generation + 1
            self.wanted = True
            self._changed.wait_for(lambda: self.generation >= target, timeout_s)
            return self.latest, self.generation


def _counts_between(histogram, first: int, last: int) -> list[int]:
    """The counts array's entries first..last as a list (through a memoryview, as ``aggregate._counts_list``)."""
    counts = histogram.counts
    fmt = {2: "H", 4: "I", 8: "Q"}.get(ctypes.sizeof(counts._type_))  # noqa: SLF001 - the ctypes array's element type
    if fmt is None:
        return list(counts[first : last + 1])
    return memoryview(counts).cast("B").cast(fmt)[first : last + 1].tolist()


def _outcomes(tally) -> dict[str, int]:
    return {"ok": tally.ok, "http_error": tally.http_errors, "client_error": tally.client_errors, "check": tally.check_errors}


class Ladder:
    """Reduces HdrHistograms (µs) to cumulative counts on ``LADDER_S``; caches by count, so an unchanged histogram costs nothing."""

    def __init__(self) -> None:
        self._indices: list[int] | None = None
        self._values: list[int] = []  # bucket values from index _values_start on
        self._values_start = 0
        self._cache: dict[int, tuple[int, Hist]] = {}

    def reduce(self, histogram) -> Hist:
        count = histogram.get_total_count()
        cached = self._cache.get(id(histogram))
        if cached is not None and cached[0] == count:
            return cached[1]
        if self._indices is None:
            # Bucket i holds values <= le (µs) for every i before the bucket of le + 1 (see the module's note).
            self._indices = [histogram.get_counts_array_index(round(le * 1e6) + 1) for le in LADDER_S]
        if not count:
            hist = Hist((0,) * len(LADDER_S), 0, 0.0)
        else:
            # Only the used stretch of the counts array, from the minimum's bucket to the maximum's.
            first = histogram.get_counts_array_index(histogram.get_min_value())
            last = min(histogram.get_counts_array_index(histogram.get_max_value()), len(histogram.counts) - 1)
            counts = _counts_between(histogram, first, last)
            running = list(accumulate(counts))
            cumulative = tuple(running[min(i, last + 1) - first - 1] if i > first else 0 for i in self._indices)
            total_us = sum(map(operator.mul, counts, self._values_between(histogram, first, last)))
            hist = Hist(cumulative, count, total_us / 1e6)
        self._cache[id(histogram)] = (count, hist)
        return hist

    def _values_between(self, histogram, first: int, last: int) -> list[int]:
        """Each bucket's value (µs) as HdrHistogram defines it for means, for buckets first..last.

        Computed once per bucket, and only for buckets a histogram has used
        (from index 0 it was 5 ms of the first scrape of a run at 3-25 ms).
        """
        values, start = self._values, self._values_start
        median = histogram._hdr_median_equiv_value  # noqa: SLF001 - the library's own bucket value
        value_at = histogram.get_value_from_index
        if not values:
            values.extend(int(median(value_at(i))) for i in range(first, last + 1))
            self._values_start = start = first
        if first < start:
            values[:0] = [int(median(value_at(i))) for i in range(first, start)]
            self._values_start = start = first
        if start + len(values) <= last:
            values.extend(int(median(value_at(i))) for i in range(start + len(values), last + 1))
        return values[first - start : last - start + 1]


class LiveFigures:
    """Takes ``Figures`` from an Aggregator (call on the thread that feeds it)."""

    def __init__(self, profile) -> None:
        self.profile = profile
        self.ladder = Ladder()
        self.rules = tuple(profile.sla)
        self._sla: dict[str, int] = {}
        self._sla_at = -math.inf

    def take(self, aggregator: Aggregator, *, final: bool = False, verdict=None) -> Figures:
        m, w = aggregator.measured, aggregator.warmup
        requests: dict[tuple[str, str], int] = {}
        responses: dict[tuple[str, int], int] = {}
        errors: dict[tuple[str, str], int] = {}
        for phase, tally in (("measured", m), ("warmup", w)):
            for outcome, n in _outcomes(tally).items():
                requests[(phase, outcome)] = n
            for code, n in tally.status.items():
                responses[(phase, code)] = n
            for kind in ERROR_KINDS if phase == "measured" else ():
                errors[(phase, kind)] = 0  # present from the start, so rate() sees the first failure
            for kind, n in tally.errors.items():
                errors[(phase, kind)] = n
        ladder = self.ladder
        histograms = {"latency": ladder.reduce(m.latency)}
        if aggregator.open_loop:
            histograms["schedule_lag"] = ladder.reduce(m.lag)
        if m.ttft.get_total_count() or m.token_sources:
            for name in ("ttft", "tpot", "itl"):
                histograms[name] = ladder.reduce(getattr(m, name))
        steps = {
            label[5:]: (_outcomes(t), ladder.reduce(t.latency)) for label, t in aggregator.groups.items() if label.startswith("step:")
        }
        scheduled = achieved = None
        closed = aggregator._closed_through  # noqa: SLF001 - the last closed second, as the live view reads it
        if aggregator.open_loop and closed > 0:
            from bench.engine.plan.schedule import scheduled_in_second

            snap_second = closed - 1
            scheduled = scheduled_in_second(self.profile.load, snap_second)
            last = aggregator.series[-1] if aggregator.series and aggregator.series[-1].second == snap_second else None
            achieved = float((last.sent if last else 0) + aggregator._warmup_sent.get(snap_second, 0))  # noqa: SLF001
        if verdict is not None:
            self._sla = {criterion(c.rule): int(c.passed) for c in verdict.checks}
        elif self.rules and (final or time.monotonic() - self._sla_at >= SLA_EVERY_S):
            self._sla_at = time.monotonic()
            self._sla = judge_so_far(aggregator, self.profile)
        return Figures(
            requests=requests,
            responses=responses,
            errors=errors,
            sent={"measured": m.sent, "warmup": w.sent},
            in_flight=sum(aggregator.in_flight.values()),
            scheduled_rps=scheduled,
            achieved_rps=achieved,
            histograms=histograms,
            output_tokens=m.output_tokens,
            steps=steps,
            sla=dict(self._sla),
            elapsed_s=aggregator.elapsed_s,
            final=final,
        )


_PERCENTILE_OF = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
_NOT_LATENCY = {"error_rate", "rps", "goodput", "output_tokens_per_s"}


def _stats_for(histogram, wanted: set[str]) -> dict[str, Any]:
    """The latency statistics criteria read (percentiles, max), and only those; anything else gets ``latency_stats``.

    Judged once a second while scrapes are served, a full ``latency_stats``
    (five percentiles, and the mean and deviation: another walk of the
    counts) of each histogram was most of the parent's added cost.
    """
    count = histogram.get_total_count()
    if not count or not wanted <= {*_PERCENTILE_OF, "max"}:
        return latency_stats(histogram)
    points = percentile_values(histogram, tuple(_PERCENTILE_OF[w] for w in wanted if w in _PERCENTILE_OF))
    stats: dict[str, Any] = {"count": count, "max": histogram.get_max_value() / 1000}
    stats.update({w: points[_PERCENTILE_OF[w]] / 1000 for w in wanted if w in _PERCENTILE_OF})
    return stats


def light_summary(aggregator: Aggregator, rules: Any = (), error_aware: bool = False) -> dict[str, Any]:
    """The parts of ``Aggregator.summary()`` the gate reads for ``rules``, without the series and the encoded histograms."""
    m = aggregator.measured
    seconds = aggregator.measured_seconds()
    latency_metrics = {r.metric for r in rules if r.step is None and "." not in r.metric} - _NOT_LATENCY
    inference = None
    if any("." in r.metric or r.metric == "output_tokens_per_s" for r in rules) and (m.token_sources or m.ttft.get_total_count()):
        inference = {
            "ttft": latency_stats(m.ttft),
            "tpot": latency_stats(m.tpot),
            "itl": latency_stats(m.itl),
            "output_tokens_per_s": m.output_tokens / seconds if seconds > 0 else None,
        }
    steps = {}
    step_metrics = {r.metric for r in rules if r.step is not None} - _NOT_LATENCY
    for label, t in aggregator.groups.items():
        if label.startswith("step:") and any(r.step == label[5:] for r in rules):
            steps[label[5:]] = {
                "requests": {"completed": t.completed},
                "error_rate": t.failed / t.completed if t.completed else None,
                "rps": t.completed / seconds if seconds > 0 else None,
                "latency": _stats_for(t.latency, step_metrics),
            }
    return {
        "requests": {"completed": m.completed},
        "error_rate": m.failed / m.completed if m.completed else None,
        "rps": m.completed / seconds if seconds > 0 else None,
        "goodput": {"ratio": m.good / m.completed if m.completed else None},
        "latency": _stats_for(m.latency, latency_metrics),
        "latency_error_aware": error_aware_stats(m.success, m.failed) if error_aware else {},
        "inference": inference,
        "steps": steps,
        "windows": {
            key: [{"end_second": v.end_second, "value": v.value, "samples": v.samples} for v in values]
            for key, values in aggregator.windows.values.items()
        },
    }


def judge_so_far(aggregator: Aggregator, profile) -> dict[str, int]:
    """Each SLA criterion's verdict on the run so far (1 passing, 0 failing or not yet measurable)."""
    from bench.engine.results.gate import evaluate

    verdict = evaluate(light_summary(aggregator, profile.sla, profile.sla_options.error_aware), profile.sla, profile.sla_options)
    return {criterion(c.rule): int(c.passed) for c in verdict.checks}


def criterion(rule) -> str:
    """A criterion as the ``criterion`` label reads: ``p95 <= 800ms``, ``error_rate <= (default) 0.01``, ``login p95 <= 300ms``."""
    threshold = f"{rule.threshold:g}ms" if rule.unit == "ms" else f"{rule.threshold:g}"
    return f"{rule.label} {threshold}"
