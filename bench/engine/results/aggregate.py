"""The parent's aggregator: merges workers' interval reports into run totals and a per-second series.

It owns all the numbers of a run. The live view gets immutable ``Snapshot``s,
the report gets a ``Summary``; neither touches the histograms. Memory is
bounded by the run's length in seconds (one small point per second), never by
its number of requests.
"""

from __future__ import annotations

import ctypes
import math
from collections import deque
from dataclasses import dataclass
from bisect import bisect_left
from itertools import accumulate
from typing import Any, Callable

from hdrh.histogram import HdrHistogram

from bench.engine.workers.samples import IntervalReport, PhaseTally, SessionCounts, new_histogram, record_counts
from bench.engine.results.windows import SecondBucket, SlidingWindows, WindowSpec, WindowValue

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
MAX_SERIES_SECONDS = 6 * 3600  # in-memory per-second points: bounded, whatever the run's length


_COUNT_FORMATS = {2: "H", 4: "I", 8: "Q"}


def _counts_list(histogram: HdrHistogram, last: int) -> list[int]:
    """The counts array's first ``last + 1`` entries as a list (through a memoryview: half the time of a ctypes slice)."""
    counts = histogram.counts
    fmt = _COUNT_FORMATS.get(ctypes.sizeof(counts._type_))  # noqa: SLF001 - the ctypes array's element type
    if fmt is None:
        return list(counts[: last + 1])
    return memoryview(counts).cast("B").cast(fmt)[: last + 1].tolist()


def percentile_values(histogram: HdrHistogram, percentiles) -> dict[float, int]:
    """The values hdrh's ``get_percentile_to_value_dict`` gives, from one pass over a copy of the counts array.

    hdrh calls a bounds-checked method per array index, which costs the
    parent several milliseconds per call on a histogram of ~20 ms values;
    this copies the used part of the array, sums it cumulatively and bisects
    for each percentile's target count, all at C speed (the first index whose
    running total reaches a target, a target being at least 1, is a
    non-empty bucket: the one hdrh's walk stops at). Empty histogram (or no
    percentile): an empty dict.
    """
    wanted = sorted(set(percentiles))
    result: dict[float, int] = {}
    if not wanted or wanted[0] > 100 or histogram.get_total_count() == 0:
        return result
    last = min(histogram.get_counts_array_index(histogram.get_max_value()), len(histogram.counts) - 1)
    running = list(accumulate(_counts_list(histogram, last)))
    for p in wanted:
        if p > 100:
            break
        index = bisect_left(running, histogram.get_target_count_at_percentile(p))
        if index == len(running):
            break
        value = histogram.get_value_from_index(index)
        result[p] = histogram.get_highest_equivalent_value(value) if p else histogram.get_lowest_equivalent_value(value)
    return result


def latency_stats(histogram: HdrHistogram) -> dict[str, float | int | None]:
    """min, mean, p50..p99.9, max, stddev (ms) and count of a microsecond histogram; None when empty."""
    count = histogram.get_total_count()
    if count == 0:
        return {"count": 0, "min": None, "mean": None, **{_pname(p): None for p in PERCENTILES}, "max": None, "stddev": None}
    values = percentile_values(histogram, PERCENTILES)
    mean_us, stddev_us = mean_and_stddev(histogram)
    stats: dict[str, float | int | None] = {
        "count": count,
        "min": histogram.get_min_value() / 1000,
        "mean": mean_us / 1000,
    }
    for p in PERCENTILES:
        stats[_pname(p)] = values[p] / 1000
    stats["max"] = histogram.get_max_value() / 1000
    stats["stddev"] = stddev_us / 1000
    return stats


