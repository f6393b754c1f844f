"""Run a profile: start the mock if needed, start the workers, merge their reports, gate, write the report.

The parent never sends requests. An engine (``local.LocalEngine``: forked
processes and pipes; ``ray_engine.RayEngine``: Ray actors) starts
``load.workers`` workers, gives them a common start time once all are ready,
and hands back their interval reports and failures; the runner feeds every
IntervalReport to the Aggregator and a Snapshot to ``on_progress`` a few
times a second, without knowing which engine ran.

The first SIGINT or SIGTERM asks the workers to stop sending and drain; a
second SIGINT kills them at once. A worker that dies stops the run. In every
case the report is written with what was measured, and ``status`` says why
the run ended.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import os
import resource
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.engine.results.aggregate import Aggregator, Snapshot
from bench.engine.errors import ProfileError, RunError
from bench.engine.results.gate import Verdict, certain_failure, compare, evaluate, failure_alarm, window_key, window_specs
from bench.engine.plan.profile import Load, Profile, redact_url
from bench.engine.workers.chunks import merge_chunk_parts
from bench.engine.results.exports import HlogWriter, junit_xml, write_series_csv
from bench.engine.results.report import build_report, json_safe, merge_csv_parts, write_json
from bench.engine.results.selfcheck import assess
from bench.engine.workers.local import Engine, LocalEngine, WorkerFailed
from bench.engine.lowpriority import call_at_low_priority
from bench.gcpause import heap_frozen
from bench.telemetry import Telemetry
from bench.engine.workers.transports import preload
from bench.engine.workers.worker import WorkerSpec

COMPLETED = "completed"
ABORTED = "aborted"
INTERRUPTED = "interrupted"
CRASHED = "crashed"
UNMEASURABLE = "unmeasurable"

INTERVAL_S = 0.25
PROGRESS_EVERY_S = 0.25
SIGNAL_CHECK_S = 0.05  # the collector's longest wait: a Ctrl-C (counted by the main thread) is acted on within it
GC_EVERY_S = 10.0


@dataclass
class RunResult:
    """How a run ended, its numbers, its verdict and the report that was written."""

    profile: Profile
    status: str
    summary: dict[str, Any]
    verdict: Verdict
    report: dict[str, Any]
    messages: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the run completed and met every SLA criterion."""
        return self.status == COMPLETED and self.verdict.passed


class _Signals:
    """First SIGINT/SIGTERM: drain. Second SIGINT: stop at once. Installed only while a run is going."""

    def __init__(self) -> None:
        self.count = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.count += 1

    def stop_at_once(self) -> None:
        """As a second Ctrl-C: the collector kills the workers and returns."""
        self.count = max(self.count, 2)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run(profile: Profile, on_progress: Callable[[Snapshot], None] | None = None) -> RunResult:
    """Run the profile to the end and return its result; writes the outputs the profile names.

    The profile's ``engine`` section picks where the workers run (default: local processes).
    ``on_progress`` is called a few times a second with a Snapshot, from the
    collecting thread: not the caller's thread, niced by 10 on Linux, with
    SIGINT and SIGTERM blocked (see bench.engine.lowpriority).

    Raises:
        RunError: the mock server or the workers could not be started.
    """
    preflight(profile)
    mock = None
    url = profile.target.url
    if profile.uses_mock:
        from bench.mock import MockServerProcess

        mock = MockServerProcess(profile.mock).launch()
        try:
            if profile.engine.kind == "local":
                preload(profile.client.transport)  # while the mock's child starts up on its own
            mock.wait_ready()
        except RuntimeError as exc:
            mock.stop()  # safe twice: a failed wait_ready() has stopped it already
            raise RunError(f"could not start the mock server: {exc}") from None
        except BaseException:
            mock.stop()
            raise
        url = mock.url + "/"
    try:
        return _run_workers(profile, url, on_progress, profile.engine.kind)  # type: ignore[arg-type]
    finally:
        if mock is not None:
            mock.stop()


def _iso(wall_s: float | None) -> str | None:
    return None if wall_s is None else dt.datetime.fromtimestamp(wall_s, dt.timezone.utc).isoformat()


FD_MARGIN = 64  # files a worker opens besides its connections: pipes, loop, DNS, CSV
MIN_FREE_BYTES = 16 << 20


