"""``bench report``: one self-contained HTML page from one or more JSON reports.

The page is HTML and inline SVG drawn here, with no script at all: it opens
offline, and a Content-Security-Policy allows no script and no fetch of any
kind. Every string taken from a report (names, URLs, messages, header
values, labels) goes through ``esc`` into HTML text, attributes or SVG
text, so no input can become markup. Hovering a point shows its value (an
SVG ``<title>``). Only the standard library and hdrh are needed.

Charts: per run, latency p50/p95/p99 per second with the latency SLA
thresholds; completed/sent/errors per second with the schedule's target
rate; responses per second by status code and client errors by kind;
requests in flight with the target users; for inference runs TTFT, TPOT and
ITL per second and output tokens per second. Across runs, the percentile
distribution of latency (and TTFT, TPOT, ITL) in HdrHistogram's classic form
(x = 1/(1-p) on a log axis labelled 50 %, 90 %, 99 %, ...), decoded from the
reports' histograms. The warm-up is shaded; a last second the run ended
inside is left out (its counts would read as a dip) and said so under the
charts. A threshold far above the data is not drawn at its height (it would
flatten the data) but named at the chart's top edge with an arrow.

Session runs get a Steps section (latency p50/p95/p99 by step, a bar per
run, each step's own SLA thresholds as crosses; the session counts and a
table by step per run); conversations a Turns section (TTFT p50/p95 by turn,
the runs overlaid; a table by turn per run).

Runs that offered different load or hit different targets are refused, as
``bench compare`` refuses them, unless forced; then the page says so at the top.

A ``bench search --json`` report gets a page of its own: the answer, the
latency-throughput curve (p50/p95/p99 of each judged probe against the
throughput it achieved, points filled by outcome, the SLA's latency
thresholds, the capacity probe marked) and the probe table. ``search.json#N``
is probe N as a plain run, picked by ``compare.select_report``.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urljoin, urlsplit

from hdrh.histogram import HdrHistogram

SCHEMA_VERSION = 1
#: Percentile-iterator resolution: reporting ticks per halving of the distance to 100 % (HdrHistogram's default is 5).
TICKS_PER_HALF_DISTANCE = 5
#: Labels of the percentile axis: x = 1/(1-p).
PERCENTILE_TICKS = (
    (1.0, "0%"),
    (2.0, "50%"),
    (10.0, "90%"),
    (100.0, "99%"),
    (1e3, "99.9%"),
    (1e4, "99.99%"),
    (1e5, "99.999%"),
    (1e6, "99.9999%"),
    (1e7, "99.99999%"),
)
#: One color per run (charts and the legend of the comparison), cycled.
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
#: Header names whose values are credentials: shown as "(redacted)" in the page.
SECRET_HEADER = re.compile(r"auth|cookie|token|secret|passw|api[-_]?key|session", re.IGNORECASE)
#: Criteria on the request latency (drawn on its charts); ttft.p95 and the like are in ms too but measure something else.
PERCENTILE_CRITERIA = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
LATENCY_CRITERIA = (*PERCENTILE_CRITERIA, "max", "mean")
#: The inference histograms a report may hold, with their names on the page.
INFERENCE_HISTOGRAMS = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL"}
#: Per-second inference keys of the series (as the aggregator writes them).
INFERENCE_SERIES_KEYS = tuple(f"{m}_{p}_ms" for m in INFERENCE_HISTOGRAMS for p in ("p50", "p95", "p99"))


class ReportInputError(Exception):
    """An input file that is not a readable bench JSON report; the message names the file and the problem."""


@dataclass(frozen=True)
class Run:
    """One input report, checked, with its histograms decoded."""

    path: Path
    data: dict[str, Any]
    latency: HdrHistogram | None
    service: HdrHistogram | None
    #: The inference histograms a run has (ttft, tpot, itl), decoded.
    inference: dict[str, HdrHistogram] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.data["name"]


# --------------------------------------------------------------------------- escaping


def esc(value: Any) -> str:
    """Any value as HTML text (quotes included, so also safe in an attribute)."""
    return html.escape(str(value), quote=True)


# --------------------------------------------------------------------------- loading and checking


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def load_run(path: Path) -> Run:
    """Read, check and decode one JSON run report (or ``search.json#N``, probe N of a search); any problem is a ReportInputError naming the file."""
    found = load_input(path, search_ok=False)
    assert isinstance(found, Run)
    return found


def load_input(path: Path, *, search_ok: bool = True) -> "Run | Search":
    """A run report, a probe of a search (``search.json#N``), or (``search_ok``) a whole search report, checked.

    The probe is picked by ``compare.select_report``, as ``bench compare`` picks it.
    """
    from bench.engine.results.compare import CompareError, select_report, split_probe

    file, probe = split_probe(str(path))
    data = _read_json(Path(file))
    try:
        data = select_report(data, file, probe, search_ok=search_ok)
    except CompareError as exc:
        raise ReportInputError(str(exc)) from None
    if probe is None and is_search(data):
        return search_from_data(data, Path(file))
    return run_from_data(data, Path(str(path)))


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportInputError(f"{path}: is a directory, not a JSON report") from None
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise ReportInputError(f"{path}: empty file, not a JSON report")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportInputError(f"{path}: not UTF-8 text, so not a JSON report") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        # An unterminated string can only end at the end of the file: truncated too.
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "truncated JSON" if truncated else "invalid JSON"
        raise ReportInputError(f"{path}: {what} (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise ReportInputError(f"{path}: invalid JSON ({exc})") from None
    return data


def run_from_data(data: Any, path: Path) -> Run:
    """Check and decode one report already parsed (from a file, or ``bench run``'s in memory); ``path`` names it."""
    try:
        check_report(data)
    except _ShapeError as exc:
        raise ReportInputError(f"{path}: not a bench JSON report: {exc}") from None
    latency = _decode(path, data, "latency")
    service = _decode(path, data, "service")
    for key, histogram in (("latency", latency), ("service", service)):
        stats = data.get(key)
        count = stats.get("count") if isinstance(stats, dict) else None
        held = histogram.get_total_count() if histogram is not None else 0
        if isinstance(count, int) and not isinstance(count, bool) and count != held:
            raise ReportInputError(f"{path}: histograms.{key} holds {held} values but {key}.count is {count}: the report was altered or is corrupt")
    inference = {key: h for key in INFERENCE_HISTOGRAMS if (h := _decode(path, data, key)) is not None}
    return Run(path, data, latency, service, inference)


class _ShapeError(Exception):
    pass


_NUMBER = (int, float)
_OPT_NUMBER = (int, float, type(None))


def _expect(container: dict[str, Any], key: str, types: tuple[type, ...], where: str, *, required: bool = True) -> Any:
    if key not in container:
        if required:
            raise _ShapeError(f"{where}{key} is missing")
        return None
    value = container[key]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        wanted = " or ".join(sorted({_TYPE_NAMES[t] for t in types}))
        raise _ShapeError(f"{where}{key} is {_TYPE_NAMES.get(type(value), type(value).__name__)}, expected {wanted}")
    return value


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}


def check_report(data: Any) -> None:
    """Check the parts of a report the page reads; raises _ShapeError saying what is wrong."""
    if not isinstance(data, dict):
        raise _ShapeError(f"the top level is {_TYPE_NAMES.get(type(data), type(data).__name__)}, expected an object")
    if "schema_version" not in data:
        raise _ShapeError("no schema_version")
    version = data["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise _ShapeError(f"schema_version {json.dumps(version)[:40]} is not supported (this bench reads version {SCHEMA_VERSION})")
    for key in ("name", "status", "started_at", "load_model", "latency_meaning"):
        _expect(data, key, (str,), "")
    for key in ("profile_path", "target_url", "ended_at"):
        _expect(data, key, (str, type(None)), "", required=False)
    for key in ("requests", "latency", "histograms", "sla"):
        _expect(data, key, (dict,), "")
    for key in ("profile", "trust", "service", "generator", "steps", "turns", "sessions"):
        _expect(data, key, (dict,), "", required=False)
    for key in ("error_rate", "rps", "duration_s"):
        _expect(data, key, _OPT_NUMBER, "", required=False)
    messages = _expect(data, "messages", (list,), "", required=False) or []
    for i, message in enumerate(messages):
        if not isinstance(message, str):
            raise _ShapeError(f"messages[{i}] is not a string")
    for key in ("sent", "completed", "ok", "http_errors", "client_errors"):
        _expect(data["requests"], key, (int,), "requests.", required=False)
    for key in ("count", "p50", "p90", "p95", "p99", "p99.9", "max"):
        _expect(data["latency"], key, _OPT_NUMBER, "latency.", required=False)
    series = _expect(data, "series", (list,), "")
    for i, point in enumerate(series):
        where = f"series[{i}]."
        if not isinstance(point, dict):
            raise _ShapeError(f"series[{i}] is not an object")
        _expect(point, "second", (int,), where)
        for key in ("sent", "completed", "ok", "errors"):
            _expect(point, key, (int,), where)
        for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            _expect(point, key, _OPT_NUMBER, where)
        _expect(point, "in_flight", _OPT_NUMBER, where, required=False)
        _expect(point, "output_tokens", (int,), where, required=False)
        for key in INFERENCE_SERIES_KEYS:
            _expect(point, key, _OPT_NUMBER, where, required=False)
        for key in ("status_codes", "error_kinds"):
            counts = _expect(point, key, (dict,), where, required=False) or {}
            for name, n in counts.items():
                if not isinstance(n, int) or isinstance(n, bool):
                    raise _ShapeError(f"{where}{key}.{name[:40]} is not a whole number")
    histograms = data["histograms"]
    for key in ("latency", "service", "schedule_lag", *INFERENCE_HISTOGRAMS):
        _expect(histograms, key, (str,), "histograms.", required=key == "latency")
    unit = histograms.get("unit", "us")
    if unit != "us":
        raise _ShapeError(f"histograms.unit is {json.dumps(unit)[:40]}, expected \"us\"")
    checks = _expect(data["sla"], "checks", (list,), "sla.")
    for i, check in enumerate(checks):
        where = f"sla.checks[{i}]."
        if not isinstance(check, dict):
            raise _ShapeError(f"sla.checks[{i}] is not an object")
        for key in ("criterion", "label", "unit", "status"):
            _expect(check, key, (str,), where)
        _expect(check, "threshold", _NUMBER, where)
        _expect(check, "measured", (int, float, str, type(None)), where)
        _expect(check, "window_s", _OPT_NUMBER, where, required=False)
        _expect(check, "note", (str, type(None)), where, required=False)


def _decode(path: Path, data: dict[str, Any], key: str) -> HdrHistogram | None:
    encoded = data["histograms"].get(key) or ""
    if not encoded:
        return None
    try:
        histogram = HdrHistogram.decode(encoded)
        count = histogram.get_total_count()
        max_value = histogram.get_max_value()
    except Exception as exc:  # noqa: BLE001 - hdrh raises anything from base64, zlib, struct or its own checks
        detail = str(exc) or type(exc).__name__
        raise ReportInputError(f"{path}: histograms.{key} is not a valid HdrHistogram encoding ({detail})") from None
    if histogram is None or count <= 0 or max_value < 0:
        raise ReportInputError(f"{path}: histograms.{key} is not a valid HdrHistogram encoding (no recorded values)")
    return histogram


def load_runs(paths: Iterable[Path]) -> list[Run]:
    return [load_run(Path(p)) for p in paths]


# --------------------------------------------------------------------------- a capacity search


#: Probe outcomes that are verdicts on the target (drawn on the curve); the others stopped the search.
JUDGED = ("pass", "fail", "indeterminate")
OUTCOME_COLORS = {"pass": "#17803d", "fail": "#b00020", "indeterminate": "#d99a00"}


@dataclass(frozen=True)
class Search:
    """A ``bench search --json`` report, checked: its ``search`` part and every probe's run, decoded."""

    path: Path
    data: dict[str, Any]
    probes: list[dict[str, Any]]
    runs: list[Run]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def search(self) -> dict[str, Any]:
        return self.data["search"]


def is_search(data: Any) -> bool:
    from bench.engine.results.compare import is_search_report

    return is_search_report(data)


def search_from_data(data: Any, path: Path) -> Search:
    """Check a search report and each probe's run report; ReportInputError naming the file (and probe) otherwise."""
    try:
        if data.get("schema_version") != SCHEMA_VERSION or isinstance(data.get("schema_version"), bool):
            raise _ShapeError(f"schema_version {json.dumps(data.get('schema_version'))[:40]} is not supported (this bench reads version {SCHEMA_VERSION})")
        _expect(data, "name", (str,), "")
        _expect(data, "profile_path", (str, type(None)), "", required=False)
        search = data["search"]
        _expect(search, "over", (str,), "search.")
        if search["over"] not in ("concurrency", "rate"):
            raise _ShapeError(f"search.over is {json.dumps(search['over'])[:40]}, expected \"concurrency\" or \"rate\"")
        for key in ("capacity", "capacity_rps", "first_failing", "min", "max", "tolerance", "require"):
            _expect(search, key, _OPT_NUMBER, "search.", required=False)
        _expect(search, "stopped", (str, type(None)), "search.", required=False)
        probes = _expect(search, "probes", (list,), "search.")
        for i, probe in enumerate(probes):
            where = f"search.probes[{i}]."
            if not isinstance(probe, dict):
                raise _ShapeError(f"search.probes[{i}] is not an object")
            _expect(probe, "level", _NUMBER, where)
            _expect(probe, "outcome", (str,), where)
            _expect(probe, "why", (str,), where, required=False)
            _expect(probe, "report", (dict,), where)
    except _ShapeError as exc:
        raise ReportInputError(f"{path}: not a bench search report: {exc}") from None
    runs = [run_from_data(probe["report"], Path(f"{path}#{n}")) for n, probe in enumerate(probes, start=1)]
    return Search(path, data, probes, runs)


def level_text(level: Any, over: str) -> str:
    """``4 users``, ``1 user``, ``82.5/s`` (as the search's own table words it)."""
    if not isinstance(level, (int, float)) or isinstance(level, bool):
        return "–"
    if over == "concurrency":
        return f"{int(level)} user{'s' if int(level) != 1 else ''}"
    return f"{level:,.4g}/s" if level < 10_000 else f"{level:,.0f}/s"


def _probe_at(search: Search, level: Any) -> int | None:
    """The index of the last probe run at ``level`` (a level measured again counts by its last probe)."""
    found = [i for i, p in enumerate(search.probes) if level is not None and p["level"] == level]
    return found[-1] if found else None


def _criteria_text(search: Search) -> str:
    """The SLA each probe is judged by, from the probes' reports: ``p95 <= 52.00 ms, error_rate <= 1.00 % (default)``."""
    if not search.runs:
        return ""
    texts = []
    for check in search.runs[0].data["sla"]["checks"]:
        op = check.get("op") if isinstance(check.get("op"), str) else check["label"].split()[-1] if check["label"].split() else ""
        window = f" over {check['window_s']:g} s" if isinstance(check.get("window_s"), (int, float)) else ""
        step = f"step {check['step']} " if isinstance(check.get("step"), str) else ""
        texts.append(f"{step}{check['criterion']} {op} {fmt_value(check['threshold'], check['unit'])}{window}" + (" (default)" if check.get("default") else ""))
    return ", ".join(texts)


def search_answer(search: Search) -> str:
    """The search's answer in one line, as ``bench search`` prints it."""
    s, over = search.search, search.search["over"]
    capacity, failing = s.get("capacity"), s.get("first_failing")
    best, worst = _probe_at(search, capacity), _probe_at(search, failing)
    criteria = _criteria_text(search)
    if best is not None:
        rps = search.runs[best].data.get("rps")
        answer = f"capacity: {level_text(capacity, over)}" + (f", {rps:,.1f} req/s" if isinstance(rps, (int, float)) else "") + f" at {criteria}"
        if worst is not None:
            probe = search.probes[worst]
            answer += f"; {level_text(failing, over)} {'fail' if probe['outcome'] == 'fail' else 'stay within noise'}: {probe.get('why', '')}"
        elif s.get("stopped") is None:
            answer += f" (every level up to the maximum, {level_text(s.get('max'), over)}, passed)"
    elif worst is not None:
        answer = f"no capacity: the lowest level probed, {level_text(failing, over)}, fails {criteria}: {search.probes[worst].get('why', '')}"
    else:
        answer = "no answer"
    unsure = [level_text(level, over) for level in s.get("indeterminate") or [] if isinstance(level, (int, float))]
    if unsure:
        answer += f" (within noise even measured longer, counted as not passing: {', '.join(unsure)})"
    reasons = {
        "generator-limited": "the generator, not the target, was the bottleneck at {level}: the answer so far",
        "not measured": "no request got an answer at {level}: the answer so far",
        "stopped": "interrupted at {level}: the answer so far",
        "budget": "the budget was spent before the answer was known to the tolerance: the answer so far",
    }
    if s.get("stopped") in reasons:
        last = search.probes[-1]["level"] if search.probes else None
        answer = reasons[s["stopped"]].format(level=level_text(last, over)) + ": " + answer
    return answer


def capacity_chart(chart_id: str, search: Search) -> Chart:
    """The latency-throughput curve: p50/p95/p99 against achieved req/s, one point per judged probe, by level.

    Points are filled by the probe's outcome; the latency criteria's thresholds
    are dashed lines (a far one named at the top edge); the capacity probe's
    throughput is a vertical mark labelled with the answer.
    """
    over = search.search["over"]
    judged = [
        (n, probe, run)
        for n, (probe, run) in enumerate(zip(search.probes, search.runs), start=1)
        if probe["outcome"] in JUDGED and isinstance(run.data.get("rps"), (int, float))
    ]
    judged.sort(key=lambda item: (item[1]["level"], item[0]))
    lines = []
    for (p, color), dash in zip(CURVE_COLORS, ("", "6 3", "2 3")):
        points, colors, titles = [], [], []
        for n, probe, run in judged:
            value = run.data["latency"].get(p)
            if not isinstance(value, (int, float)):
                continue
            rps = run.data["rps"]
            points.append((float(rps), float(value)))
            colors.append(OUTCOME_COLORS[probe["outcome"]])
            titles.append(f"probe {n}: {level_text(probe['level'], over)}, {rps:,.1f} req/s: {p} {fmt_ms(value)} ({probe['outcome']})")
        lines.append(Line(f"latency {p}", color, points, dash=dash, width=1.6, point_colors=colors, point_titles=titles))
    thresholds = []
    if search.runs:
        for check in search.runs[0].data["sla"]["checks"]:
            criterion = check["criterion"]
            if check["unit"] == "ms" and criterion in LATENCY_CRITERIA and not _step_of(check):
                window = f" over {check['window_s']:g} s" if isinstance(check.get("window_s"), (int, float)) else ""
                thresholds.append(Threshold(check["threshold"], f"SLA {criterion} {fmt_value(check['threshold'], 'ms')}{window}", SLA_COLOR))
    marks = []
    best = _probe_at(search, search.search.get("capacity"))
    if best is not None and search.probes[best]["outcome"] == "pass" and isinstance(search.runs[best].data.get("rps"), (int, float)):
        rps = search.runs[best].data["rps"]
        marks.append(Mark(float(rps), f"capacity {level_text(search.probes[best]['level'], over)}, {rps:,.0f} req/s"))
    top_rps = max([pt[0] for line in lines for pt in line.points] + [1.0])
    x_top = nice_ticks(top_rps * 1.05, 6)[-1]
    present = {probe["outcome"] for _, probe, _ in judged}
    return Chart(
        chart_id,
        lines,
        "achieved throughput (requests per second)",
        "latency (ms)",
        (0.0, x_top),
        thresholds=thresholds,
        marks=marks,
        dot_keys=[(OUTCOME_COLORS[o], o) for o in JUDGED if o in present],
        empty_text="no probe has a verdict",
        height=420,
    )


#: The SLA thresholds on the curve: apart from the percentile lines and the outcome colours.
SLA_COLOR = "#9333ea"
#: The curve's percentile lines: blues and greys, so the outcome colours of the points stand out.
CURVE_COLORS = (("p50", "#6b9bd1"), ("p95", "#1f4e8c"), ("p99", "#374151"))


def _search_table(search: Search) -> str:
    over = search.search["over"]
    best = _probe_at(search, search.search.get("capacity"))
    rows = []
    for i, (probe, run) in enumerate(zip(search.probes, search.runs)):
        d = run.data
        lat = d["latency"]
        outcome = probe["outcome"]
        cls = {"pass": "pass", "fail": "fail"}.get(outcome, "unmeasurable")
        capacity = i == best and outcome == "pass"
        row_class = ' class="capacity"' if capacity else ""
        rows.append(
            f'<tr{row_class}><td class="num">{i + 1}</td><td>{esc(level_text(probe["level"], over))}'
            f'{" (capacity)" if capacity else ""}</td><td class="num">{esc(fmt_value(d.get("rps"), "req/s"))}</td>'
            + "".join(f'<td class="num">{esc(fmt_ms(lat.get(k)))}</td>' for k in ("p50", "p95", "p99"))
            + f'<td class="num">{esc(fmt_value(d.get("error_rate"), "ratio"))}</td>'
            f'<td class="result {cls}">{esc(outcome)}</td><td>{esc(probe.get("why") or "")}</td></tr>'
        )
    head = (
        '<tr><th class="num">#</th><th>level</th><th class="num">req/s</th><th class="num">p50</th><th class="num">p95</th>'
        '<th class="num">p99</th><th class="num">error rate</th><th>outcome</th><th>why</th></tr>'
    )
    return f'<table class="search">{head}{"".join(rows)}</table>'


def render_search(search: Search, *, title: str | None = None, generated_at: str | None = None) -> str:
    """The page of a capacity search: the answer, the latency-throughput curve, the table of probes. No script."""
    s = search.search
    over = s["over"]
    generated_at = generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = title or f"bench search: {search.name}"
    best = _probe_at(search, s.get("capacity"))
    found = best is not None and search.probes[best]["outcome"] == "pass"
    badge = ("capacity found", "pass") if found and s.get("stopped") is None else (("answer so far", "unmeasurable") if found else ("no capacity", "fail"))
    skipped = [f"#{n} ({p['outcome']})" for n, p in enumerate(search.probes, start=1) if p["outcome"] not in JUDGED]
    unit = "users (closed loop)" if over == "concurrency" else "arrivals per second (open loop)"
    facts = [
        ("profile", esc(search.data.get("profile_path") or "–")),
        ("searched", f"{esc(over)}: {esc(unit)}, from {esc(level_text(s.get('min'), over))} to {esc(level_text(s.get('max'), over))}"
         + (f", tolerance {s['tolerance'] * 100:g} %" if isinstance(s.get("tolerance"), (int, float)) else "")),
        ("judged by", esc(_criteria_text(search) or "–")),
        ("probes", f"{len(search.probes)}, each a whole run at one level"),
    ]
    if isinstance(s.get("require"), (int, float)):
        facts.append(("required", esc(level_text(s["require"], over))))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    name = search.path.name
    note = (
        "x: the throughput each probe achieved; y: its latency percentiles over the whole probe. Points are joined in order of load level "
        "and filled by outcome; dashed purple: the latency criteria of the SLA."
        + (f" Not drawn (no verdict on the target): {', '.join(skipped)}." if skipped else "")
    )
    return (
        _page_head(title)
        + '<body data-charts="1"><main>'
        f"<header><h1>{esc(title)}</h1>"
        f'<p class="sub">A capacity search of {len(search.probes)} probes; generated {esc(generated_at)} by bench {esc(_bench_version())}. '
        "Self-contained: opens offline, nothing is fetched, no script runs. Hover a point for its value.</p></header>"
        f'<section id="answer"><h2><span class="run-name">Answer</span><span class="badge {badge[1]}">{esc(badge[0])}</span></h2>'
        f'<p class="answer">{esc(search_answer(search))}</p>'
        f'<dl class="facts" style="margin-top:10px">{body}</dl></section>'
        '<section id="curve"><h2>Latency against throughput</h2>'
        f'<p class="sub">{esc(note)}</p>'
        + svg_chart(capacity_chart("chart-capacity", search))
        + "</section>"
        '<section id="probes"><h2>Probes</h2>'
        + _search_table(search)
        + f'<p class="sub" style="margin-top:8px">Each probe is a whole run: <code>bench report {esc(name)}#N</code> draws probe N, '
        f"<code>bench compare {esc(name)}#A {esc(name)}#B</code> compares two.</p>"
        "</section></main>\n</body></html>\n"
    )


# --------------------------------------------------------------------------- numbers for the charts


def percentile_distribution(histogram: HdrHistogram, ticks_per_half_distance: int = TICKS_PER_HALF_DISTANCE) -> list[tuple[float, float, float]]:
    """HdrHistogram's percentile distribution: (percentile, x = 1/(1-p), value in ms) for each level below 100 %.

    The levels are those of HdrHistogram's own percentile output
    (``ticks_per_half_distance`` steps per halving of the distance to 100 %);
    the 100 % level (x infinite) is left out: the last level below it already
    reaches the maximum value. A µs histogram gives ms values.
    """
    points: list[tuple[float, float, float]] = []
    if histogram.get_total_count() == 0:
        return points
    for item in histogram.get_percentile_iterator(ticks_per_half_distance):
        level = item.percentile_level_iterated_to
        if level >= 100.0:
            continue
        value_ms = histogram.get_highest_equivalent_value(item.value_iterated_to) / 1000
        points.append((level, 1.0 / (1.0 - level / 100.0), value_ms))
    return points


def percentile_ticks(max_x: float) -> tuple[list[float], list[str]]:
    """Tick positions and labels of the 1/(1-p) axis up to the first tick at or past max_x."""
    values, labels = [], []
    for x, label in PERCENTILE_TICKS:
        values.append(x)
        labels.append(label)
        if x >= max_x:
            break
    return values, labels


# --------------------------------------------------------------------------- formatting


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 19:
        raise ValueError(f"integer out of range: {text[:20]}...")
    return int(text)


def fmt_ms(value: Any) -> str:
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "∞"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    if abs(value) >= 1000:
        return f"{value / 1000:,.3f} s"
    return f"{value:,.2f} ms"


def fmt_value(value: Any, unit: str) -> str:
    if value == "inf":
        return "∞"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–" if value is None else str(value)
    if unit == "ms":
        return fmt_ms(value)
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit in ("req/s", "tok/s"):
        return f"{value:,.1f} {unit}"
    if unit == "s":
        return f"{value:,.2f} s"
    return f"{value:g} {unit}"


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "–"


STATUS_TEXT = {"pass": "PASS", "fail": "FAIL", "not measurable": "NOT MEASURABLE"}


def _status_class(status: str) -> str:
    return {"pass": "pass", "fail": "fail", "not measurable": "unmeasurable"}.get(status, "fail")


def _verdict(data: dict[str, Any]) -> tuple[str, str]:
    """(text, css class) of a run's overall SLA verdict."""
    checks = data["sla"]["checks"]
    if not checks:
        return "no SLA", "neutral"
    passed = data["sla"].get("passed")
    if passed is None:
        passed = all(c.get("status") == "pass" for c in checks)
    return ("SLA PASS", "pass") if passed is True else ("SLA FAIL", "fail")


def _load_text(data: dict[str, Any]) -> str:
    load = (data.get("profile") or {}).get("load")
    model = data["load_model"]
    if not isinstance(load, dict):
        return f"{model} loop"
    replay = load.get("replay")
    if model == "open" and isinstance(replay, dict):
        speed = replay.get("speed")
        what = f"replay of {replay.get('file')} ({replay.get('lines')} lines" + (f", speed {speed:g}" if isinstance(speed, (int, float)) else "") + ")"
    elif model == "open":
        rate = load.get("rate_per_s")
        what = f"rate {rate:g}/s" if isinstance(rate, (int, float)) else "ramping rate"
        if load.get("arrival"):
            what += f" ({load['arrival']})"
    else:
        vus = load.get("concurrency")
        what = f"concurrency {vus}" if isinstance(vus, int) else "ramping concurrency"
    if isinstance(load.get("stages"), list) and load["stages"]:
        what += f", {len(load['stages'])} stage(s)"
    workers = load.get("workers")
    if isinstance(workers, int):
        what += f", {workers} worker(s)"
    return f"{model} loop: {what}"


def _redacted_profile(profile: Any) -> Any:
    """The resolved profile with credential-like header values replaced."""
    if not isinstance(profile, dict):
        return profile
    target = profile.get("target")
    if isinstance(target, dict) and isinstance(target.get("headers"), dict):
        headers = {k: ("(redacted)" if SECRET_HEADER.search(str(k)) else v) for k, v in target["headers"].items()}
        profile = {**profile, "target": {**target, "headers": headers}}
    return profile


def _run_labels(runs: Sequence[Run]) -> list[str]:
    """Legend names: the run names, made unique with #2, #3 ... when runs share a name."""
    labels, seen = [], {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        labels.append(run.name if seen[run.name] == 1 else f"{run.name} #{seen[run.name]}")
    return labels


# --------------------------------------------------------------------------- SVG charts, drawn here


@dataclass
class Line:
    """One line of a chart: points (x, y), y None for a gap."""

    name: str
    color: str
    points: list[tuple[float, float | None]]
    unit: str = "ms"
    dash: str = ""
    width: float = 2.0
    markers: bool = True
    #: Per point (in order of the drawn points): its marker's fill, and its hover text instead of the default.
    point_colors: list[str] | None = None
    point_titles: list[str] | None = None


@dataclass
class Bar:
    """A vertical bar from 0 to ``value`` centred on ``x`` (``width`` in x units); ``kind`` goes into its class."""

    x: float
    width: float
    value: float
    color: str
    title: str
    opacity: float = 1.0
    kind: str = ""


@dataclass
class Threshold:
    """A horizontal line (an SLA threshold, a target) or, on a percentile chart, a cross at (x, value)."""

    value: float
    label: str
    color: str = "#555555"
    x: float | None = None


@dataclass
class Mark:
    """A vertical line at ``x`` with a label at the plot's top (the answer of a capacity search)."""

    x: float
    label: str
    color: str = "#17803d"


@dataclass
class Chart:
    id: str
    lines: list[Line]
    x_title: str
    y_title: str
    x_range: tuple[float, float]
    x_ticks: list[tuple[float, str]] | None = None  # default: whole seconds
    x_log: bool = False
    hover_x: str = "second {s}"  # {x}: the point's x; {s}: its whole second
    shades: list[tuple[float, float, str]] = field(default_factory=list)
    thresholds: list[Threshold] = field(default_factory=list)
    empty_text: str = "no measured seconds"
    height: int = 300
    marks: list[Mark] = field(default_factory=list)
    #: Extra legend keys drawn as dots: (color, text), e.g. the outcome of each point.
    dot_keys: list[tuple[str, str]] = field(default_factory=list)
    #: Bars drawn under the lines (a chart by category: x is the category's index).
    bars: list[Bar] = field(default_factory=list)


#: Drawing area of every chart, in SVG user units (the SVG scales to the page's width).
CHART_WIDTH = 1160
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 26, 44
#: A threshold is drawn inside the plot when at most this many times the data's maximum, else marked at the top edge.
THRESHOLD_FIT = 1.6
#: Above this many points a line has no per-point markers (hover targets).
MAX_MARKERS = 400


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top * (1 - 1e-9):
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_text(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def _value_text(value: float, unit: str) -> str:
    if unit == "ms":
        return fmt_ms(value)
    if unit in ("/s", ""):
        return f"{value:,.1f}{unit}" if value != int(value) else f"{int(value):,}{unit}"
    return f"{value:,.4g} {unit}"


def _legend_style(dash: str) -> str:
    """The CSS border style that looks like a line's SVG dash pattern: solid, dotted (short dashes) or dashed."""
    if not dash:
        return "solid"
    return "dotted" if dash.split()[0] in ("1", "2") else "dashed"


def svg_chart(chart: Chart) -> str:
    """The chart as inline SVG plus an HTML legend; every label escaped. Hover a point: its value (an SVG <title>)."""
    width, height = CHART_WIDTH, chart.height
    left, right, top, bottom = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM
    values = [y for line in chart.lines for _, y in line.points if y is not None] + [bar.value for bar in chart.bars]
    data_max = max(values, default=0.0)
    inside = [t for t in chart.thresholds if not values or t.value <= data_max * THRESHOLD_FIT]
    above = [t for t in chart.thresholds if t not in inside]
    y_top_value = max([data_max, *(t.value for t in inside)], default=0.0) * 1.05
    ticks = nice_ticks(y_top_value if y_top_value > 0 else 1.0)
    y_max = ticks[-1]
    x0, x1 = chart.x_range
    if x1 <= x0:
        x1 = x0 + 1

    def sx(x: float) -> float:
        if chart.x_log:
            x, lo, hi = math.log10(max(x, 1.0)), math.log10(max(x0, 1.0)), math.log10(x1)
            return left + (x - lo) / (hi - lo) * (right - left)
        return left + (x - x0) / (x1 - x0) * (right - left)

    def sy(y: float) -> float:
        return bottom - y / y_max * (bottom - top)

    parts = [
        f'<svg class="chart" id="{esc(chart.id)}" viewBox="0 0 {width} {height}" role="img" preserveAspectRatio="xMidYMid meet" '
        f'aria-label="{esc(chart.y_title)} by {esc(chart.x_title)}">'
    ]
    for a, b, label in chart.shades:
        a, b = max(a, x0), min(b, x1)
        if b > a:
            parts.append(
                f'<rect class="shade" x="{sx(a):.1f}" y="{top}" width="{max(1.0, sx(b) - sx(a)):.1f}" height="{bottom - top}" fill="#e5e7eb">'
                f"<title>{esc(label)}</title></rect>"
                f'<text class="shade-label" x="{sx(a) + 3:.1f}" y="{top + 12}" font-size="11" fill="#4b5563">{esc(label)}</text>'
            )
    for tick in ticks:
        y = sy(tick)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6472">{esc(_tick_text(tick))}</text>')
    if chart.x_ticks is not None:
        x_ticks = chart.x_ticks
    else:
        step = nice_ticks(x1 - x0, 10)
        step_size = max(1.0, step[1] - step[0]) if len(step) > 1 else 1.0
        x_ticks = []
        t = math.ceil(x0 / step_size) * step_size
        while t <= x1 + 1e-9:
            x_ticks.append((t, _tick_text(t)))
            t += step_size
    for value, label in x_ticks:
        x = sx(value)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#f0f1f3"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-size="11" fill="#5b6472">{esc(label)}</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#9ca3af"/>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#9ca3af"/>')
    parts.append(f'<text x="{(left + right) / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="12" fill="#5b6472">{esc(chart.x_title)}</text>')
    parts.append(
        f'<text x="14" y="{(top + bottom) / 2:.0f}" text-anchor="middle" font-size="12" fill="#5b6472" '
        f'transform="rotate(-90 14 {(top + bottom) / 2:.0f})">{esc(chart.y_title)}</text>'
    )
    for bar in chart.bars:
        x, y = sx(bar.x - bar.width / 2), sy(bar.value)
        opacity = f' fill-opacity="{bar.opacity:g}"' if bar.opacity < 1 else ""
        parts.append(
            f'<rect class="bar {esc(bar.kind)}" x="{x:.1f}" y="{y:.1f}" width="{sx(bar.x + bar.width / 2) - x:.1f}" height="{max(0.0, bottom - y):.1f}" '
            f'fill="{bar.color}"{opacity}><title>{esc(bar.title)}</title></rect>'
        )
    for t in inside:
        y = sy(t.value)
        if t.x is None:
            parts.append(
                f'<line class="threshold" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{t.color}" stroke-width="1.5" stroke-dasharray="6 4">'
                f"<title>{esc(t.label)}</title></line>"
                f'<text x="{right - 4}" y="{y - 4:.1f}" text-anchor="end" font-size="11" fill="{t.color}">{esc(t.label)}</text>'
            )
        else:
            x = sx(t.x)
            parts.append(
                f'<path class="threshold" d="M{x - 6:.1f},{y - 6:.1f}L{x + 6:.1f},{y + 6:.1f}M{x - 6:.1f},{y + 6:.1f}L{x + 6:.1f},{y - 6:.1f}" '
                f'stroke="{t.color}" stroke-width="2.5"><title>{esc(t.label)}</title></path>'
            )
    for line in chart.lines:
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in line.points:
            if y is None:
                segments.append([])
            else:
                segments[-1].append((sx(x), sy(y)))
        path = "".join("M" + "L".join(f"{px:.1f},{py:.1f}" for px, py in seg) for seg in segments if seg)
        if path:
            dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
            parts.append(
                f'<path class="line" d="{path}" fill="none" stroke="{line.color}" stroke-width="{line.width}"{dash} stroke-linejoin="round">'
                f"<title>{esc(line.name)}</title></path>"
            )
        drawn = [(x, y) for x, y in line.points if y is not None]
        if line.markers and len(drawn) <= MAX_MARKERS:
            for i, (x, y) in enumerate(drawn):
                where = chart.hover_x.format(x=x, s=math.floor(x))
                title = line.point_titles[i] if line.point_titles else f"{where}: {line.name} {_value_text(y, line.unit)}"
                fill = line.point_colors[i] if line.point_colors else line.color
                ring = f' stroke="{line.color}" stroke-width="1.5"' if line.point_colors else ""
                parts.append(
                    f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{2.5 if len(drawn) > 60 else (4.5 if ring else 3.5)}" fill="{fill}"{ring}>'
                    f"<title>{esc(title)}</title></circle>"
                )
    for mark in chart.marks:
        x = sx(mark.x)
        anchor, dx = ("end", -5) if x > (left + right) / 2 else ("start", 5)
        parts.append(
            f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{mark.color}" stroke-width="1.5" stroke-dasharray="4 3">'
            f"<title>{esc(mark.label)}</title></line>"
            f'<text class="mark-label" x="{x + dx:.1f}" y="{top + 13}" text-anchor="{anchor}" font-size="12" font-weight="600" fill="{mark.color}">{esc(mark.label)}</text>'
        )
    for i, t in enumerate(above):
        x = right - 4 if t.x is None else sx(t.x)
        anchor = "end" if t.x is None else "middle"
        parts.append(
            f'<text class="threshold-above" x="{x:.1f}" y="{top - 8 - 13 * i if t.x is None else top - 8}" text-anchor="{anchor}" font-size="11" '
            f'fill="{t.color}">{esc(t.label)} &#8593;<title>above this chart\'s range</title></text>'
        )
    if not values:
        parts.append(f'<text x="{(left + right) / 2:.0f}" y="{(top + bottom) / 2:.0f}" text-anchor="middle" font-size="14" fill="#5b6472">{esc(chart.empty_text)}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="border-top:2px {_legend_style(line.dash)} {line.color}"></i>{esc(line.name)}</span>'
        for line in chart.lines
    )
    legend += "".join(
        f'<span class="key"><i style="border-top:2px dashed {t.color}"></i>{esc(t.label)}</span>' for t in chart.thresholds if t.x is None
    )
    legend += "".join(
        f'<span class="key"><b class="dot" style="background:{color}"></b>{esc(text)}</span>' for color, text in chart.dot_keys
    )
    return f'<figure class="chart-box"><div class="legend">{legend}</div>{"".join(parts)}</figure>'


# --------------------------------------------------------------------------- what the per-second charts show


#: A last second the run covered less of than this (in seconds) is partial: left out of the per-second charts.
FULL_SECOND = 0.95


@dataclass(frozen=True)
class Seconds:
    """A run's per-second series as the charts draw it: whole seconds only, the partial last one set aside."""

    points: list[dict[str, Any]]
    partial: dict[str, Any] | None
    partial_length_s: float | None
    x_range: tuple[float, float]
    warmup: tuple[float, float] | None


def seconds_of(data: dict[str, Any]) -> Seconds:
    """The plotted seconds: every series point but a last one the run ended inside (its counts would read as a dip).

    ``series_end_s`` says where the run ended; a report without it is taken to
    end inside its last second, as runs almost always do.
    """
    series = list(data["series"])
    end = data.get("series_end_s")
    partial = length = None
    if series:
        last = series[-1]
        if not isinstance(end, (int, float)):
            partial = last
        elif end < last["second"] + FULL_SECOND:
            partial, length = last, max(0.0, end - last["second"])
        if partial is not None:
            series = series[:-1]
    load = _load(data)
    warm = data.get("warmup") if isinstance(data.get("warmup"), dict) else {}
    warm_end = warm.get("end_s") if isinstance(warm.get("end_s"), (int, float)) else None
    warm_s = load.get("warmup_s") if isinstance(load.get("warmup_s"), (int, float)) else 0.0
    warm_end = max(warm_end or 0.0, warm_s or 0.0)
    last_second = max([p["second"] + 1 for p in series] + [1])
    start = min([p["second"] for p in series] + [0])
    return Seconds(series, partial, length, (float(start), float(last_second)), (0.0, warm_end) if warm_end > 0 else None)


def _load(data: dict[str, Any]) -> dict[str, Any]:
    profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
    return profile.get("load") if isinstance(profile.get("load"), dict) else {}


def target_line(data: dict[str, Any], end_s: float) -> list[tuple[float, float | None]] | None:
    """The schedule's target (rate per second in an open loop, users in a closed one) over time, from the resolved profile.

    Stages ramp linearly from the previous target (k6's ramping executors), warm-up included.
    """
    load = _load(data)
    start = load.get("rate_per_s") if data["load_model"] == "open" else load.get("concurrency")
    if not isinstance(start, (int, float)) or isinstance(start, bool):
        return None
    points: list[tuple[float, float | None]] = [(0.0, float(start))]
    t = 0.0
    for stage in load.get("stages") or []:
        if not isinstance(stage, dict) or not isinstance(stage.get("duration_s"), (int, float)) or not isinstance(stage.get("target"), (int, float)):
            return None
        t += stage["duration_s"]
        points.append((t, float(stage["target"])))
    if points[-1][0] < end_s:
        points.append((end_s, points[-1][1]))
    return points


def _step_of(check: dict[str, Any]) -> str | None:
    """The session step a criterion judges (``sla.steps.NAME``), or None for the whole run's figures."""
    step = check.get("step")
    return step if isinstance(step, str) else None


def _sla_thresholds(data: dict[str, Any], prefix: str = "") -> list[Threshold]:
    """Threshold lines of the ms criteria on one metric (request latency, or ttft./tpot./itl.), whole-run ones and windows alike."""
    found = []
    for check in data["sla"]["checks"]:
        criterion = check["criterion"]
        if _step_of(check) or check["unit"] != "ms" or not criterion.startswith(prefix) or criterion[len(prefix):] not in LATENCY_CRITERIA:
            continue
        if not prefix and "." in criterion:
            continue
        window = f" over {check['window_s']:g} s" if isinstance(check.get("window_s"), (int, float)) else ""
        status = STATUS_TEXT.get(check["status"], check["status"])
        found.append(Threshold(check["threshold"], f"SLA {criterion} {fmt_value(check['threshold'], 'ms')}{window}: {status}", "#b00020" if check["status"] != "pass" else "#555555"))
    return found


PERCENTILE_COLORS = (("p50", "#2ca02c"), ("p95", "#ff7f0e"), ("p99", "#d62728"))


def _per_second(seconds: Seconds, key: str, default: Any = None) -> list[tuple[float, float | None]]:
    """A per-second value at the middle of its second (second 3 covers 3 s to 4 s), so it lines up with the warm-up and the target."""
    return [(p["second"] + 0.5, p.get(key, default)) for p in seconds.points]


def _rate(seconds: Seconds, key: str) -> list[tuple[float, float | None]]:
    return _per_second(seconds, key, 0)


def _seconds_chart(chart_id: str, seconds: Seconds, lines: list[Line], y_title: str, **extra: Any) -> Chart:
    shades = [(*seconds.warmup, "warm-up")] if seconds.warmup else []
    return Chart(chart_id, lines, "seconds since start", y_title, seconds.x_range, shades=shades, **extra)


def latency_chart(chart_id: str, data: dict[str, Any], seconds: Seconds, metric: str = "") -> Chart:
    """p50/p95/p99 per second of the request latency (metric "") or of ttft/tpot/itl, with that metric's SLA thresholds."""
    key = f"{metric}_{{}}_ms" if metric else "{}_ms"
    name = INFERENCE_HISTOGRAMS.get(metric, "latency")
    lines = [Line(f"{name} {p}", color, _per_second(seconds, key.format(p))) for p, color in PERCENTILE_COLORS]
    return _seconds_chart(chart_id, seconds, lines, f"{name} (ms)", thresholds=_sla_thresholds(data, f"{metric}." if metric else ""))


def throughput_chart(chart_id: str, data: dict[str, Any], seconds: Seconds) -> Chart:
    lines = [
        Line("completed/s", "#1f77b4", _rate(seconds, "completed"), unit="/s"),
        Line("sent/s", "#7f7f7f", _rate(seconds, "sent"), unit="/s", dash="3 3", width=1.5),
        Line("errors/s", "#d62728", _rate(seconds, "errors"), unit="/s"),
    ]
    if data["load_model"] == "open":
        target = target_line(data, seconds.x_range[1])
        if target:
            lines.append(Line("target rate", "#111827", target, unit="/s", dash="8 4", width=1.2, markers=False))
    return _seconds_chart(chart_id, seconds, lines, "requests per second")


def outcomes_chart(chart_id: str, seconds: Seconds) -> Chart:
    """Responses per second by status code, and client errors per second by kind (dashed)."""
    codes = sorted({c for p in seconds.points for c in p.get("status_codes") or {}})
    kinds = sorted({k for p in seconds.points for k in p.get("error_kinds") or {}})
    palette = ("#2ca02c", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
    lines = []
    for i, code in enumerate(codes):
        color = "#2ca02c" if code.startswith(("2", "3")) else palette[1 + i % (len(palette) - 1)]
        lines.append(Line(f"HTTP {code}", color, [(p["second"] + 0.5, (p.get("status_codes") or {}).get(code, 0)) for p in seconds.points], unit="/s"))
    for i, kind in enumerate(kinds):
        lines.append(Line(f"error: {kind}", palette[(2 + i) % len(palette)], [(p["second"] + 0.5, (p.get("error_kinds") or {}).get(kind, 0)) for p in seconds.points], unit="/s", dash="5 3"))
    empty = "no status codes per second in this report (written by an older bench)" if seconds.points else "no measured seconds"
    return _seconds_chart(chart_id, seconds, lines, "responses per second", empty_text=empty)


def in_flight_chart(chart_id: str, data: dict[str, Any], seconds: Seconds) -> Chart:
    closed = data["load_model"] != "open"
    lines = [Line("in flight" + (" (active users)" if closed else ""), "#9467bd", _per_second(seconds, "in_flight"), unit="")]
    thresholds = []
    if closed:
        target = target_line(data, seconds.x_range[1])
        if target:
            lines.append(Line("target users", "#111827", target, unit="", dash="8 4", width=1.2, markers=False))
    else:
        cap = _load(data).get("max_in_flight")
        if isinstance(cap, int) and not isinstance(cap, bool):
            thresholds.append(Threshold(cap, f"in-flight cap {cap:,}", "#6b7280"))
    empty = "no in-flight counts in this report (written by an older bench)" if seconds.points else "no measured seconds"
    return _seconds_chart(chart_id, seconds, lines, "requests in flight", thresholds=thresholds, empty_text=empty)


def tokens_chart(chart_id: str, seconds: Seconds) -> Chart:
    return _seconds_chart(chart_id, seconds, [Line("output tokens/s", "#17becf", _rate(seconds, "output_tokens"), unit=" tok/s")], "output tokens per second")


TARGET_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def target_metric_groups(data: dict[str, Any]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """The report's ``target_metrics`` by metric name (series differing only in labels share a chart); malformed entries are left out."""
    raw = data.get("target_metrics")
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
    if not isinstance(raw, dict):
        return groups
    for series, points in raw.items():
        if not isinstance(series, str) or not isinstance(points, list):
            continue
        clean = [
            (float(p[0]), float(p[1]))
            for p in points
            if isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        ]
        if clean:
            groups.setdefault(series.split("{", 1)[0], {})[series] = clean
    return groups


def _with_gaps(points: list[tuple[float, float]]) -> list[tuple[float, float | None]]:
    """Points at the middle of their second, the line broken over seconds without a value (a failed or skipped scrape)."""
    out: list[tuple[float, float | None]] = []
    for second, value in sorted(points):
        if out and second > out[-1][0] - 0.5 + 1:
            out.append((second - 0.5, None))
        out.append((second + 0.5, value))
    return out


def target_scrapes_note(data: dict[str, Any]) -> str:
    """One line under the target's charts when scrapes failed: how many, why, and where the lines break."""
    record = data.get("target_scrapes")
    if not isinstance(record, dict) or not isinstance(record.get("failed"), dict) or not record["failed"]:
        return ""
    failed = sum(n for n in record["failed"].values() if isinstance(n, int))
    why = ", ".join(f"{k}: {n}" for k, n in record["failed"].items())
    return f'<p class="sub" style="color:var(--warn)">{failed} of {record.get("scrapes", "?")} scrapes failed ({esc(why)}); the lines break over the seconds left without a value.</p>'


def target_metric_chart(chart_id: str, seconds: Seconds, name: str, series: dict[str, list[tuple[float, float]]]) -> Chart:
    """One metric of the target over the run, on the same time axis as the latency chart (a value at the middle of its second)."""
    end = seconds.x_range[1]
    lines = [
        Line(label[len(name):] or name, TARGET_COLORS[i % len(TARGET_COLORS)], _with_gaps([(s, v) for s, v in points if s < end]), unit="")
        for i, (label, points) in enumerate(series.items())
    ]
    return _seconds_chart(chart_id, seconds, lines, name, height=220, empty_text="no value scraped in the measured seconds")


def distribution_chart(chart_id: str, runs: Sequence[Run], labels: Sequence[str], metric: str = "latency") -> Chart:
    """Every run's percentile distribution of one metric (HdrHistogram's classic plot: x = 1/(1-p), log).

    Percentile SLA criteria are crosses where they sit: ``p95 <= 800 ms`` is
    a cross at (95 %, 800 ms), so a curve passing under the cross meets it.
    """
    lines: list[Line] = []
    thresholds: list[Threshold] = []
    max_x = 100.0
    name = INFERENCE_HISTOGRAMS.get(metric, "latency")
    for index, (run, label) in enumerate(zip(runs, labels)):
        color = RUN_COLORS[index % len(RUN_COLORS)]
        curves = [(run.latency, label, "")] if metric == "latency" else [(run.inference.get(metric), label, "")]
        if metric == "latency" and run.data["load_model"] == "open" and run.service is not None:
            curves.append((run.service, f"{label} (service time)", "2 3"))
        for histogram, curve_name, dash in curves:
            points = percentile_distribution(histogram) if histogram is not None else []
            if not points:
                continue
            max_x = max(max_x, points[-1][1])
            lines.append(Line(curve_name, color, [(p[1], p[2]) for p in points], dash=dash))
        prefix = "" if metric == "latency" else f"{metric}."
        for check in run.data["sla"]["checks"]:
            criterion = check["criterion"]
            p = criterion[len(prefix):] if criterion.startswith(prefix) and not _step_of(check) else None
            if p in PERCENTILE_CRITERIA and (prefix or "." not in criterion) and check["unit"] == "ms" and check.get("window_s") is None:
                x = 1.0 / (1.0 - PERCENTILE_CRITERIA[p] / 100.0)
                thresholds.append(Threshold(check["threshold"], f"SLA of {label}: {criterion} {fmt_value(check['threshold'], 'ms')}", color, x=x))
    ticks, texts = percentile_ticks(max_x)
    return Chart(
        chart_id,
        lines,
        "percentile",
        f"{name} (ms)",
        (1.0, ticks[-1]),
        x_ticks=list(zip(ticks, texts)),
        x_log=True,
        hover_x="x = 1/(1-p) {x:.4g}",
        thresholds=thresholds,
        empty_text=f"no {name} was measured",
        height=380,
    )


# --------------------------------------------------------------------------- a session's steps, a conversation's turns


def _dict(container: Any, key: str) -> dict[str, Any]:
    """``container[key]`` when both are objects, else an empty dict (a report's optional parts, read defensively)."""
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def steps_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A session run's steps by name, in the order the report lists them (the session's order)."""
    return {str(name): step for name, step in _dict(data, "steps").items() if isinstance(step, dict)}


def turns_of(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """A conversation run's turns as (number, figures), by number."""
    found = [(int(key), turn) for key, turn in _dict(data, "turns").items() if isinstance(turn, dict) and key.isascii() and key.isdigit() and len(key) < 7]
    return sorted(found, key=lambda item: item[0])


#: A step's bar for one run: p99 behind (lightest), p95, p50 in front (darkest); runs side by side.
BAR_BANDS = (("p99", 0.3), ("p95", 0.6), ("p50", 1.0))


def _category_text(name: str, count: int) -> str:
    """A category's axis label, shortened to fit its share of the axis."""
    room = max(4, int((CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / max(1, count) / 7))
    return name if len(name) <= room else name[: room - 1] + "…"


def steps_chart(chart_id: str, runs: Sequence[Run], labels: Sequence[str]) -> Chart:
    """Latency p50/p95/p99 by session step: per step, one bar per run (bands: p50 dark, p95, p99 light); crosses: each step's own SLA thresholds."""
    names = list(dict.fromkeys(name for run in runs for name in steps_of(run.data)))
    present = [(j, run, label) for j, (run, label) in enumerate(zip(runs, labels)) if steps_of(run.data)]  # j: the run's colour
    slot = 0.8 / max(1, len(present))
    bars: list[Bar] = []
    thresholds: list[Threshold] = []
    for k, (j, run, label) in enumerate(present):
        color = RUN_COLORS[j % len(RUN_COLORS)]
        steps = steps_of(run.data)
        who = f"{label}: " if len(present) > 1 else ""
        for i, name in enumerate(names):
            x = i - 0.4 + (k + 0.5) * slot
            latency = _dict(steps.get(name), "latency")
            for p, opacity in BAR_BANDS:
                value = _number(latency.get(p))
                if value is not None:
                    bars.append(Bar(x, slot * 0.85, value, color, f"{who}step {name} {p} {fmt_ms(value)}", opacity, p))
        for check in run.data["sla"]["checks"]:
            step = _step_of(check)
            if step in names and check["unit"] == "ms" and check["criterion"] in LATENCY_CRITERIA:
                status = STATUS_TEXT.get(check["status"], check["status"])
                text = f"{who}SLA {step} {check['criterion']} {fmt_value(check['threshold'], 'ms')}: {status}"
                thresholds.append(Threshold(check["threshold"], text, color, x=names.index(step) - 0.4 + (k + 0.5) * slot))
    keys = [(RUN_COLORS[j % len(RUN_COLORS)], label) for j, _, label in present] if len(present) > 1 else []
    keys += [(f"#374151{round(opacity * 255):02x}", p) for p, opacity in reversed(BAR_BANDS)]
    return Chart(
        chart_id,
        [],
        "session step",
        "latency (ms)",
        (-0.5, len(names) - 0.5),
        x_ticks=[(float(i), _category_text(name, len(names))) for i, name in enumerate(names)],
        thresholds=thresholds,
        empty_text="no step was measured",
        height=340,
        dot_keys=keys,
        bars=bars,
    )


def turns_chart(chart_id: str, runs: Sequence[Run], labels: Sequence[str]) -> Chart:
    """TTFT p50 (solid) and p95 (dashed) by turn number, one colour per run; request latency when no run streamed (no TTFT)."""
    metric = "ttft" if any(_number(_dict(turn, "ttft").get("count")) for run in runs for _, turn in turns_of(run.data)) else "latency"
    name = "TTFT" if metric == "ttft" else "latency"
    lines = []
    last = 1
    for j, (run, label) in enumerate(zip(runs, labels)):
        turns = turns_of(run.data)
        if not turns:
            continue
        last = max(last, turns[-1][0])
        who = f"{label} " if sum(1 for r in runs if turns_of(r.data)) > 1 else ""
        for p, dash in (("p50", ""), ("p95", "6 3")):
            points = [(float(n), _number(_dict(turn, metric).get(p))) for n, turn in turns]
            lines.append(Line(f"{who}{name} {p}", RUN_COLORS[j % len(RUN_COLORS)], points, dash=dash))
    step = max(1, math.ceil(last / 20))
    return Chart(
        chart_id,
        lines,
        "turn of the conversation",
        f"{name} (ms)",
        (0.5, last + 0.5),
        x_ticks=[(float(n), str(n)) for n in range(1, last + 1, step)],
        hover_x="turn {s}",
        empty_text="no turn was measured",
        height=320,
    )


def _errors(requests: dict[str, Any]) -> int | None:
    counts = [requests.get(k) for k in ("http_errors", "client_errors", "check_failures")]
    return sum(n for n in counts if isinstance(n, int) and not isinstance(n, bool)) if any(isinstance(n, int) for n in counts) else None


def _sessions_facts(data: dict[str, Any], noun: str) -> str:
    """The session (or conversation) counts of a run as a facts list: started, completed, failed by kind, unfinished, skipped steps, rate, duration."""
    s = _dict(data, "sessions")
    if not s:
        return ""
    failures = ", ".join(f"{kind}: {_int(n)}" for kind, n in _dict(s, "failures").items())
    rows = [
        (noun, f"{_int(s.get('started'))} started, {_int(s.get('completed'))} completed, {_int(s.get('failed'))} failed"
         + (f" ({esc(failures)})" if failures else "") + f", {_int(s.get('unfinished'))} unfinished"),
        (f"{noun} per second", f"{rate:,.2f}/s" if (rate := _number(s.get("per_s"))) is not None else "–"),
        (f"{noun[:-1]} duration", ", ".join(f"{p} {esc(fmt_ms(_dict(s, 'duration').get(p)))}" for p in ("p50", "p95", "p99", "max"))),
    ]  # fmt: skip
    if noun == "sessions":
        rows.insert(1, ("skipped steps", f"{_int(s.get('skipped_steps'))} (not sent: their session had failed)"))
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _steps_table(data: dict[str, Any]) -> str:
    rows = []
    for name, step in steps_of(data).items():
        requests, latency = _dict(step, "requests"), _dict(step, "latency")
        rate = _number(step.get("error_rate"))
        rows.append(
            f"<tr><td>{esc(name)}</td><td class=\"num\">{_int(requests.get('sent'))}</td><td class=\"num\">{_int(requests.get('ok'))}</td>"
            f"<td class=\"num\">{_int(_errors(requests))}</td>"
            + "".join(f'<td class="num">{esc(fmt_ms(latency.get(p)))}</td>' for p in ("p50", "p95", "p99", "max"))
            + f'<td class="num{" bad" if rate else ""}">{esc(fmt_value(rate, "ratio"))}</td></tr>'
        )
    head = "<tr><th>step</th>" + "".join(f'<th class="num">{h}</th>' for h in ("sent", "ok", "errors", "p50", "p95", "p99", "max", "error rate")) + "</tr>"
    return f'<table class="steps">{head}{"".join(rows)}</table>'


def _per_request(total: Any, count: Any) -> str:
    total, count = _number(total), _number(count)
    return f"{total / count:,.0f}" if total is not None and count else "–"


def _turns_table(data: dict[str, Any]) -> str:
    rows = []
    for number, turn in turns_of(data):
        requests, ttft, tpot, latency = (_dict(turn, k) for k in ("requests", "ttft", "tpot", "latency"))
        rate = _number(turn.get("error_rate"))
        rows.append(
            f"<tr><td class=\"num\">{number}</td><td class=\"num\">{_int(requests.get('sent'))}</td><td class=\"num\">{_int(_errors(requests))}</td>"
            + "".join(f'<td class="num">{esc(fmt_ms(v))}</td>' for v in (ttft.get("p50"), ttft.get("p95"), tpot.get("p50"), latency.get("p95")))
            + f'<td class="num">{_per_request(turn.get("input_tokens"), requests.get("sent"))}</td>'
            f'<td class="num">{_per_request(turn.get("output_tokens"), requests.get("ok"))}</td>'
            f'<td class="num{" bad" if rate else ""}">{esc(fmt_value(rate, "ratio"))}</td></tr>'
        )
    titles = ("requests", "errors", "TTFT p50", "TTFT p95", "TPOT p50", "latency p95", "input tokens / request", "output tokens / request", "error rate")
    head = '<tr><th class="num">turn</th>' + "".join(f'<th class="num">{h}</th>' for h in titles) + "</tr>"
    return f'<table class="turns">{head}{"".join(rows)}</table>'


def _by_run(runs: Sequence[Run], labels: Sequence[str], has: Any, body: Any) -> str:
    """Each run that ``has`` it: a heading in the run's colour, then ``body(data)``."""
    parts = []
    for j, (run, label) in enumerate(zip(runs, labels)):
        if has(run.data):
            parts.append(f'<h3><span style="color:{RUN_COLORS[j % len(RUN_COLORS)]}">&#9632;</span> <a href="#run-{j + 1}">{esc(label)}</a></h3>{body(run.data)}')
    return "".join(parts)


def steps_section(runs: Sequence[Run], labels: Sequence[str]) -> tuple[str, list[str]]:
    """The Steps section (empty when no run is a session run) and its chart's id."""
    if not any(steps_of(run.data) for run in runs):
        return "", []
    note = (
        "Each step's own requests; latency counts from when the step was due, so a slow step delays the ones after it. "
        "Per step, one bar per run: dark to the p50, then to the p95, light to the p99; crosses mark the step's own SLA thresholds."
    )
    html_text = (
        f'<section id="steps"><h2>Steps</h2><p class="sub">{esc(note)}</p>'
        "<h3>Latency by step (p50 / p95 / p99)</h3>"
        + svg_chart(steps_chart("chart-steps", runs, labels))
        + _by_run(runs, labels, steps_of, lambda d: _sessions_facts(d, "sessions") + _steps_table(d))
        + "</section>"
    )
    return html_text, ["chart-steps"]


def turns_section(runs: Sequence[Run], labels: Sequence[str]) -> tuple[str, list[str]]:
    """The Turns section (empty when no run holds conversations) and its chart's id."""
    if not any(turns_of(run.data) for run in runs):
        return "", []
    chart = turns_chart("chart-turns", runs, labels)
    note = (
        "Turn k of every conversation: each turn sends the whole history so far, so a model server that reuses the prefix keeps TTFT flat "
        "while one that does not pays for the growing history. Input tokens per request sent, output tokens per successful request."
    )
    html_text = (
        f'<section id="turns"><h2>Turns</h2><p class="sub">{esc(note)}</p>'
        f"<h3>{esc(chart.y_title[:-5])} by turn (solid: p50, dashed: p95; one colour per run)</h3>"
        + svg_chart(chart)
        + _by_run(runs, labels, turns_of, lambda d: _sessions_facts(d, "conversations") + _turns_table(d))
        + "</section>"
    )
    return html_text, ["chart-turns"]


# --------------------------------------------------------------------------- the page

STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6472; --line: #dde1e7; --pass: #17803d; --fail: #b00020; --warn: #a15c00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #f5f6f8; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 12px; display: flex; align-items: center; gap: 10px; flex-wrap: wrap; word-break: break-word; }
h3 { font-size: 15px; margin: 22px 0 6px; color: var(--muted); font-weight: 600; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin: 18px 0; }
.sub { color: var(--muted); margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-all; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 700; letter-spacing: .02em; color: #fff; white-space: nowrap; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); } .badge.unmeasurable { background: var(--warn); }
.badge.neutral { background: #6b7280; } .badge.status-ok { background: #4b5563; } .badge.status-bad { background: var(--warn); }
.result.pass { color: var(--pass); font-weight: 700; } .result.fail { color: var(--fail); font-weight: 700; } .result.unmeasurable { color: var(--warn); font-weight: 700; }
figure.chart-box { margin: 0; }
svg.chart { width: 100%; height: auto; display: block; font-family: inherit; }
svg.chart .point:hover, svg.chart .bar:hover { stroke: #111; stroke-width: 2; }
td.num.bad { color: var(--fail); font-weight: 600; }
table.steps, table.turns { margin-top: 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; color: var(--muted); margin: 2px 0 0 60px; }
.legend .key i { display: inline-block; width: 22px; vertical-align: middle; margin-right: 5px; }
.legend .key b.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; vertical-align: middle; margin-right: 5px; }
tr.capacity td { background: #eef8f1; font-weight: 600; }
.answer { font-size: 16px; margin: 4px 0 0; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 0 24px; }
@media (max-width: 1000px) { .grid2 { grid-template-columns: 1fr; } }
.notes { margin: 6px 0 0; padding-left: 20px; color: var(--warn); }
.warning { border-color: var(--warn); background: #fff8ec; }
.warning h2 { color: var(--warn); }
.meaning { color: var(--muted); font-style: italic; }
details { margin-top: 14px; } summary { cursor: pointer; color: var(--muted); }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px; overflow: auto; font-size: 12px; max-height: 420px; }
nav a { margin-right: 12px; }
"""


def endpoints(data: dict[str, Any]) -> list[str]:
    """What the run sent, method and URL, one line per request kind (or session step); the bundled mock server named as such."""
    profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
    target = profile.get("target") if isinstance(profile.get("target"), dict) else {}
    mock = "url" in target and target.get("url") is None
    base = data.get("target_url") or (target.get("url") if isinstance(target.get("url"), str) else "")
    kinds = profile.get("request_kinds") if isinstance(profile.get("request_kinds"), list) else []
    kinds = [k for k in kinds if isinstance(k, dict)] or [{"method": target.get("method"), "name": None}]
    steps = [s for s in profile["session"] if isinstance(s, dict)] if isinstance(profile.get("session"), list) else []
    kinds = steps or kinds
    lines = []
    for kind in kinds:
        method = kind.get("method") if isinstance(kind.get("method"), str) else ""
        path = None
        if isinstance(kind.get("url"), str):
            url = kind["url"]
        else:
            if isinstance(kind.get("path"), str):
                path = kind["path"]
            elif kind.get("api") in API_PATHS and urlsplit(base).path in ("", "/"):
                path = API_PATHS[kind["api"]]
            url = urljoin(base, path) if base and path else base
        if mock and not isinstance(kind.get("url"), str):
            shown = f"{method} {path or urlsplit(url).path or '/'} on the bundled mock server"
        else:
            shown = f"{method} {url or '–'}"
        extra = []
        if steps:
            extra.append(f"step {kind.get('name')}")
        elif len(kinds) > 1 and kind.get("name"):
            extra.append(f"kind {kind['name']}, weight {kind.get('weight', 1):g}" if isinstance(kind.get("weight", 1), (int, float)) else f"kind {kind['name']}")
        if kind.get("api"):
            extra.append(f"{kind['api']}{', streamed' if kind.get('stream') else ''}")
        lines.append(shown.strip() + (f" ({'; '.join(extra)})" if extra else ""))
    return lines


#: The request paths of the inference API presets (as requests.API_PRESETS).
API_PATHS = {"openai-chat": "/v1/chat/completions", "openai-completions": "/v1/completions"}


def _facts(run: Run) -> str:
    d = run.data
    req = d["requests"]
    lat = d["latency"]
    rows = [
        ("profile", esc(d.get("profile_path") or "–")),
        ("status", esc(d["status"]) + ("" if d.get("complete", True) else " (incomplete)")),
        ("load model", esc(_load_text(d))),
        ("requests sent", "<br>".join(esc(e) for e in endpoints(d))),
        ("started", esc(d["started_at"]) + (f" &nbsp;ended {esc(d['ended_at'])}" if d.get("ended_at") else "")),
        ("latency means", f'<span class="meaning">{esc(d["latency_meaning"])}</span>'),
        (
            "requests",
            f"{_int(req.get('sent'))} sent, {_int(req.get('ok'))} ok, {_int(req.get('http_errors'))} HTTP errors, "
            f"{_int(req.get('client_errors'))} client errors; error rate {esc(fmt_value(d.get('error_rate'), 'ratio'))}",
        ),
        ("throughput", f"{esc(fmt_value(d.get('rps'), 'req/s'))} over {esc(fmt_value(d.get('duration_s'), 's'))}"),
        (
            "latency",
            ", ".join(f"{k} {esc(fmt_ms(lat.get(k)))}" for k in ("p50", "p90", "p95", "p99", "p99.9", "max")) + f" ({_int(lat.get('count'))} requests)",
        ),
    ]
    inference = d.get("inference") if isinstance(d.get("inference"), dict) else None
    if inference:
        for key, name in INFERENCE_HISTOGRAMS.items():
            stats = inference.get(key) if isinstance(inference.get(key), dict) else {}
            rows.append((name, ", ".join(f"{k} {esc(fmt_ms(stats.get(k)))}" for k in ("p50", "p95", "p99", "max")) + f" ({_int(stats.get('count'))} values)"))
        rows.append(
            (
                "output tokens",
                f"{_int(inference.get('output_tokens'))} ({esc(fmt_value(inference.get('output_tokens_per_s'), 'tok/s'))})",
            )
        )
    errors = d.get("errors") if isinstance(d.get("errors"), dict) else {}
    codes = d.get("status_codes") if isinstance(d.get("status_codes"), dict) else {}
    if codes or errors:
        rows.append(("outcomes", esc(", ".join([f"HTTP {c}: {n:,}" for c, n in codes.items() if isinstance(n, int)] + [f"{k}: {n:,}" for k, n in errors.items() if isinstance(n, int)]))))
    trust = d.get("trust") if isinstance(d.get("trust"), dict) else {}
    trusted = d.get("trusted", trust.get("trusted", True))
    reasons = trust.get("reasons") if isinstance(trust.get("reasons"), list) else []
    rows.append(("generator", "trustworthy" if trusted is not False else '<span class="result fail">not trustworthy</span>'))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    notes = [f"not trustworthy: {r}" for r in reasons] + list(d.get("messages") or [])
    notes_html = f'<ul class="notes">{"".join(f"<li>{esc(n)}</li>" for n in notes)}</ul>' if notes else ""
    return f'<dl class="facts">{body}</dl>{notes_html}'


def _sla_table(run: Run) -> str:
    checks = run.data["sla"]["checks"]
    if not checks:
        return '<p class="sub">No SLA criteria in this profile.</p>'
    rows = []
    for c in checks:
        status = c["status"]
        note = f'<br><span class="sub">{esc(c["note"])}</span>' if c.get("note") else ""
        label = esc(c["label"])
        step = _step_of(c)
        if step is not None:  # "login p95 <=" reads "step login: p95 <="
            rest = c["label"][len(step) + 1 :] if c["label"].startswith(f"{step} ") else c["label"]
            label = f'step <a href="#steps">{esc(step)}</a>: {esc(rest)}'
        rows.append(
            f"<tr><td>{label}{note}</td><td class=\"num\">{esc(fmt_value(c['threshold'], c['unit']))}</td>"
            f"<td class=\"num\">{esc(fmt_value(c['measured'], c['unit']))}</td>"
            f"<td class=\"result {_status_class(status)}\">{esc(STATUS_TEXT.get(status, status.upper()))}</td></tr>"
        )
    head = '<tr><th>criterion</th><th class="num">threshold</th><th class="num">measured</th><th>result</th></tr>'
    return f"<table class=\"sla\">{head}{''.join(rows)}</table>"


def _overview(runs: Sequence[Run], labels: Sequence[str]) -> str:
    rows = []
    for index, (run, label) in enumerate(zip(runs, labels)):
        d = run.data
        lat = d["latency"]
        verdict, cls = _verdict(d)
        color = RUN_COLORS[index % len(RUN_COLORS)]
        rows.append(
            f'<tr><td><span style="color:{color}">&#9632;</span> <a href="#run-{index + 1}">{esc(label)}</a></td>'
            f"<td>{esc(d['status'])}</td><td><span class=\"badge {cls}\">{esc(verdict)}</span></td>"
            f"<td class=\"num\">{_int(d['requests'].get('sent'))}</td><td class=\"num\">{esc(fmt_value(d.get('rps'), 'req/s'))}</td>"
            + "".join(f'<td class="num">{esc(fmt_ms(lat.get(k)))}</td>' for k in ("p50", "p95", "p99", "max"))
            + "</tr>"
        )
    head = (
        "<tr><th>run</th><th>status</th><th>SLA</th><th class=\"num\">requests</th><th class=\"num\">throughput</th>"
        '<th class="num">p50</th><th class="num">p95</th><th class="num">p99</th><th class="num">max</th></tr>'
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _partial_note(seconds: Seconds) -> str:
    notes = ["Seconds count from the start of the run; the shaded band is the warm-up (excluded from the statistics)." if seconds.warmup else "Seconds count from the start of the run."]
    p = seconds.partial
    if p is not None:
        length = f"{seconds.partial_length_s:.2f} s long" if seconds.partial_length_s is not None else "the run ended inside it"
        notes.append(
            f"Second {p['second']} is partial ({length}) and is not plotted: its {p['completed']:,} completed and {p['sent']:,} sent requests count in the totals."
        )
    return f'<p class="sub">{esc(" ".join(notes))}</p>'


def comparability_problems(runs: Sequence[Run], labels: Sequence[str]) -> list[str]:
    """How the runs differ in the load they offered or their target, as ``bench compare`` judges it; empty when comparable."""
    from bench.engine.results.compare import Run as CompareRun, comparability

    return comparability([CompareRun(label, run.data, {}) for run, label in zip(runs, labels)])


def _run_section(index: int, run: Run, label: str) -> tuple[str, list[str]]:
    """One run's section and the ids of its charts."""
    d = run.data
    seconds = seconds_of(d)
    prefix = f"chart-{index}"
    charts = [
        ("Latency per second (p50 / p95 / p99; dashed: latency SLA thresholds)", latency_chart(f"{prefix}-latency", d, seconds)),
        ("Throughput and errors per second" + (" (dashed black: the schedule's target rate)" if d["load_model"] == "open" else ""), throughput_chart(f"{prefix}-throughput", d, seconds)),
        ("Status codes and client errors per second", outcomes_chart(f"{prefix}-outcomes", seconds)),
        (
            "Requests in flight" + (" (active users; dashed black: the target users)" if d["load_model"] != "open" else " (at each second's end)"),
            in_flight_chart(f"{prefix}-inflight", d, seconds),
        ),
    ]
    target_html = ""
    groups = target_metric_groups(d)
    if groups:
        target_charts = [(f"Target: {name}", target_metric_chart(f"{prefix}-target-{i}", seconds, name, series)) for i, (name, series) in enumerate(groups.items())]
        charts += target_charts
        target_html = (
            '<h3 class="target-metrics">The target\'s metrics (scraped from target.metrics_url once a second)</h3>'
            + target_scrapes_note(d)
            + "".join(f"<h3>{esc(t)}</h3>{svg_chart(c)}" for t, c in target_charts)
        )
    inference = ""
    if run.inference or isinstance(d.get("inference"), dict):
        inference_charts = [
            ("TTFT per second (of requests completed in the second)", latency_chart(f"{prefix}-ttft", d, seconds, "ttft")),
            ("TPOT per second", latency_chart(f"{prefix}-tpot", d, seconds, "tpot")),
            ("ITL per second", latency_chart(f"{prefix}-itl", d, seconds, "itl")),
            ("Output tokens per second", tokens_chart(f"{prefix}-tokens", seconds)),
        ]
        charts += inference_charts
        inference = '<h3 class="inference">Inference</h3>' + "".join(f"<h3>{esc(t)}</h3>{svg_chart(c)}" for t, c in inference_charts)
    charts_html = "".join(f"<h3>{esc(t)}</h3>{svg_chart(c)}" for t, c in charts[:4]) + target_html
    verdict, cls = _verdict(d)
    status_cls = "status-ok" if d["status"] == "completed" else "status-bad"
    profile_json = json.dumps(_redacted_profile(d.get("profile")), indent=2, ensure_ascii=False, allow_nan=False)
    html_text = (
        f'<section class="run" id="run-{index}">'
        f'<h2><span style="color:{RUN_COLORS[(index - 1) % len(RUN_COLORS)]}">&#9632;</span> <span class="run-name">{esc(label)}</span>'
        f'<span class="badge {cls}">{esc(verdict)}</span><span class="badge {status_cls}">{esc(d["status"])}</span></h2>'
        f'<p class="sub">{esc(run.path.name)}</p>'
        f"{_facts(run)}"
        f"<h3>SLA</h3>{_sla_table(run)}"
        f"{charts_html}{inference}{_partial_note(seconds)}"
        f"<details><summary>Resolved profile</summary><pre>{esc(profile_json)}</pre></details>"
        "</section>"
    )
    return html_text, [c.id for _, c in charts]


def render_html(runs: Sequence[Run], *, title: str | None = None, generated_at: str | None = None, problems: Sequence[str] = ()) -> str:
    """The whole page as one string: HTML and inline SVG, no script.

    ``problems``: how the runs are not comparable (from ``comparability_problems``),
    shown in a warning at the top when the caller chose to overlay them anyway.
    """
    if not runs:
        raise ValueError("no runs to report")
    labels = _run_labels(runs)
    generated_at = generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = title or ("bench report: " + labels[0] if len(runs) == 1 else f"bench report: {len(runs)} runs")
    chart_ids = ["chart-distribution"]
    distributions = [
        "<h3>Latency percentile distribution (HdrHistogram, from the stored histograms)</h3>"
        '<p class="sub">x: percentile on a 1/(1&minus;p) log scale, so the tail gets the room; y: latency. One curve per run '
        "(dotted: service time of open-loop runs); crosses mark percentile SLA thresholds.</p>"
        + svg_chart(distribution_chart("chart-distribution", runs, labels))
    ]
    for metric, name in INFERENCE_HISTOGRAMS.items():
        if any(metric in run.inference for run in runs):
            chart_ids.append(f"chart-distribution-{metric}")
            distributions.append(f"<h3>{esc(name)} percentile distribution</h3>" + svg_chart(distribution_chart(f"chart-distribution-{metric}", runs, labels, metric)))
    by_step, step_ids = steps_section(runs, labels)
    by_turn, turn_ids = turns_section(runs, labels)
    chart_ids += step_ids + turn_ids
    sections = []
    for index, (run, label) in enumerate(zip(runs, labels), start=1):
        section, ids = _run_section(index, run, label)
        sections.append(section)
        chart_ids += ids
    warning = ""
    if problems:
        warning = (
            '<section class="warning" id="not-comparable"><h2>These runs are not comparable</h2>'
            '<p class="sub">They offered different load or hit different targets; they are overlaid because the report was asked to (--force).</p>'
            f'<ul class="notes">{"".join(f"<li>{esc(p)}</li>" for p in problems)}</ul></section>'
        )
    plural = "run" if len(runs) == 1 else "runs"
    nav = "".join(f'<a href="#run-{i}">{esc(label)}</a>' for i, label in enumerate(labels, start=1))
    nav += ('<a href="#steps">Steps</a>' if by_step else "") + ('<a href="#turns">Turns</a>' if by_turn else "")
    return (
        _page_head(title)
        + f'<body data-charts="{len(chart_ids)}">'
        "<main>"
        f"<header><h1>{esc(title)}</h1>"
        f'<p class="sub">{len(runs)} {plural}; generated {esc(generated_at)} by bench {esc(_bench_version())}. '
        "Self-contained: opens offline, nothing is fetched, no script runs. Hover a point for its value.</p><nav>" + nav + "</nav></header>"
        + warning
        + '<section id="overview"><h2>Overview</h2>'
        f"{_overview(runs, labels)}"
        + "".join(distributions)
        + "</section>"
        + by_step
        + by_turn
        + "".join(sections)
        + "</main>\n</body></html>\n"
    )


#: The page's security policy: inline styles and data: images only; no script, no fetch of any kind.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _page_head(title: str) -> str:
    """The doctype and <head> every page starts with: charset, CSP, generator, title, style."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="bench {esc(_bench_version())}">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
    )


def _bench_version() -> str:
    import bench

    return bench.__version__


class NotComparableError(ReportInputError):
    """Runs that offered different load or hit different targets, overlaid without ``force``."""


def render_runs(runs: Sequence[Run], *, title: str | None = None, force: bool = False) -> str:
    """The page for checked runs; NotComparableError (one line) when they are not comparable and not forced."""
    problems = comparability_problems(runs, [str(run.path) for run in runs]) if len(runs) > 1 else []
    if problems and not force:
        raise NotComparableError(
            f"not comparable: {'; '.join(problems)}; report like with like, or pass --force to overlay them under a warning"
        )
    return render_html(runs, title=title, problems=problems)


def build(paths: Sequence[Path], *, title: str | None = None, force: bool = False) -> tuple[str, int]:
    """Load every report (ReportInputError on the first bad one) and render the page; returns (html, number of runs).

    A search report (``bench search --json``) alone gives the search's page; its
    probes, picked as ``search.json#N``, are runs like any other.
    """
    inputs = [load_input(Path(p)) for p in paths]
    searches = [found for found in inputs if isinstance(found, Search)]
    if searches and len(inputs) > 1:
        name = searches[0].path
        raise ReportInputError(f"{name}: a search report is drawn on its own page; to overlay its probes with other runs, pick them with {name}#N")
    if searches:
        return render_search(searches[0], title=title), len(searches[0].probes)
    runs = [found for found in inputs if isinstance(found, Run)]
    return render_runs(runs, title=title, force=force), len(runs)


def write_report(path: Path, reports: Sequence[dict[str, Any]], *, sources: Sequence[str] | None = None, title: str | None = None, force: bool = False) -> int:
    """Write the page for in-memory reports (as ``bench run`` holds them) to ``path``, atomically; returns its size in bytes.

    Each report goes through JSON first, exactly as if read from its file
    (infinities become "inf"); ``sources`` name them (default: the run names).
    """
    from bench.engine.results.report import json_safe

    runs = []
    for i, report in enumerate(reports):
        source = Path(sources[i] if sources else str(report.get("name", f"run {i + 1}")))
        data = json.loads(json.dumps(json_safe(report), allow_nan=False, default=str), parse_constant=_reject_constant)
        if is_search(data):
            if len(reports) > 1:
                raise ReportInputError(f"{source}: a search report is drawn on its own page")
            page = render_search(search_from_data(data, source), title=title)
            break
        runs.append(run_from_data(data, source))
    else:
        page = render_runs(runs, title=title, force=force)
    data_bytes = page.encode("utf-8")
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data_bytes)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    return len(data_bytes)