def error_aware_stats(success: HdrHistogram, failures: int) -> dict[str, float | int | None]:
    """Percentiles over every completed request with each failed one counted as infinitely slow.

    A failure (HTTP error status or no response at all) can never make a
    service look faster: with n successes and f failures, percentile p is the
    successes' value at rank p*(n+f), or infinity once that rank passes n.
    """
    n = success.get_total_count()
    total = n + failures
    stats: dict[str, float | int | None] = {"count": total, "failures": failures}
    within: dict[str, float] = {}  # name -> percentile of the successes holding its rank
    for p in PERCENTILES + (100.0,):
        name = "max" if p == 100.0 else _pname(p)
        rank = p / 100 * total
        if total == 0:
            stats[name] = None
        elif failures and rank > n:
            stats[name] = math.inf
        else:
            within[name] = min(100.0, 100.0 * rank / n)
    values = percentile_values(success, within.values())
    for name, p in within.items():
        stats[name] = values[p] / 1000
    return stats


def mean_and_stddev(histogram: HdrHistogram) -> tuple[float, float]:
    """Mean and standard deviation as HdrHistogram defines them (bucket median values), in one pass.

    hdrh's own get_mean_value/get_stddev walk a Python iterator and take
    hundreds of milliseconds on a full histogram; this walks the counts array
    up to the maximum's index once.
    """
    counts = histogram.counts
    last = histogram.get_counts_array_index(histogram.get_max_value())
    median_value = histogram._hdr_median_equiv_value  # noqa: SLF001 - the library's own definition of a bucket's value
    value_at = histogram.get_value_from_index
    total = 0
    weighted = 0.0
    squares = 0.0
    for index in range(min(last + 1, histogram.counts_len)):
        n = counts[index]
        if n:
            value = median_value(value_at(index))
            total += n
            weighted += n * value
            squares += n * value * value
    if total == 0:
        return 0.0, 0.0
    mean = weighted / total
    return mean, max(0.0, squares / total - mean * mean) ** 0.5


def send_bursts(bursts: dict[int, int]) -> dict[str, Any] | None:
    """The load's shape from sends within one millisecond -> milliseconds (per worker, every phase, merged).

    ``busy_ms``: milliseconds with at least one send; ``p50``..``max``: sends
    in such a millisecond, nearest rank over them (1: sends never share a
    millisecond; a closed loop whose users send in lock-step shows its users
    per worker); ``sends``: the sends counted. None when nothing was sent.
    """
    busy = sum(bursts.values())
    if not busy:
        return None
    items = sorted(bursts.items())
    result: dict[str, Any] = {"busy_ms": busy, "sends": sum(n * ms for n, ms in items)}
    running = 0
    i = 0
    for p in (50, 90, 99):
        target = max(1, math.ceil(p / 100 * busy))
        while running + items[i][1] < target:
            running += items[i][1]
            i += 1
        result[f"p{p}"] = items[i][0]
    result["max"] = items[-1][0]
    return result