def preflight(profile: Profile) -> None:
    """Fail before anything starts on what would break later: too few file descriptors, unwritable outputs.

    Raises ProfileError naming what to change (exit 2).
    """
    _raise_fd_limit(profile)
    for path in (profile.output.json_path, profile.output.csv_path, *profile.output.extra_paths()):
        if path is None:
            continue
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ProfileError(profile.source, "output", f"cannot write {path}: {exc.strerror or exc}") from None
        try:
            free = shutil.disk_usage(path.parent if str(path.parent) else ".").free
        except OSError:
            continue
        if free < MIN_FREE_BYTES:
            raise ProfileError(profile.source, "output", f"only {free >> 20} MiB free where {path} goes; free some space or write elsewhere")


def _raise_fd_limit(profile: Profile) -> None:
    """Each worker holds its share of the connections open at once; raise the soft limit to fit, or say what to do."""
    load = profile.load
    pool = profile.client.pool_size if profile.client.pool_size is not None else load.peak_concurrency
    needed = -(-pool // load.workers) + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise ProfileError(
            profile.source,
            "load",
            f"each of the {load.workers} worker(s) needs about {needed} open files for its share of {pool} connections, "
            f"but the hard limit is {hard}: raise it (ulimit -Hn, or LimitNOFILE in systemd), add workers, or lower the concurrency",
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))  # inherited by the workers


def _secret_headers(profile: Profile) -> tuple[tuple[str, str], ...]:
    """The API key from the environment variable the profile names, as a header; never written anywhere."""
    if profile.api_key_env is None:
        return ()
    key = os.environ.get(profile.api_key_env)
    if not key:
        raise ProfileError(profile.source, "target.api_key_env", f"environment variable {profile.api_key_env} is not set (it should hold the API key)")
    return (("Authorization", f"Bearer {key}"),)


def _run_workers(profile: Profile, url: str, on_progress: Callable[[Snapshot], None] | None, engine_name: str = "local") -> RunResult:
    """The run, with its telemetry (live metrics out, the target's metrics in) around it when the profile asks for any."""
    telemetry = None
    if Telemetry.wanted(profile):
        telemetry = Telemetry(profile, url)
    try:
        if telemetry is not None:
            telemetry.start()
        return _run(profile, url, on_progress, engine_name, telemetry)
    finally:
        if telemetry is not None:
            telemetry.close()  # after the outputs are written: lingers until the final figures are scraped


