"""The target's own metrics: its Prometheus endpoint (``target.metrics_url``) scraped every second during a run.

A thread of the parent (niced as the collecting thread is, signals blocked)
fetches the endpoint once a second with a timeout of a second, parses the
Prometheus text with prometheus_client's parser and keeps, per series, the
last value seen in each second of the run (second 0 starts at the workers'
common start, as the per-second series do). Workers never wait for it.

Which series: those ``target.metrics`` picks (a name, matched exactly, or a
regex matched against the whole name), or, without picks, every numeric
series except histogram buckets, quantiles and ``_created`` timestamps. At
most ``MAX_SERIES`` are kept (in the order the endpoint lists them); the
rest are named in a message of the report.
"""

from __future__ import annotations

import math
import re
import signal
import http.client
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

MAX_SERIES = 50
EVERY_S = 1.0
TIMEOUT_S = 1.0
MAX_BYTES = 8 << 20

#: Useful picks for model servers (README, docs/profiles.md); exact names.
PICKS = {
    "vllm": ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
    "tgi": ("tgi_queue_size", "tgi_batch_current_size", "tgi_batch_current_max_tokens"),
    "sglang": ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", "sglang:cache_hit_rate"),
}


def series_name(name: str, labels: dict[str, str]) -> str:
    """``name{a="1",b="2"}`` (labels sorted), or the bare name."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _wanted_lines(text: str, wanted) -> str:
    """The text without the sample lines whose metric name ``wanted(name)`` rejects, nor the HELP comments.

    Names are decided once each and lines dropped before the parser sees them:
    prometheus_client's parser reads about 5 µs a line, and a model server's
    /metrics is mostly histogram buckets bench does not keep. ``# TYPE`` lines
    stay (a counter's samples are named by its type), and so does any line
    whose name this does not recognise: ``parse`` decides on the parsed names.
    """
    decided: dict[str, bool] = {}
    kept = []
    for line in text.split("\n"):  # the format's only line break (str.splitlines would split label values too)
        if not line:
            continue
        if line[0] == "#":
            if line.startswith("# TYPE "):
                kept.append(line)
            continue
        match = _NAME.match(line)
        if match is None:
            kept.append(line)
            continue
        name = match.group()
        keep = decided.get(name)
        if keep is None:
            keep = decided[name] = wanted(name)
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def parse(text: str, picks: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """(series, value) of the numeric samples ``picks`` selects (all but buckets, quantiles and _created without picks)."""
    patterns = [re.compile(p) for p in picks]

    def picked(name: str) -> bool:
        return any(name == p.pattern or p.fullmatch(name) for p in patterns)

    if patterns:  # a counter's line may lack the _total its sample is named with
        text = _wanted_lines(text, lambda name: picked(name) or picked(name + "_total"))
    else:
        text = _wanted_lines(text, lambda name: not name.endswith(("_bucket", "_created")))
    out: list[tuple[str, float]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if patterns:
                if not picked(name):
                    continue
            elif name.endswith(("_bucket", "_created")) or "quantile" in sample.labels:
                continue
            value = float(sample.value)
            if math.isfinite(value):
                out.append((series_name(name, sample.labels), value))
    return out


class TargetScraper:
    """Scrapes ``url`` every second from ``begin(start_wall_s)`` until ``stop()``."""

    def __init__(self, url: str, picks: tuple[str, ...] = (), *, every_s: float = EVERY_S, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        self.picks = picks
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.values: dict[str, dict[int, float]] = {}  # series -> second -> last value in it
        self.dropped: dict[str, None] = {}  # series beyond MAX_SERIES, in order seen
        self.scrapes = 0
        self.failures: dict[str, int] = {}
        self.gaps: list[tuple[int, str]] = []  # (second, kind) of each failed scrape of the run
        self._start_wall_s: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Built here, before the workers start: the first urlopen() builds one with an SSL context (CA certificates
        # read), which took most of the first scrape's 10 ms, on the clock of a run at full load.
        self._opener = urllib.request.build_opener()

    def begin(self, start_wall_s: float | None) -> None:
        self._start_wall_s = start_wall_s if start_wall_s is not None else time.time()
        self._thread = threading.Thread(target=self._loop, name="bench-target-metrics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from bench.engine.lowpriority import BLOCKED_SIGNALS, lower_this_thread

        lower_this_thread()
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_SIGNALS)
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.scrape_once()
            next_at += self.every_s
            now = time.monotonic()
            if next_at < now:  # a slow scrape: skip the seconds it overran, do not catch up
                next_at = now + self.every_s
            self._stop.wait(next_at - now)

    def scrape_once(self) -> None:
        at = time.time()
        try:
            text = self._fetch()
            samples = parse(text, self.picks)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if self._stop.is_set():
                return  # the run is over: its record is being read
            self.scrapes += 1
            kind = _failure_kind(exc)
            self.failures[kind] = self.failures.get(kind, 0) + 1
            second = math.floor(at - (self._start_wall_s or at))
            if second >= 0:
                self.gaps.append((second, kind))
            return
        if self._stop.is_set():
            return
        self.scrapes += 1
        second = math.floor(at - (self._start_wall_s or at))
        if second < 0:
            return
        values = self.values
        for name, value in samples:
            held = values.get(name)
            if held is None:
                if len(values) >= MAX_SERIES:
                    self.dropped[name] = None
                    continue
                held = values[name] = {}
            held[second] = value

    def _fetch(self) -> str:
        """The endpoint's text, or TimeoutError once ``timeout_s`` has passed (a trickling endpoint too, not only a silent one)."""
        deadline = time.monotonic() + self.timeout_s
        request = urllib.request.Request(self.url, headers={"Accept": "text/plain;version=0.0.4"})
        with self._opener.open(request, timeout=self.timeout_s) as response:
            parts, size = [], 0
            while size < MAX_BYTES:
                if time.monotonic() > deadline:
                    raise TimeoutError("timed out")
                part = response.read1(65536)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        return b"".join(parts)[:MAX_BYTES].decode("utf-8", "replace")

    def stop(self) -> None:
        """No more scrapes; one under way records nothing (each socket read waits at most timeout_s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.timeout_s + 1)

    def result(self) -> dict[str, list[list[float]]]:
        """``target_metrics`` for the report: per series a list of [second, value]."""
        return {name: [[s, v] for s, v in sorted(held.items())] for name, held in self.values.items()}

    def record(self, shown_url: str) -> dict[str, Any]:
        """``target_scrapes`` for the report: what was asked, how often it failed, and the seconds left without values."""
        return {
            "url": shown_url,
            "every_s": self.every_s,
            "timeout_s": self.timeout_s,
            "scrapes": self.scrapes,
            "failed": dict(sorted(self.failures.items())),
            "gaps": [[second, kind] for second, kind in self.gaps],
            "series_not_kept": list(self.dropped),
        }

    def messages(self, shown_url: str) -> list[str]:
        notes = []
        if self.dropped:
            names = list(self.dropped)
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            notes.append(
                f"target metrics: kept the first {MAX_SERIES} series of {shown_url}; not kept: {', '.join(names[:10])}{more} (pick series with target.metrics)"
            )
        failed = sum(self.failures.values())
        if failed:
            why = ", ".join(f"{k}: {n}" for k, n in sorted(self.failures.items()))
            notes.append(f"target metrics: {failed} of {self.scrapes} scrapes of {shown_url} failed ({why})")
        if self.picks and not self.values and self.scrapes > failed:
            notes.append(f"target metrics: no series of {shown_url} matched target.metrics {list(self.picks)}")
        return notes


def _failure_kind(exc: BaseException) -> str:
    """A failed scrape in a word: timeout, refused, http_503, ..., or the exception's class name."""
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"http_{exc.code}"
    if isinstance(reason, TimeoutError) or "timed out" in str(exc):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "refused"
    return type(reason).__name__


def merge_into_series(series: list[dict[str, Any]], target_metrics: dict[str, list[list[float]]]) -> None:
    """Each per-second point gets ``target``: series -> value in that second (only the series that have one)."""
    by_second: dict[int, dict[str, float]] = {}
    for name, points in target_metrics.items():
        for second, value in points:
            by_second.setdefault(int(second), {})[name] = value
    for point in series:
        values = by_second.get(point["second"])
        if values:
            point["target"] = values