def _pname(p: float) -> str:
    return f"p{p:g}"


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One second of the measured phase (second 0 starts at the common start time)."""

    second: int
    sent: int
    completed: int
    ok: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    in_flight: int | None = None  # summed over workers, each at its last report of the second
    status: dict[int, int] | None = None  # status code -> responses completed in the second
    error_kinds: dict[str, int] | None = None  # client error kind (and "check") -> count
    output_tokens: int = 0
    inference: tuple[float | None, ...] | None = None  # TTFT, TPOT, ITL p50/p95/p99 (ms) of requests completed in the second


#: Per-second inference percentiles, in SeriesPoint.inference order.
INFERENCE_SERIES_KEYS = tuple(f"{m}_{p}_ms" for m in ("ttft", "tpot", "itl") for p in ("p50", "p95", "p99"))


def _counts_percentiles(counts: dict[int, int], like: HdrHistogram) -> tuple[float | None, float | None, float | None]:
    """p50, p95, p99 (ms) of bucket floor (µs) -> count, as ``percentile_values`` gives them (``like`` has the same buckets).

    A second of an inference run holds a few dozen distinct buckets: sorting
    them is far cheaper than allocating and walking a histogram per second.
    """
    total = sum(counts.values())
    if not total:
        return None, None, None
    result = []
    running = 0
    items = sorted(counts.items())
    i = 0
    for p in (50.0, 95.0, 99.0):
        target = max(1, int(p / 100 * total + 0.5))
        while running + items[i][1] < target:
            running += items[i][1]
            i += 1
        result.append(like.get_highest_equivalent_value(items[i][0]) / 1000)
    return result[0], result[1], result[2]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the live view shows; a copy, safe to render while the run goes on.

    Seconds count from the common start, warm-up included. ``closed_s``: the
    seconds every worker has reported past; ``last_*`` describe second
    ``closed_s - 1`` (zero and None when nothing happened in it), and
    ``last_sent_rps`` counts its warm-up sends too, so that it compares with
    the schedule over that same second. Everything here is computed when the
    snapshot is taken, not per report.
    """

    elapsed_s: float
    sent: int
    completed: int
    ok: int
    errors: int
    in_flight: int
    warmup_sent: int
    total_p50_ms: float | None
    total_p95_ms: float | None
    total_p99_ms: float | None
    last_p50_ms: float | None
    last_p95_ms: float | None
    last_p99_ms: float | None
    last_rps: float
    average_rps: float
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    last_sent_rps: float
    max_worker_cpu: float | None
    workers_done: int
    workers: int
    warmup_completed: int = 0
    warmup_errors: int = 0
    measure_start_s: float | None = None  # when the first measured request went out (to a report interval)
    measured_s: float = 0.0  # the measured phase so far: the denominator of average_rps
    closed_s: int = 0
    http_errors: int = 0
    status_codes: tuple[tuple[int, int], ...] = ()  # (status, count), most frequent first
    error_kinds: tuple[tuple[str, int], ...] = ()  # client error kinds (check included), most frequent first
    total_max_ms: float | None = None
    last_max_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p95_ms: float | None = None
    tpot_p99_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    itl_p99_ms: float | None = None
    output_tokens: int = 0
    output_tokens_per_s: float | None = None
    stopping: str | None = None  # why the run was told to stop early (interrupted, aborted...), while it drains
    sessions_started: int = 0  # a session profile's measured sessions (load.requests counts these)
    sessions_done: int = 0  # completed + failed + unfinished

    @property
    def done(self) -> bool:
        """Every worker has sent its final report: the figures are the run's."""
        return self.workers_done >= self.workers > 0