def _run(profile: Profile, url: str, on_progress: Callable[[Snapshot], None] | None, engine_name: str, telemetry: Telemetry | None) -> RunResult:
    load = profile.load
    extra_headers = _secret_headers(profile)
    csv_dir = tempfile.mkdtemp(prefix="bench-csv-") if profile.output.csv_path else None
    csv_parts = [Path(csv_dir) / f"worker-{i}.csv" for i in range(load.workers)] if csv_dir else []
    chunks_dir = tempfile.mkdtemp(prefix="bench-chunks-") if profile.output.chunks_path else None
    chunk_parts = [Path(chunks_dir) / f"worker-{i}.jsonl" for i in range(load.workers)] if chunks_dir else []
    specs = [
        WorkerSpec(
            i, load.workers, profile, url, INTERVAL_S, str(csv_parts[i]) if csv_parts else None, extra_headers,
            str(chunk_parts[i]) if chunk_parts else None,
        )
        for i in range(load.workers)
    ]
    engine = make_engine(engine_name, specs)
    messages: list[str] = []
    hlog = HlogWriter(profile.output.hlog_path, time.time()) if profile.output.hlog_path else None
    aggregator = Aggregator(
        load.workers,
        INTERVAL_S,
        window_specs(profile.sla, profile.sla_options),
        open_loop=load.model == "open",
        on_second=hlog.add if hlog else None,
    )
    abort = _AbortWatch(profile)
    started_at = dt.datetime.now(dt.timezone.utc).isoformat()
    status = COMPLETED
    parent_cpu_start = parent_wall_start = 0.0
    with _Signals() as signals:
        try:
            engine.start()
            engine.begin()
            if telemetry is not None:
                telemetry.begin(engine.start_wall_s)
            parent_cpu_start, parent_wall_start = time.process_time(), time.monotonic()
            # On a lowered-priority thread, with the heap as it is now left out of collections:
            # a worker sharing the parent's core is not held up by the parent's bursts.
            with heap_frozen():
                status = call_at_low_priority(
                    _collect, engine, aggregator, signals, messages, on_progress, abort, telemetry, cancel=signals.stop_at_once
                )
        finally:
            engine.close()
            if telemetry is not None:
                telemetry.stop_scraping()
    parent_cpu = (time.process_time() - parent_cpu_start) / max(1e-9, time.monotonic() - parent_wall_start)
    aggregator.close()
    if hlog is not None:
        hlog.close()
    ended_at = dt.datetime.now(dt.timezone.utc).isoformat()
    summary = aggregator.summary()
    answered = summary["requests"]["ok"] + summary["requests"]["http_errors"] + summary["requests"]["check_failures"]
    if status in (COMPLETED, ABORTED) and answered == 0:
        status = UNMEASURABLE
        kinds = ", ".join(f"{k}: {n}" for k, n in summary["errors"].items()) or "no requests were sent"
        messages.append(f"no request got an HTTP response from {redact_url(url)} ({kinds})")
    summary["generator"]["parent_cpu"] = parent_cpu  # the aggregator and live view, not sending
    summary["trust"] = assess(load.model, summary)
    verdict = evaluate(summary, profile.sla, profile.sla_options)
    alarm = failure_alarm(summary)
    if alarm is not None:
        messages.append(alarm)
    messages.extend(getattr(engine, "notes", []))
    if telemetry is not None:
        telemetry.finish(aggregator, verdict, summary, messages)
    workers = engine.describe()
    report = build_report(
        profile,
        status=status,
        messages=messages,
        started_at=started_at,
        load_started_at=_iso(engine.start_wall_s),
        ended_at=ended_at,
        target_url=redact_url(url),
        summary=summary,
        verdict=verdict,
        worker_pids=[w["pid"] for w in workers],
    )
    report["engine"] = {"name": engine.name, "workers": workers, "lost_workers": sorted(aggregator.lost)}
    written = []
    if profile.output.json_path:
        write_json(profile.output.json_path, report)
        written.append(profile.output.json_path)
    if profile.output.csv_path and csv_dir:
        merge_csv_parts(profile.output.csv_path, csv_parts)
        os.rmdir(csv_dir)
        written.append(profile.output.csv_path)
    if profile.output.chunks_path and chunks_dir:
        merge_chunk_parts(profile.output.chunks_path, chunk_parts)
        os.rmdir(chunks_dir)
        written.append(profile.output.chunks_path)
    if hlog is not None:
        written.append(hlog.path)
    if profile.output.series_csv_path:
        write_series_csv(profile.output.series_csv_path, summary["series"])
        written.append(profile.output.series_csv_path)
    if profile.output.junit_path:
        profile.output.junit_path.write_text(junit_xml(json_safe(report)), encoding="utf-8")
        written.append(profile.output.junit_path)
    return RunResult(profile, status, summary, verdict, report, messages, written)


def make_engine(name: str, specs: list[WorkerSpec]) -> Engine:
    """The engine that places the workers: ``local`` (fork and pipes) or ``ray`` (Ray actors)."""
    if name == "ray":
        try:
            from bench.engine.workers.ray_engine import RayEngine
        except ImportError as exc:
            raise RunError(f"the ray engine needs Ray: pip install 'bench-loadtest[ray]' ({exc})") from None
        return RayEngine(specs, specs[0].profile.engine)
    return LocalEngine(specs)


def planned_measured_requests(profile: Profile) -> int | None:
    """An upper bound on the measured requests a run completes, when the plan gives one (for ``sla.fail_fast``).

    A request count; a trace's line count; or an open loop's constant rate times its duration (poisson:
    the expected count plus six standard deviations). A closed loop run for a
    duration has no such bound. With sessions or conversations those count
    sessions, each of at most its steps' (or its longest row's turns') requests.
    """
    load = profile.load
    if profile.session:
        per_session = len(profile.session)
    elif profile.conversation:
        per_session = max(len(row["turns"]) for row in profile.data.rows)
    else:
        per_session = 1
    if load.requests is not None:
        return load.requests * per_session
    if load.replay is not None:
        return load.replay.count
    if load.model == "open" and not load.stages and load.duration_s is not None and load.rate_per_s:
        expected = load.rate_per_s * load.duration_s
        spread = 0.0 if load.arrival == "constant" else 6 * math.sqrt(expected)
        return (math.ceil(expected + spread) + load.workers) * per_session  # each worker's share rounds up
    return None


