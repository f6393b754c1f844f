"""Trace replay (``load.replay``): a JSONL file of timed requests, sent each at its own time.

Each line is one request: ``timestamp_ms`` (its offset from the start of the
trace) and the fields that make it: ``path``, ``method``, ``headers``,
``body``, and any other field, which fills ``{{field}}`` placeholders in
``target.body``, ``target.url`` and the line's path (or, with ``target.api``,
the preset body, as a dataset row does). The whole file is read and checked
when the profile loads, so a bad line stops the run before anything starts
(the error names the file, the line and the field).

The lines are sorted by time (file order for ties). Request k of the sorted
trace is due at ``timestamp_ms / speed`` after the common start; worker i of W
takes k = i, i+W, i+2W, ... (as constant arrivals do), so the split changes
no request's time. It is an open loop: latency counts from the due time.

The trace lives in the ``Profile``: forked local workers share the parent's
copy; the Ray engine sends each actor only its own lines (``for_worker``).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote, urljoin, urlsplit

import orjson

from bench.engine.errors import ProfileError
from bench.engine.plan.requests import _TEMPLATE, API_PRESETS, PreparedRequest, RequestKind, preset_body, render, template_fields

#: A trace is held in memory (its lines, then one prepared request per line in the worker that sends it).
MAX_TRACE_LINES = 1_000_000
#: A line's offset, and a replay's whole schedule, stay within a week: a larger number is an epoch time, not an offset.
MAX_TRACE_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One request of the trace: its line number in the file, its time, and its other fields."""

    number: int
    timestamp_ms: float
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Replay:
    """A validated trace. ``lines`` are time-sorted; with ``part`` set they are only that worker's share."""

    file: str  # as the profile wrote it
    path: str  # resolved against the profile's directory
    speed: float
    lines: tuple[TraceLine, ...]
    count: int  # lines in the whole trace
    first_ms: float
    last_ms: float
    sha256: str
    part: tuple[int, int] | None = None  # (index, count): lines holds worker index's share only

    @property
    def span_s(self) -> float:
        """Trace time from the first to the last request (before ``speed``)."""
        return (self.last_ms - self.first_ms) / 1e3

    @property
    def end_s(self) -> float:
        """When the last request is due, in seconds from the start (after ``speed``)."""
        return self.last_ms / self.speed / 1e3

    def describe(self) -> dict[str, Any]:
        """The report's view of the trace (never its lines)."""
        return {
            "file": self.file,
            "lines": self.count,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "span_s": round(self.span_s, 6),
            "speed": self.speed,
            "scheduled_s": round(self.end_s, 6),
            "sha256": self.sha256,
        }


def worker_lines(replay: Replay, index: int, count: int) -> Sequence[TraceLine]:
    """Worker ``index``'s lines of ``count`` workers: sorted lines index, index+count, ... (time order)."""
    if replay.part is not None:
        if replay.part != (index, count):
            raise ValueError(f"this trace holds worker {replay.part[0]} of {replay.part[1]}'s lines, not worker {index} of {count}'s")
        return replay.lines
    return replay.lines[index::count]


def offsets(replay: Replay, index: int, count: int):
    """Intended send times (seconds from the common start) of worker ``index``'s lines, in order."""
    speed = replay.speed
    for line in worker_lines(replay, index, count):
        yield line.timestamp_ms / speed / 1e3


def scheduled_between(replay: Replay, t0_s: float, t1_s: float) -> int:
    """How many requests of the trace (or of this part of it) are due in [t0_s, t1_s) (run time, after ``speed``)."""
    lo = bisect.bisect_left(replay.lines, t0_s * 1e3 * replay.speed, key=_timestamp)
    hi = bisect.bisect_left(replay.lines, t1_s * 1e3 * replay.speed, key=_timestamp)
    return hi - lo


def _timestamp(line: TraceLine) -> float:
    return line.timestamp_ms


def for_worker(profile: Any, index: int, count: int) -> Any:
    """The profile with only worker ``index``'s lines of the trace (what a Ray actor is sent: each gets 1/W of it)."""
    replay = profile.load.replay
    if replay is None or replay.part is not None:
        return profile
    part = dataclasses.replace(replay, lines=tuple(replay.lines[index::count]), part=(index, count))
    return dataclasses.replace(profile, load=dataclasses.replace(profile.load, replay=part))


# --------------------------------------------------------------------------- reading and checking


def read_trace(path: Path, file: str, speed: float, kind: RequestKind, base_url_template: str | None, methods: Sequence[str]) -> Replay:
    """Read and check every line; raises ProfileError naming the trace file, the line and the field.

    ``kind`` is the target's request (method, headers, body template, API
    preset) that every line builds on; ``base_url_template`` the target URL
    (None: the bundled mock), whose ``{{field}}`` placeholders lines fill too.
    """
    where = str(path)
    digest = hashlib.sha256()
    lines: list[TraceLine] = []
    url_fields = template_fields(base_url_template or "")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            digest.update(raw)
            if not raw.strip():
                continue
            if len(lines) >= MAX_TRACE_LINES:
                raise ProfileError(where, "", f"more than {MAX_TRACE_LINES:,} lines; split the trace", line=number)
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ProfileError(where, "", f"not valid JSON ({exc})", line=number) from None
            if not isinstance(value, dict):
                raise ProfileError(where, "", f"expected a JSON object (one request), got {type(value).__name__}", line=number)
            lines.append(_check_line(where, number, value, kind, url_fields, methods))
    if not lines:
        raise ProfileError(where, "", "the trace has no lines")
    lines.sort(key=_timestamp)  # stable: file order for equal timestamps
    return Replay(
        file=file,
        path=where,
        speed=speed,
        lines=tuple(lines),
        count=len(lines),
        first_ms=lines[0].timestamp_ms,
        last_ms=lines[-1].timestamp_ms,
        sha256=digest.hexdigest(),
    )


