"""What a worker records per request and what crosses the pipe to the parent, once per interval.

A worker never sends one message per request: it counts each request into
the interval's counters and, per histogram, a dict of HdrHistogram bucket ->
count (``Recorder``), and every ``interval_s`` ships one ``IntervalReport``
with those dicts as they are. The parent records them into its
HdrHistograms: the same buckets, so merging is exact and the parent's
percentiles are those of one histogram of every value, whatever the number of
workers. The worker builds no histogram at all: building and encoding seven
of them took it about 2 ms per interval, a stall every request due meanwhile
would have been sent late by.

Latencies are recorded in microseconds, from 1 µs to 1 hour, at 3 significant
figures (0.1 % resolution). A value outside that range is counted in
``overflow``, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_FIGURES = 3

HISTOGRAMS = ("latency", "success", "service", "lag", "ttft", "tpot", "itl")

MEASURED = "measured"
WARMUP = "warmup"

# Client error kinds: every request that got no HTTP response is counted as exactly one of these.
ERROR_KINDS = ("connect", "timeout", "read", "protocol", "body_too_large", "check", "cancelled", "other")


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


@dataclass(slots=True)
class PhaseCounts:
    """Counters of one phase (warm-up or measured) over one interval or a whole run; no histograms.

    The worker's ``Recorder`` keeps these per interval; ``PhaseTally`` adds
    the parent's histograms.
    """

    sent: int = 0
    ok: int = 0
    http_errors: int = 0
    client_errors: int = 0
    overflow: int = 0
    bytes_received: int = 0
    capped: int = 0
    unsent: int = 0
    check_errors: int = 0
    output_tokens: int = 0
    token_sources: dict[str, int] = field(default_factory=dict)
    good: int = 0
    input_tokens: int = 0  # prompt tokens sent (multi-turn conversations count them per turn)
    status: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_intended_ns: int | None = None
    last_intended_ns: int | None = None
    first_send_ns: int | None = None
    last_send_ns: int | None = None
    last_end_ns: int | None = None

    @property
    def completed(self) -> int:
        return self.ok + self.http_errors + self.client_errors + self.check_errors

    @property
    def failed(self) -> int:
        """Completed but not a success: HTTP error status, client error, or a failed check."""
        return self.http_errors + self.client_errors + self.check_errors

    def merge_counts(self, other: "PhaseCounts | PhaseReport") -> None:
        self.sent += other.sent
        self.ok += other.ok
        self.http_errors += other.http_errors
        self.client_errors += other.client_errors
        self.overflow += other.overflow
        self.bytes_received += other.bytes_received
        self.capped += other.capped
        self.unsent += other.unsent
        self.check_errors += other.check_errors
        self.output_tokens += other.output_tokens
        self.good += other.good
        self.input_tokens += other.input_tokens
        for source, n in other.token_sources.items():
            self.token_sources[source] = self.token_sources.get(source, 0) + n
        for code, n in other.status.items():
            self.status[code] = self.status.get(code, 0) + n
        for kind, n in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        self.first_intended_ns = _earliest(self.first_intended_ns, other.first_intended_ns)
        self.last_intended_ns = _latest(self.last_intended_ns, other.last_intended_ns)
        self.first_send_ns = _earliest(self.first_send_ns, other.first_send_ns)
        self.last_send_ns = _latest(self.last_send_ns, other.last_send_ns)
        self.last_end_ns = _latest(self.last_end_ns, other.last_end_ns)


@dataclass
class PhaseTally(PhaseCounts):
    """A phase's counters plus its histograms, as the parent merges them over a run.

    ``latency`` is the response time: from the intended send time in an open
    loop (coordinated-omission safe), from the actual send in a closed loop.
    ``success`` is ``latency`` of successful (2xx/3xx) responses only, the
    base of the error-aware percentiles. ``service`` is always from the actual
    send. ``lag`` is actual minus intended send (open loop only): how late the
    generator was.
    """

    latency: HdrHistogram = field(default_factory=new_histogram)
    success: HdrHistogram = field(default_factory=new_histogram)
    service: HdrHistogram = field(default_factory=new_histogram)
    lag: HdrHistogram = field(default_factory=new_histogram)
    ttft: HdrHistogram = field(default_factory=new_histogram)
    tpot: HdrHistogram = field(default_factory=new_histogram)
    itl: HdrHistogram = field(default_factory=new_histogram)

    def merge(self, part: "PhaseReport", latency_too: tuple[HdrHistogram, ...] = (), success_too: tuple[HdrHistogram, ...] = ()) -> None:
        """Add an interval report: its counters, and its bucket counts into the histograms.

        ``latency_too`` / ``success_too``: more histograms (a second's) that
        take the same latency / success values, recorded in the same pass.
        """
        self.merge_counts(part)
        # A worker ships one dict for several histograms when their values are the same (see Recorder):
        # success when the interval had no failure, service in a closed loop. Each dict is walked once.
        same = [self.latency, *latency_too]
        if part.success is part.latency:
            same += [self.success, *success_too]
        else:
            record_counts(part.success, self.success, *success_too)
        if part.service is part.latency:
            same.append(self.service)
        else:
            record_counts(part.service, self.service)
        record_counts(part.latency, *same)
        for name in HISTOGRAMS[3:]:
            record_counts(getattr(part, name), getattr(self, name))


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True, slots=True)
class PhaseReport:
    """A phase's interval as sent through the pipe: counters plus, per histogram, bucket floor (µs) -> count."""

    sent: int
    ok: int
    http_errors: int
    client_errors: int
    overflow: int
    bytes_received: int
    capped: int
    unsent: int
    check_errors: int
    output_tokens: int
    token_sources: dict[str, int]
    good: int
    status: dict[int, int]
    errors: dict[str, int]
    latency: dict[int, int]
    success: dict[int, int]
    service: dict[int, int]
    lag: dict[int, int]
    ttft: dict[int, int]
    tpot: dict[int, int]
    itl: dict[int, int]
    first_intended_ns: int | None
    last_intended_ns: int | None
    first_send_ns: int | None
    last_send_ns: int | None
    last_end_ns: int | None
    input_tokens: int = 0


@dataclass(slots=True)
class SessionCounts:
    """Sessions (of a profile with ``session:`` steps) over an interval or a run, measured phase only.

    Every session started ends as completed, failed (by the kind that ended
    it: ``capture``, ``http``, ``check`` or a client error kind) or
    unfinished (the run stopped first); the steps a failed session did not
    send are counted as skipped. ``duration`` holds completed sessions'
    durations (first step due -> last step's end, think times included) as
    bucket floor (µs) -> count.
    """

    started: int = 0
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    skipped_steps: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    duration: dict[int, int] = field(default_factory=dict)

    def fail(self, kind: str, skipped: int) -> None:
        self.failed += 1
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.skipped_steps += skipped

    def complete(self, duration_ns: int) -> None:
        self.completed += 1
        key = bucket_floor(min(HIGHEST_US, max(1, duration_ns // 1000)))
        self.duration[key] = self.duration.get(key, 0) + 1

    def merge(self, other: "SessionCounts") -> None:
        self.started += other.started
        self.completed += other.completed
        self.failed += other.failed
        self.unfinished += other.unfinished
        self.skipped_steps += other.skipped_steps
        for kind, n in other.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + n
        for key, n in other.duration.items():
            self.duration[key] = self.duration.get(key, 0) + n

    @property
    def empty(self) -> bool:
        return not (self.started or self.completed or self.failed or self.unfinished)


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """One worker's interval: sequence number ``seq`` covers [start + seq*interval, start + (seq+1)*interval).

    ``cpu_s`` and ``wall_s`` are the worker's CPU and wall time since the common start.
    ``groups``: measured requests by label (a session's step ``step:NAME``), each as a phase of its own;
    ``sessions``: the session counts, for a profile with ``session:`` steps.
    ``loop_lag``: how late the worker's event loop ran its lateness timer in this interval, as bucket floor (µs) -> count.
    ``bursts``: the load's shape, sends within one millisecond -> how many milliseconds had that many.
    """

    worker: int
    seq: int
    measured: PhaseReport | None
    warmup: PhaseReport | None
    in_flight: int
    cpu_s: float
    wall_s: float
    final: bool = False
    groups: dict[str, PhaseReport] | None = None
    sessions: SessionCounts | None = None
    loop_lag: dict[int, int] | None = None
    bursts: dict[int, int] | None = None  # sends within one millisecond -> milliseconds, closed this interval (Recorder)


def bucket_floor(value_us: int) -> int:
    """The lowest value of ``value_us``'s HdrHistogram bucket (1 µs lowest value, 3 significant figures).

    At 3 significant figures a bucket holds 2048 sub-buckets, so a value keeps
    its top 11 bits: recording ``bucket_floor(v)`` lands in exactly the bucket
    ``v`` would, and counting these floors in a dict during an interval, then
    recording each distinct floor once at flush, gives the same histogram as
    recording every value, for a dict update instead of hdrh's pure-Python
    ``record_value`` (about 2 µs) per value.
    """
    shift = value_us.bit_length() - 11
    return value_us if shift <= 0 else (value_us >> shift) << shift


_INDEXES: dict[tuple[int, int, int, int], dict[int, int]] = {}


def record_counts(counts: dict[int, int], *histograms: HdrHistogram) -> None:
    """Record bucket floor -> count pairs (as a Recorder counts them) into each of ``histograms``.

    The same as ``record_value(value, n)`` for each pair into each histogram
    (tested), with the counts-array index computed inline once per pair:
    hdrh's record_value makes five method calls per value, and the parent
    records thousands of distinct buckets per interval and worker.
    """
    if not counts or not histograms:
        return
    first = histograms[0]
    unit = first.unit_magnitude
    mask = first.sub_bucket_mask
    half_magnitude = first.sub_bucket_half_count_magnitude
    half = first.sub_bucket_half_count
    # Bucket floor -> counts-array index, remembered per histogram layout: the parent meets the same few
    # hundred floors in every report, and a lookup costs less than the arithmetic.
    indexes = _INDEXES.setdefault((unit, mask, half_magnitude, half), {})
    arrays = [h.counts for h in histograms]
    one = arrays[0] if len(arrays) == 1 else None
    for value, n in counts.items():
        index = indexes.get(value)
        if index is None:
            bucket = (value | mask).bit_length() - unit - half_magnitude - 1
            index = indexes[value] = ((bucket + 1) << half_magnitude) + (value >> (bucket + unit)) - half
        if one is not None:
            one[index] += n
        else:
            for array in arrays:
                array[index] += n
    total = sum(counts.values())
    low, high = min(counts), max(counts)
    for h in histograms:
        h.total_count += total
        h.min_value = min(h.min_value, low)
        h.max_value = max(h.max_value, high)


class Recorder:
    """Per-worker recording of finished requests into the current interval's counters and bucket counts.

    Runs once or twice per request on the worker's core, so it records no
    value twice: in a closed loop latency is the service time, so ``service``
    is shipped as the ``latency`` dict itself; and while an interval has no
    failed response, ``success`` is too (the first failure copies ``latency``
    into a ``success`` dict of its own, kept from then on).
    """

    def __init__(self, open_loop: bool = False) -> None:
        self.open_loop = open_loop
        self.phases = {MEASURED: PhaseCounts(), WARMUP: PhaseCounts()}
        self.origin_ns = 0  # the common start: span times are reported relative to it
        # Per phase, per histogram: bucket floor -> count, shipped as they are at flush.
        self.pending: dict[str, dict[str, dict[int, int]]] = {phase: _empty_counts() for phase in self.phases}
        # The load's shape: sends per millisecond of the monotonic clock, every phase. ``sends`` counts every
        # send since the start (never reset); ``_ms`` is the millisecond of the latest send and ``_ms_first``
        # the count before its first send; ``bursts`` holds, for the milliseconds closed this interval,
        # sends within one millisecond -> milliseconds (only milliseconds with a send count).
        self.sends = 0
        self._ms = -1
        self._ms_first = 0
        self.bursts: dict[int, int] = {}

    def sent(self, phase: str, sent_ns: int, intended_ns: int | None = None, *, capped: bool = False) -> None:
        """Count a request as sent; the intended/actual send times bound the phase for the rate check.

        ``capped``: it had to wait for the open loop's in-flight cap before it could go.
        """
        tally = self.phases[phase]
        tally.sent += 1
        ms = sent_ns // 1_000_000
        if ms != self._ms:
            self._new_ms(ms)
        self.sends += 1
        if capped:
            tally.capped += 1
        sent_ns -= self.origin_ns
        intended_ns = sent_ns if intended_ns is None else intended_ns - self.origin_ns
        if tally.first_send_ns is None:
            tally.first_send_ns = sent_ns
            tally.first_intended_ns = intended_ns
        tally.last_send_ns = sent_ns
        tally.last_intended_ns = intended_ns

    def finished(
        self,
        phase: str,
        intended_ns: int,
        sent_ns: int,
        end_ns: int,
        status: int | None,
        error: str | None,
        nbytes: int,
        facts: Any = None,
        good: bool = False,
    ) -> None:
        """Count one finished request: a response (any status) or a client error (``error`` kind).

        Latency counts from ``intended_ns`` in an open loop, from ``sent_ns``
        in a closed one. ``facts`` (a ResponseFacts) adds a failed check and
        inference metrics; ``good`` says it met every goodput objective.
        """
        tally = self.phases[phase]
        pending = self.pending[phase]
        end_rel = end_ns - self.origin_ns
        if tally.last_end_ns is None or end_rel > tally.last_end_ns:
            tally.last_end_ns = end_rel
        open_loop = self.open_loop
        # bucket_floor() inlined below: this runs once per request, and a call costs more than the arithmetic.
        if open_loop:
            lag_us = (sent_ns - intended_ns) // 1000
            if lag_us < 1:
                lag_us = 1
            if lag_us <= HIGHEST_US:
                shift = lag_us.bit_length() - 11
                key = lag_us if shift <= 0 else (lag_us >> shift) << shift
                counts = pending["lag"]
                counts[key] = counts.get(key, 0) + 1
        if error is not None:
            tally.client_errors += 1
            tally.errors[error] = tally.errors.get(error, 0) + 1
            return
        counts = tally.status
        counts[status] = counts.get(status, 0) + 1  # type: ignore[index]
        tally.bytes_received += nbytes
        service_us = (end_ns - sent_ns) // 1000
        if service_us < 1:
            service_us = 1
        if open_loop:
            if service_us <= HIGHEST_US:
                shift = service_us.bit_length() - 11
                key = service_us if shift <= 0 else (service_us >> shift) << shift
                counts = pending["service"]
                counts[key] = counts.get(key, 0) + 1
            latency_us = (end_ns - intended_ns) // 1000
            if latency_us < 1:
                latency_us = 1
        else:
            latency_us = service_us  # and the service dict is the latency dict (see _report)
        failed = status >= 400 or (facts is not None and facts.check_failed is not None)  # type: ignore[operator]
        split = tally.http_errors or tally.check_errors  # success has a dict of its own since this interval's first failure
        if failed and not split:
            pending["success"] = dict(pending["latency"])  # every latency so far was a success's
        if latency_us > HIGHEST_US:
            tally.overflow += 1
        else:
            shift = latency_us.bit_length() - 11
            key = latency_us if shift <= 0 else (latency_us >> shift) << shift
            counts = pending["latency"]
            counts[key] = counts.get(key, 0) + 1
            if split and not failed:
                counts = pending["success"]
                counts[key] = counts.get(key, 0) + 1
        if status >= 400:  # type: ignore[operator]
            tally.http_errors += 1
        elif failed:
            tally.check_errors += 1
            tally.errors["check"] = tally.errors.get("check", 0) + 1
        else:
            tally.ok += 1
        if good:
            tally.good += 1
        if facts is not None:
            self._inference(tally, pending, facts)

    def closed_response(self, phase: str, sent_ns: int, end_ns: int, status: int, nbytes: int, again: bool = False) -> None:
        """``finished()`` for a closed loop's plain response (no facts; good unless its status is 400 or more).

        The same counts and buckets (tested against ``finished``), with only
        the steps such a response can take: at full speed the callback-driven
        closed loop calls this once per request. Calls come in time order (one
        worker's clock, read as each response ends), so the last end is this
        one. ``again``: the user sends its next request of the same phase at
        ``end_ns``, counted here as ``sent(phase, end_ns)`` would.
        """
        tally = self.phases[phase]
        end_rel = tally.last_end_ns = end_ns - self.origin_ns
        if again:
            tally.sent += 1
            ms = end_ns // 1_000_000
            if ms != self._ms:
                self._new_ms(ms)
            self.sends += 1
            if tally.first_send_ns is None:
                tally.first_send_ns = tally.first_intended_ns = end_rel
            tally.last_send_ns = tally.last_intended_ns = end_rel
        counts = tally.status
        try:  # (cheaper than counts.get(): a status is new only once an interval)
            counts[status] += 1
        except KeyError:
            counts[status] = 1
        tally.bytes_received += nbytes
        latency_us = (end_ns - sent_ns) // 1000
        if latency_us < 2048:  # its own bucket (see bucket_floor)
            key = latency_us if latency_us > 0 else 1
        elif latency_us <= HIGHEST_US:
            shift = latency_us.bit_length() - 11
            key = (latency_us >> shift) << shift
        else:
            key = 0  # overflow: counted, not recorded
        pending = self.pending[phase]
        if status < 400:
            tally.ok += 1
            tally.good += 1
            if tally.http_errors or tally.check_errors:  # success has had a dict of its own since the first failure
                if key:
                    counts = pending["success"]
                    counts[key] = counts.get(key, 0) + 1
        else:
            if not tally.http_errors and not tally.check_errors:
                pending["success"] = dict(pending["latency"])  # every latency so far was a success's
            tally.http_errors += 1
        if not key:
            tally.overflow += 1
            return
        counts = pending["latency"]
        try:
            counts[key] += 1
        except KeyError:
            counts[key] = 1

    def _new_ms(self, ms: int) -> None:
        """A send in a new millisecond: count the last one's sends (``bursts``) and start this one."""
        n = self.sends - self._ms_first
        if n:
            bursts = self.bursts
            bursts[n] = bursts.get(n, 0) + 1
        self._ms = ms
        self._ms_first = self.sends

    @staticmethod
    def _inference(tally: PhaseCounts, pending: dict[str, dict[int, int]], facts: Any) -> None:
        for name, value_ns in (("ttft", facts.ttft_ns), ("tpot", facts.tpot_ns)):
            if value_ns is not None:
                counts = pending[name]
                key = bucket_floor(max(1, value_ns // 1000))
                counts[key] = counts.get(key, 0) + 1
        if facts.itl_ns:
            counts = pending["itl"]
            for gap_ns in facts.itl_ns:
                key = bucket_floor(max(1, gap_ns // 1000))
                counts[key] = counts.get(key, 0) + 1
        if facts.output_tokens is not None:
            tally.output_tokens += facts.output_tokens
            source = facts.token_source or "unknown"
            tally.token_sources[source] = tally.token_sources.get(source, 0) + 1

    def tally(self, phase: str) -> PhaseTally:
        """The current interval of a phase as a PhaseTally with histograms (for inspection; flush never builds one)."""
        tally = PhaseTally()
        tally.merge(self._report(phase))
        return tally

    def _report(self, phase: str) -> PhaseReport:
        c = self.phases[phase]
        h = self.pending[phase]
        latency = h["latency"]
        return PhaseReport(
            c.sent,
            c.ok,
            c.http_errors,
            c.client_errors,
            c.overflow,
            c.bytes_received,
            c.capped,
            c.unsent,
            c.check_errors,
            c.output_tokens,
            c.token_sources,
            c.good,
            c.status,
            c.errors,
            latency,
            # No failure this interval: every latency is a success's, so one dict for both (the parent records it once).
            h["success"] if c.http_errors or c.check_errors else latency,
            h["service"] if self.open_loop else latency,  # closed loop: latency is the service time
            h["lag"],
            h["ttft"],
            h["tpot"],
            h["itl"],
            c.first_intended_ns,
            c.last_intended_ns,
            c.first_send_ns,
            c.last_send_ns,
            c.last_end_ns,
            c.input_tokens,
        )

    def take(self, phase: str) -> PhaseReport | None:
        """One phase's interval as a PhaseReport (None when nothing happened), and a new empty one started."""
        counts = self.phases[phase]
        if counts.sent == 0 and counts.completed == 0 and counts.unsent == 0:
            return None
        report = self._report(phase)
        self.phases[phase] = PhaseCounts()
        self.pending[phase] = _empty_counts()
        return report

    def flush(self, worker: int, seq: int, in_flight: int, cpu_s: float, wall_s: float = 0.0, final: bool = False) -> IntervalReport:
        """Package the current interval as a report and start a new, empty one.

        The millisecond of the latest send stays open (more sends may fall in it) unless ``final``.
        """
        if final:
            self._new_ms(-1)
        bursts, self.bursts = self.bursts, {}
        reports: dict[str, PhaseReport | None] = {}
        for name, counts in self.phases.items():
            if counts.sent == 0 and counts.completed == 0 and counts.unsent == 0:
                reports[name] = None
                continue
            reports[name] = self._report(name)
            self.phases[name] = PhaseCounts()
            self.pending[name] = _empty_counts()
        return IntervalReport(worker, seq, reports[MEASURED], reports[WARMUP], in_flight, cpu_s, wall_s, final, bursts=bursts or None)


def _empty_counts() -> dict[str, dict[int, int]]:
    return {name: {} for name in HISTOGRAMS}