class _AbortWatch:
    """Stops the run early: a window criterion marked ``abort_on_fail`` failed after its grace period, or
    (``sla.fail_fast``) a whole-run criterion can no longer pass."""

    def __init__(self, profile: Profile):
        self.rules = {window_key(r): r for r in profile.sla if r.window_s is not None and r.abort_on_fail}
        self.min_samples = profile.sla_options.min_samples
        self.reason: str | None = None
        self.stopping_text = ""  # what the live view says once it stopped the run
        self.whole_run = [r for r in profile.sla if r.window_s is None and not (profile.sla_options.error_aware and r.unit == "ms")]
        self.planned = planned_measured_requests(profile) if profile.sla_options.fail_fast and self.whole_run else None
        self._judged_completed = -1

    @property
    def active(self) -> bool:
        return bool(self.rules) or self.planned is not None

    def check(self, aggregator: Aggregator) -> str | None:
        if self.planned is not None and aggregator.measured.completed != self._judged_completed:
            self._judged_completed = aggregator.measured.completed
            measured = aggregator.measured
            why = certain_failure(self.whole_run, measured.latency, measured.failed, self.planned)
            if why is not None:
                self.reason = f"stopped early (fail_fast) at {aggregator.elapsed_s:.1f} s: {why}"
                self.stopping_text = "stopped early (fail_fast)"
                return self.reason
        for spec, value in aggregator.take_window_values():
            rule = self.rules.get(spec.key)
            if rule is None or value.value is None or value.samples < self.min_samples:
                continue
            window_end_s = value.end_second + 1
            if window_end_s < rule.grace_s or compare(rule, value.value):
                continue
            shown = f"{value.value:.2f} ms" if rule.unit == "ms" else f"{value.value:.4g}"
            self.reason = (
                f"aborted at {window_end_s} s: {rule.name} over the {rule.window_s:g} s window ending then was {shown}, "
                f"failing {rule.name} {rule.op} {rule.threshold:g} (abort_on_fail)"
            )
            self.stopping_text = "aborted by abort_on_fail"
            return self.reason
        return None


def _collect(engine: Engine, aggregator: Aggregator, signals: _Signals, messages: list[str], on_progress, abort: _AbortWatch, telemetry=None) -> str:
    """Feed the aggregator until every worker sent its final report; returns the run's status."""
    status = COMPLETED
    continue_on_failure = engine.continue_on_failure
    stop_sent = False
    last_progress = 0.0
    fresh = False  # reports merged since the last progress call
    last_collect = time.monotonic()
    while engine.running:
        if signals.count and not stop_sent:
            status = INTERRUPTED
            messages.append("interrupted: stopped sending, drained in-flight requests")
            aggregator.stopping = "interrupted"
            engine.stop()
            stop_sent = True
        if signals.count >= 2:
            messages.append("interrupted twice: stopped at once; requests in flight and the last interval are not counted")
            engine.kill()
            break
        for event in engine.poll(SIGNAL_CHECK_S):
            if isinstance(event, WorkerFailed):
                messages.append(event.message)
                if continue_on_failure:
                    aggregator.lose(event.index)  # the run goes on; the gap shows in the rate and the self-check
                else:
                    status = CRASHED
            else:
                aggregator.add(event)
                fresh = True
        if status == COMPLETED and abort.active and abort.check(aggregator):
            status = ABORTED
            messages.append(abort.reason)  # type: ignore[arg-type]
            aggregator.stopping = abort.stopping_text
            engine.stop()
            stop_sent = True
        if status == CRASHED and engine.running and not stop_sent:
            aggregator.stopping = "a worker failed"
            engine.stop()
            stop_sent = True
        if telemetry is not None:
            telemetry.update(aggregator)  # figures for a waiting scrape or OTLP export; else a flag check
        now = time.monotonic()
        if now - last_collect >= GC_EVERY_S:
            # hdrh histograms and their encoders reference each other, so every decoded interval
            # waits for the cycle collector; collecting regularly keeps the parent's memory flat.
            last_collect = now
            gc.collect()
        # Progress right after new reports (the wait wakes every SIGNAL_CHECK_S without them), at most
        # every PROGRESS_EVERY_S less some jitter, and once a second even when none came.
        since = now - last_progress
        if on_progress is not None and (since >= 0.8 * PROGRESS_EVERY_S and fresh or since >= 1.0):
            last_progress = now
            fresh = False
            on_progress(aggregator.snapshot())
    if on_progress is not None:
        on_progress(aggregator.snapshot())
    return status
