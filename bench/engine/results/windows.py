"""Sliding-window metrics: an SLA criterion judged on every W-second window, not only on the whole run.

A whole-run p95 can hide ten bad seconds in ten good minutes; ``p95 over any
10 s window`` cannot. The aggregator hands each closed second (its latency
histograms and counters) to ``SlidingWindows``, which keeps only the last W
seconds and computes, for every window criterion, the metric over seconds
[k-W+1, k] each time second k closes. Windows start at the first measured
second; a run shorter than W is judged as one window over all it measured.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from bench.engine.workers.samples import PhaseCounts, new_histogram


@dataclass(slots=True)
class SecondBucket:
    """One second of the measured phase, merged over workers.

    Every histogram is a zeroed array of ~190 KB, allocated at the first report of
    each second, so a second keeps only what it is read for: ``latency``, the
    counters, and ``success`` only for error-aware windows (None otherwise).
    """

    latency: HdrHistogram = field(default_factory=new_histogram)
    success: HdrHistogram | None = None
    tally: PhaseCounts = field(default_factory=PhaseCounts)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window criterion's metric: ``metric`` as in profile.SLA_METRICS' summary keys, over ``seconds``."""

    key: str
    metric: str
    seconds: int
    error_aware: bool = False


@dataclass(frozen=True, slots=True)
class WindowValue:
    """The metric over the window ending with second ``end_second`` (inclusive), from ``samples`` requests."""

    end_second: int
    value: float | None
    samples: int


def window_metric(buckets: list[SecondBucket], metric: str, seconds: float, error_aware: bool) -> tuple[float | None, int]:
    """The metric over some seconds' buckets, and how many requests it rests on."""
    completed = sum(b.tally.completed for b in buckets)
    failures = sum(b.tally.failed for b in buckets)
    if metric == "error_rate":
        return (failures / completed if completed else None), completed
    if metric == "rps":
        return completed / seconds, completed
    merged = new_histogram()
    for bucket in buckets:
        merged.add(bucket.success if error_aware else bucket.latency)
    count = merged.get_total_count()
    if error_aware:
        total = count + failures
        if total == 0:
            return None, 0
        if metric == "mean":
            return (float("inf") if failures else merged.get_mean_value() / 1000), total
        p = 100.0 if metric == "max" else float(metric[1:])
        rank = p / 100 * total
        if failures and rank > count:
            return float("inf"), total
        return merged.get_value_at_percentile(min(100.0, 100.0 * rank / count)) / 1000, total
    if count == 0:
        return None, 0
    if metric == "max":
        return merged.get_max_value() / 1000, count
    if metric == "mean":
        return merged.get_mean_value() / 1000, count
    return merged.get_value_at_percentile(float(metric[1:])) / 1000, count


MAX_WINDOW_VALUES = 4096


class SlidingWindows:
    """Keeps the last few seconds and records each window criterion's value as seconds close."""

    def __init__(self, specs: list[WindowSpec]):
        self.specs = specs
        self.longest = max((s.seconds for s in specs), default=0)
        self.recent: deque[tuple[int, SecondBucket]] = deque()
        self.first_second: int | None = None
        self.values: dict[str, list[WindowValue]] = {s.key: [] for s in specs}

    def add(self, second: int, bucket: SecondBucket, *, judge: bool = True) -> list[tuple[WindowSpec, WindowValue]]:
        """Take a closed second; return the window values it completed.

        ``judge=False`` for the run's last, partial seconds: kept for ``finish``
        but not judged, since a partial second would read as a drop in rate.
        """
        if not self.specs:
            return []
        if self.first_second is None:
            self.first_second = second
        self.recent.append((second, bucket))
        while self.recent and self.recent[0][0] <= second - self.longest:
            self.recent.popleft()
        completed: list[tuple[WindowSpec, WindowValue]] = []
        if not judge:
            return completed
        for spec in self.specs:
            start = second - spec.seconds + 1
            if start < self.first_second:
                continue
            buckets = [b for s, b in self.recent if s >= start]
            value, samples = window_metric(buckets, spec.metric, spec.seconds, spec.error_aware)
            window_value = WindowValue(second, value, samples)
            values = self.values[spec.key]
            if len(values) >= MAX_WINDOW_VALUES:  # keep memory flat on long runs: only the worst windows matter
                higher_is_worse = spec.metric != "rps"
                values[:] = sorted((v for v in values if v.value is not None), key=lambda v: v.value, reverse=higher_is_worse)
                del values[MAX_WINDOW_VALUES // 2 :]
                values.sort(key=lambda v: v.end_second)
            values.append(window_value)
            completed.append((spec, window_value))
        return completed

    def finish(self, run_seconds: float) -> None:
        """A run shorter than a window: judge that criterion once, over everything measured.

        Only then are all of the run's seconds still in ``recent``.
        """
        buckets = [b for _, b in self.recent]
        for spec in self.specs:
            if not self.values[spec.key] and buckets:
                value, samples = window_metric(buckets, spec.metric, max(run_seconds, 1e-9), spec.error_aware)
                self.values[spec.key].append(WindowValue(-1, value, samples))