class Aggregator:
    """Merges IntervalReports from every worker; exact, because HdrHistograms merge exactly."""

    def __init__(
        self,
        workers: int,
        interval_s: float,
        windows: list[WindowSpec] | None = None,
        *,
        open_loop: bool = False,
        on_second: Callable[[int, HdrHistogram], None] | None = None,
    ):
        self.workers = workers
        self.on_second = on_second
        self.open_loop = open_loop
        self.windows = SlidingWindows(windows or [])
        # A second's success histogram is only read by error-aware windows: without one, it is not recorded.
        self._second_success = any(spec.error_aware for spec in windows or [])
        self.new_window_values: list[tuple[WindowSpec, WindowValue]] = []
        self.interval_s = interval_s
        self.reports_per_second = max(1, round(1.0 / interval_s))
        self.measured = PhaseTally()
        self.warmup = PhaseTally()
        self.groups: dict[str, PhaseTally] = {}  # label (a session's step "step:NAME") -> its measured requests
        self.sessions = SessionCounts()
        self.bursts: dict[int, int] = {}  # sends within one millisecond (of one worker) -> milliseconds, merged
        self.last_seq: dict[int, int] = {}
        self.in_flight: dict[int, int] = {}
        self.cpu_s: dict[int, float] = {}
        self.wall_s: dict[int, float] = {}
        self.recent_cpu: dict[int, float] = {}
        self.loop_lag = new_histogram()  # every worker's event-loop lateness samples (see Worker._on_tick)
        self.finished: set[int] = set()
        self.lost: set[int] = set()
        self._open_seconds: dict[int, SecondBucket] = {}
        # The last MAX_SERIES_SECONDS seconds; older ones are only in the streamed .hlog / series CSV.
        self.series: deque[SeriesPoint] = deque(maxlen=MAX_SERIES_SECONDS)
        self.seconds_closed = 0
        self._elapsed_s = 0.0
        # Per open second: each worker's in-flight count at its last report, and TTFT/TPOT/ITL bucket counts (inference only).
        self._second_in_flight: dict[int, dict[int, int]] = {}
        self._second_inference: dict[int, tuple[dict[int, int], dict[int, int], dict[int, int]]] = {}
        self.warmup_end_s: float | None = None
        self._closed_through = 0  # seconds [0, this) are closed
        self._warmup_sent: dict[int, int] = {}  # second -> warm-up sends, kept until the second after it closes
        self._measure_start_s: float | None = None
        self._percentile_cache: dict[str, tuple[int, dict[float, int]]] = {}  # histogram -> (its count, its values)
        self.stopping: str | None = None  # set by the runner when it tells the workers to stop early

    @property
    def elapsed_s(self) -> float:
        """Seconds of the run covered by the reports merged so far."""
        return self._elapsed_s

    # ------------------------------------------------------------------ input

    def add(self, report: IntervalReport) -> None:
        if report.groups:
            for label, part in report.groups.items():
                tally = self.groups.get(label)
                if tally is None:
                    tally = self.groups[label] = PhaseTally()
                tally.merge(part)
        if report.sessions is not None:
            self.sessions.merge(report.sessions)
        if report.bursts:
            bursts = self.bursts
            for n, ms in report.bursts.items():
                bursts[n] = bursts.get(n, 0) + ms
        self.last_seq[report.worker] = report.seq
        self.in_flight[report.worker] = report.in_flight
        previous_cpu = self.cpu_s.get(report.worker, 0.0)
        previous_wall = self.wall_s.get(report.worker, 0.0)
        if report.wall_s > previous_wall:
            self.recent_cpu[report.worker] = (report.cpu_s - previous_cpu) / (report.wall_s - previous_wall)
        self.cpu_s[report.worker] = report.cpu_s
        self.wall_s[report.worker] = report.wall_s
        if report.loop_lag:
            record_counts(report.loop_lag, self.loop_lag)
        self._elapsed_s = max(self._elapsed_s, (report.seq + 1) * self.interval_s)
        if report.final:
            self.finished.add(report.worker)
        if report.warmup is not None:
            self.warmup.merge(report.warmup)
            if report.warmup.sent:
                self.warmup_end_s = (report.seq + 1) * self.interval_s
                second = report.seq // self.reports_per_second
                self._warmup_sent[second] = self._warmup_sent.get(second, 0) + report.warmup.sent
        if report.measured is not None:
            if self._measure_start_s is None and report.measured.sent:
                self._measure_start_s = report.seq * self.interval_s
            second = report.seq // self.reports_per_second
            flight = self._second_in_flight.get(second)
            if flight is None:
                flight = self._second_in_flight[second] = {}
            flight[report.worker] = report.in_flight
            part = report.measured
            if part.ttft or part.tpot or part.itl:
                held = self._second_inference.get(second)
                if held is None:
                    held = self._second_inference[second] = ({}, {}, {})
                for into, counts in zip(held, (part.ttft, part.tpot, part.itl)):
                    for floor, n in counts.items():
                        into[floor] = into.get(floor, 0) + n
            bucket = self._open_seconds.get(second)
            if bucket is None:  # (not setdefault: a SecondBucket allocates its histograms)
                success = new_histogram() if self._second_success else None
                bucket = self._open_seconds[second] = SecondBucket(success=success)
            bucket.tally.merge_counts(report.measured)
            self.measured.merge(report.measured, (bucket.latency,), (bucket.success,) if bucket.success is not None else ())
        self._close_finished_seconds()

    def _close_finished_seconds(self, everything: bool = False) -> None:
        """Reduce seconds every worker has reported past to a SeriesPoint, and free their histograms."""
        if everything:
            done_second = math.inf
        elif len(self.last_seq) < self.workers:
            return
        else:
            done_second = min(
                (seq + 1) // self.reports_per_second if w not in self.finished else math.inf for w, seq in self.last_seq.items()
            )
        if done_second == math.inf:
            done_second_seen = max(self._open_seconds, default=self._closed_through - 1) + 1
        else:
            done_second_seen = done_second
        if done_second_seen > self._closed_through:
            self._closed_through = done_second_seen
            if self._warmup_sent:
                for second in [s for s in self._warmup_sent if s < done_second_seen - 1]:
                    del self._warmup_sent[second]
        for second in sorted(s for s in self._open_seconds if s < done_second):
            bucket = self._open_seconds.pop(second)
            tally = bucket.tally
            if bucket.latency.get_total_count():
                values = percentile_values(bucket.latency, (50.0, 95.0, 99.0))
                p50, p95, p99 = (values[p] / 1000 for p in (50.0, 95.0, 99.0))
                peak: float | None = bucket.latency.get_max_value() / 1000
            else:
                p50 = p95 = p99 = peak = None
            flight = self._second_in_flight.pop(second, None)
            held = self._second_inference.pop(second, None)
            inference = None
            if held is not None:
                m = self.measured
                inference = (
                    *_counts_percentiles(held[0], m.ttft),
                    *_counts_percentiles(held[1], m.tpot),
                    *_counts_percentiles(held[2], m.itl),
                )
            self.seconds_closed += 1
            self.series.append(
                SeriesPoint(
                    second, tally.sent, tally.completed, tally.ok, tally.failed, p50, p95, p99, peak,
                    sum(flight.values()) if flight else None, tally.status, tally.errors, tally.output_tokens, inference,
                )
            )
            self.new_window_values.extend(self.windows.add(second, bucket, judge=not everything))
            if self.on_second is not None:
                self.on_second(second, bucket.latency)

    def lose(self, worker: int) -> None:
        """A worker is gone (on_worker_failure: continue): stop waiting for its reports."""
        self.lost.add(worker)
        self.finished.add(worker)
        self.last_seq.setdefault(worker, -1)
        self._close_finished_seconds()

    def close(self) -> None:
        """The run is over: turn every remaining second into a series point."""
        self._close_finished_seconds(everything=True)
        self.windows.finish(self.measured_seconds())

    def take_window_values(self) -> list[tuple[WindowSpec, WindowValue]]:
        """Window values computed since the last call (for abort-on-fail checks while running)."""
        values, self.new_window_values = self.new_window_values, []
        return values

    # ------------------------------------------------------------------ output

    def _percentiles(self, name: str, percentiles: tuple[float, ...]) -> dict[float, int] | None:
        """A measured histogram's percentile values, walked again only when its count has changed since the last snapshot."""
        histogram = getattr(self.measured, name)
        count = histogram.get_total_count()
        if not count:
            return None
        cached = self._percentile_cache.get(name)
        if cached is not None and cached[0] == count:
            return cached[1]
        values = percentile_values(histogram, percentiles)
        self._percentile_cache[name] = (count, values)
        return values

    def snapshot(self) -> Snapshot:
        m = self.measured
        total = self._percentiles("latency", (50.0, 95.0, 99.0))
        closed = self._closed_through
        last = self.series[-1] if self.series and self.series[-1].second == closed - 1 else None
        lag = self._percentiles("lag", (50.0, 99.0))
        measured_s = self.measured_seconds()
        stream: dict[str, float | None] = {}
        for name in ("ttft", "tpot", "itl"):
            values = self._percentiles(name, (50.0, 95.0, 99.0))
            for p in (50, 95, 99):
                stream[f"{name}_p{p}_ms"] = values[float(p)] / 1000 if values else None
        warm = self.warmup
        return Snapshot(
            elapsed_s=self._elapsed_s,
            sent=m.sent,
            completed=m.completed,
            ok=m.ok,
            errors=m.failed,
            in_flight=sum(self.in_flight.values()),
            warmup_sent=warm.sent,
            total_p50_ms=total[50.0] / 1000 if total else None,
            total_p95_ms=total[95.0] / 1000 if total else None,
            total_p99_ms=total[99.0] / 1000 if total else None,
            last_p50_ms=last.p50_ms if last else None,
            last_p95_ms=last.p95_ms if last else None,
            last_p99_ms=last.p99_ms if last else None,
            last_rps=float(last.completed) if last else 0.0,
            average_rps=m.completed / measured_s if measured_s > 0 else 0.0,
            lag_p50_ms=lag[50.0] / 1000 if lag else None,
            lag_p99_ms=lag[99.0] / 1000 if lag else None,
            last_sent_rps=float((last.sent if last else 0) + self._warmup_sent.get(closed - 1, 0)),
            max_worker_cpu=max(self.recent_cpu.values()) if self.recent_cpu else None,
            workers_done=len(self.finished),
            workers=self.workers,
            warmup_completed=warm.completed,
            warmup_errors=warm.failed,
            measure_start_s=self._measure_start_s,
            measured_s=measured_s,
            closed_s=closed,
            http_errors=m.http_errors,
            status_codes=tuple(sorted(m.status.items(), key=lambda kv: (-kv[1], kv[0]))),
            error_kinds=tuple(sorted(m.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
            total_max_ms=m.latency.get_max_value() / 1000 if total else None,
            sessions_started=self.sessions.started,
            sessions_done=self.sessions.completed + self.sessions.failed + self.sessions.unfinished,
            last_max_ms=last.max_ms if last else None,
            output_tokens=m.output_tokens,
            output_tokens_per_s=m.output_tokens / measured_s if m.token_sources and measured_s > 0 else None,
            stopping=self.stopping,
            **stream,  # type: ignore[arg-type]
        )

    def measured_seconds(self) -> float:
        """Length of the measured phase, the denominator of ``rps``.

        Closed loop: first send to last completion. Open loop: the schedule's
        window, first intended send to the last send (intended or actual,
        whichever is later) plus one mean gap, so n requests at rate R span
        exactly n/R, and a slow last response does not read as a lower rate;
        a generator that falls behind stretches the window and lowers it.
        """
        m = self.measured
        if self.open_loop and m.sent > 1 and m.first_intended_ns is not None:
            last = max(m.last_intended_ns or 0, m.last_send_ns or 0)
            span = (last - m.first_intended_ns) / 1e9
            if span > 0:
                return span * m.sent / (m.sent - 1)
        if m.first_send_ns is None or m.last_end_ns is None:
            return 0.0
        return max(0.0, (m.last_end_ns - m.first_send_ns) / 1e9)

    def _generator(self) -> dict[str, Any]:
        """How well the generator kept its schedule: requested vs achieved send rate, and worker CPU.

        requested = sends per second the schedule asked for over the measured phase
        (first to last intended send); achieved = the same requests over the span
        in which they really left (first intended to last actual send). Sent late
        but all sent gives a ratio near 1 with a high lag; falling further and
        further behind gives a ratio under 1.
        """
        m = self.measured
        requested = achieved = ratio = None
        if self.open_loop and m.sent > 1 and m.first_intended_ns is not None and m.last_intended_ns is not None and m.last_send_ns is not None:
            intended_span = (m.last_intended_ns - m.first_intended_ns) / 1e9
            sent_span = (m.last_send_ns - m.first_intended_ns) / 1e9
            if intended_span > 0 and sent_span > 0:
                requested = (m.sent - 1) / intended_span
                achieved = (m.sent - 1) / sent_span
                ratio = achieved / requested
        cpu = {str(w): self.cpu_s[w] / self.wall_s[w] for w in sorted(self.cpu_s) if self.wall_s.get(w)}
        # How late the workers' event loops ran a due timer (warm-up included), over every worker's samples.
        lag = latency_stats(self.loop_lag)
        return {
            "requested_rps": requested, "achieved_rps": achieved, "rate_ratio": ratio, "worker_cpu": cpu,
            "loop_lag_p50_ms": lag["p50"], "loop_lag_p99_ms": lag["p99"], "loop_lag_max_ms": lag["max"],
            "send_bursts": send_bursts(self.bursts),
        }  # fmt: skip

    def _inference(self, seconds: float) -> dict[str, Any] | None:
        """Inference metrics, present when any response reported tokens or a first token (see sse.py for definitions)."""
        m = self.measured
        if not m.token_sources and not m.ttft.get_total_count():
            return None
        return {
            "ttft": latency_stats(m.ttft),
            "tpot": latency_stats(m.tpot),
            "itl": latency_stats(m.itl),
            "output_tokens": m.output_tokens,
            "token_source": dict(sorted(m.token_sources.items())),
            "output_tokens_per_s": m.output_tokens / seconds if seconds > 0 else None,
            "output_tokens_per_request": m.output_tokens / sum(m.token_sources.values()) if m.token_sources else None,
        }

    @staticmethod
    def _point(p: SeriesPoint, inference_run: bool) -> dict[str, Any]:
        point: dict[str, Any] = {
            "second": p.second,
            "sent": p.sent,
            "completed": p.completed,
            "ok": p.ok,
            "errors": p.errors,
            "p50_ms": p.p50_ms,
            "p95_ms": p.p95_ms,
            "p99_ms": p.p99_ms,
            "max_ms": p.max_ms,
            "in_flight": p.in_flight,
            "status_codes": {str(code): n for code, n in sorted((p.status or {}).items())},
            "error_kinds": dict(sorted((p.error_kinds or {}).items())),
        }
        if inference_run:
            point["output_tokens"] = p.output_tokens
            point.update(zip(INFERENCE_SERIES_KEYS, p.inference or (None,) * len(INFERENCE_SERIES_KEYS)))
        return point

    def _steps(self) -> list[tuple[str, PhaseTally]]:
        return [(label[5:], tally) for label, tally in self.groups.items() if label.startswith("step:")]

    def _turns(self) -> list[tuple[str, PhaseTally]]:
        return sorted(((label[5:], t) for label, t in self.groups.items() if label.startswith("turn:")), key=lambda kv: int(kv[0]))

    def _session_summary(self, seconds: float) -> dict[str, Any]:
        """``steps`` (per step: requests and latency shaped like the top level) and ``sessions``, for a session profile."""
        if not self.groups and self.sessions.empty:
            return {}
        steps = {}
        for name, t in self._steps():
            steps[name] = {
                "requests": {
                    "sent": t.sent,
                    "completed": t.completed,
                    "ok": t.ok,
                    "http_errors": t.http_errors,
                    "client_errors": t.client_errors,
                    "check_failures": t.check_errors,
                    "unfinished": t.sent - t.completed,
                },
                "status_codes": {str(code): n for code, n in sorted(t.status.items())},
                "errors": dict(sorted(t.errors.items())),
                "error_rate": t.failed / t.completed if t.completed else None,
                "rps": t.completed / seconds if seconds > 0 else None,
                "latency": latency_stats(t.latency),
            }
        turns = {}
        for number, t in self._turns():
            turns[number] = {
                "requests": {"sent": t.sent, "completed": t.completed, "ok": t.ok, "http_errors": t.http_errors,
                             "client_errors": t.client_errors, "check_failures": t.check_errors, "unfinished": t.sent - t.completed},
                "error_rate": t.failed / t.completed if t.completed else None,
                "latency": latency_stats(t.latency),
                "ttft": latency_stats(t.ttft),
                "tpot": latency_stats(t.tpot),
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
            }  # fmt: skip
        s = self.sessions
        duration = new_histogram()
        record_counts(s.duration, duration)
        return {
            **({"turns": turns} if turns else {}),
            "steps": steps,
            "sessions": {
                "started": s.started,
                "completed": s.completed,
                "failed": s.failed,
                "unfinished": s.unfinished,
                "failures": dict(sorted(s.failures.items())),
                "skipped_steps": s.skipped_steps,
                "per_s": s.completed / seconds if seconds > 0 else None,
                "duration": latency_stats(duration),
            },
        }

    def summary(self) -> dict[str, Any]:
        """The run's numbers in plain JSON types (ms for latencies), for the gate and the report."""
        m = self.measured
        seconds = self.measured_seconds()
        errors = m.failed
        inference_run = bool(m.token_sources or m.ttft.get_total_count())
        return {
            "requests": {
                "sent": m.sent,
                "completed": m.completed,
                "ok": m.ok,
                "http_errors": m.http_errors,
                "client_errors": m.client_errors,
                "check_failures": m.check_errors,
                "unfinished": m.sent - m.completed,
                "waited_for_cap": m.capped,
                "due_but_not_sent": m.unsent,
            },
            "status_codes": {str(code): n for code, n in sorted(m.status.items())},
            "errors": dict(sorted(m.errors.items())),
            "error_rate": errors / m.completed if m.completed else None,
            "duration_s": seconds,
            "rps": m.completed / seconds if seconds > 0 else None,
            "bytes_received": m.bytes_received,
            "latency": latency_stats(m.latency),
            "service": latency_stats(m.service),
            "schedule_lag": latency_stats(m.lag),
            "overflow": m.overflow,
            "worker_cpu_s": {str(w): round(c, 3) for w, c in sorted(self.cpu_s.items())},
            "generator": self._generator(),
            "windows": {
                key: [{"end_second": v.end_second, "value": v.value, "samples": v.samples} for v in values]
                for key, values in self.windows.values.items()
            },
            "latency_error_aware": error_aware_stats(m.success, m.failed),
            "inference": self._inference(seconds),
            # Requests that succeeded and met every goodput objective (all successes when there are none).
            "goodput": {
                "good": m.good,
                "completed": m.completed,
                "ratio": m.good / m.completed if m.completed else None,
                "rps": m.good / seconds if seconds > 0 else None,
            },
            "warmup": {
                "sent": self.warmup.sent,
                "completed": self.warmup.completed,
                "ok": self.warmup.ok,
                "http_errors": self.warmup.http_errors,
                "client_errors": self.warmup.client_errors,
                "errors": dict(sorted(self.warmup.errors.items())),
                "latency": latency_stats(self.warmup.latency),
                # Seconds from the common start by which the last warm-up request was sent (report granularity).
                "end_s": self.warmup_end_s,
            },
            "series_seconds_dropped": self.seconds_closed - len(self.series),
            # Seconds from the common start to the last worker report: the last series second is partial when this ends inside it.
            "series_end_s": max(self.wall_s.values()) if self.wall_s else None,
            "series": [self._point(p, inference_run) for p in self.series],
            **self._session_summary(seconds),
            "histograms": {
                "unit": "us",
                **{f"step:{name}": step.latency.encode().decode("ascii") for name, step in self._steps() if step.latency.get_total_count()},
                **{f"turn:{n}": turn.latency.encode().decode("ascii") for n, turn in self._turns() if turn.latency.get_total_count()},
                **{f"turn:{n}:ttft": turn.ttft.encode().decode("ascii") for n, turn in self._turns() if turn.ttft.get_total_count()},
                "latency": m.latency.encode().decode("ascii") if m.latency.get_total_count() else "",
                "service": m.service.encode().decode("ascii") if m.service.get_total_count() else "",
                "schedule_lag": m.lag.encode().decode("ascii") if m.lag.get_total_count() else "",
                "ttft": m.ttft.encode().decode("ascii") if m.ttft.get_total_count() else "",
                "tpot": m.tpot.encode().decode("ascii") if m.tpot.get_total_count() else "",
                "itl": m.itl.encode().decode("ascii") if m.itl.get_total_count() else "",
            },
        }