def _check_line(where: str, number: int, value: dict[str, Any], kind: RequestKind, url_fields: set[str], methods: Sequence[str]) -> TraceLine:
    def error(field: str, message: str) -> ProfileError:
        return ProfileError(where, field, message, line=number)

    ts = value.get("timestamp_ms")
    if ts is None:
        raise error("timestamp_ms", "missing: each line needs timestamp_ms, its offset from the start of the trace in milliseconds")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        raise error("timestamp_ms", f"expected a number of milliseconds >= 0, got {ts!r}")
    if ts > MAX_TRACE_MS:
        raise error(
            "timestamp_ms",
            f"{ts!r} ms is more than a week after the start: timestamp_ms is an offset from the start of the trace, "
            "not an epoch time; subtract the first line's time from every line",
        )
    method = value.get("method")
    if method is not None:
        if not isinstance(method, str) or method.upper() not in methods:
            raise error("method", f"expected one of {', '.join(methods)}, got {method!r}")
        value["method"] = method.upper()
    path = value.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise error("path", f"a path starts with '/', got {path!r}")
    headers = value.get("headers")
    if headers is not None:
        if not isinstance(headers, dict):
            raise error("headers", f"expected a mapping of header name to value, got {headers!r}")
        for name, text in headers.items():
            if not name or any(c in name for c in " :\r\n"):
                raise error("headers", f"invalid header name {name!r}")
            if isinstance(text, (dict, list)) or text is None:
                raise error(f"headers.{name}", f"expected a string, got {text!r}")
            if "\r" in str(text) or "\n" in str(text):
                raise error(f"headers.{name}", "header values cannot contain line breaks")
    body = value.get("body")
    if body is not None and not isinstance(body, (str, dict, list)):
        raise error("body", f"expected a mapping or list (sent as JSON) or a string, got {body!r}")
    needed = template_fields(path) if path is not None else set(url_fields)  # a line's path replaces the URL's
    if body is None:
        needed |= template_fields(kind.body)
        if kind.api == "openai-chat" and not isinstance(value.get("messages"), list) and "prompt" not in value:
            raise error("messages", "target.api openai-chat needs each line to have messages (a list) or prompt, or a body")
        if kind.api == "openai-completions" and "prompt" not in value:
            raise error("prompt", "target.api openai-completions needs each line to have prompt, or a body")
    for name in sorted(needed):
        if name not in value:
            raise error(name, f"the line has no field {name!r} to fill {{{{{name}}}}}")
    max_tokens = value.get("max_tokens")
    if kind.api and body is None and max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise error("max_tokens", f"expected a whole number >= 1, got {max_tokens!r}")
    return TraceLine(number, float(ts), value)


# --------------------------------------------------------------------------- requests


def prepare_replay(
    replay: Replay, kind: RequestKind, base_url: str, extra_headers: tuple[tuple[str, str], ...], index: int, count: int
) -> list[PreparedRequest]:
    """Worker ``index``'s requests, one per line, in sending order (the order of ``offsets``)."""
    return [_prepare_line(line, kind, base_url, extra_headers) for line in worker_lines(replay, index, count)]


def _fill_url(url: str, row: Mapping[str, Any]) -> str:
    return _TEMPLATE.sub(lambda m: quote(str(row[m.group(1)]), safe=""), url)


def _prepare_line(line: TraceLine, kind: RequestKind, base_url: str, extra: tuple[tuple[str, str], ...]) -> PreparedRequest:
    row = line.fields
    path = row.get("path")
    if path is not None:
        url = urljoin(base_url, _fill_url(path, row))
    elif kind.api and urlsplit(base_url).path in ("", "/"):
        url = urljoin(base_url, API_PRESETS[kind.api])
    else:
        url = _fill_url(base_url, row)
    line_headers = row.get("headers") or {}
    replaced = {str(name).lower() for name in line_headers}
    headers = [(name, value) for name, value in kind.headers if name.lower() not in replaced]
    headers.extend((str(name), str(value).lower() if isinstance(value, bool) else str(value)) for name, value in line_headers.items())
    value: Any
    if "body" in row and row["body"] is not None:
        value = row["body"]
    elif kind.api:
        value = preset_body(kind, row)
    else:
        value = render(kind.body, row)
    if value is None:
        body = None
    elif isinstance(value, str):
        body = value.encode("utf-8")
    else:
        body = orjson.dumps(value)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
    headers.extend(extra)
    method = row.get("method") or kind.method
    return PreparedRequest(0, f"line:{line.number}", method, url, tuple(headers), body, kind.stream, kind.check, kind.api)
