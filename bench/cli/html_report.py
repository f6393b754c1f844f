"""``bench report``: one self-contained HTML page from one or more JSON reports.

The page opens offline: plotly.js is inlined once, the chart data sits in one
``<script type="application/json">`` block, and a Content-Security-Policy
allows exactly the page's own three inline scripts (by hash) and no fetch of
any kind. Everything taken from a report (names, URLs, messages, header
values: any string) is HTML-escaped in the page, escaped again for plotly's
pseudo-HTML in chart labels, and embedded as JSON with ``<``, ``>``, ``&``,
U+2028 and U+2029 written as ``\\uXXXX``, so no input can close a tag or start
a script. The charts use plotly (``bench-loadtest[report]``), imported only
when a page is rendered; the loading, checking and percentile code here needs
only the standard library and hdrh.

Charts: per run, latency p50/p95/p99 per second with the latency SLA
thresholds, and completed/sent/errors per second; across runs, the latency
percentile distribution in HdrHistogram's classic form (x = 1/(1-p) on a log
axis labelled 50 %, 90 %, 99 %, ...), decoded from the report's histograms.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

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


class ReportInputError(Exception):
    """An input file that is not a readable bench JSON report; the message names the file and the problem."""


@dataclass(frozen=True)
class Run:
    """One input report, checked, with its histograms decoded."""

    path: Path
    data: dict[str, Any]
    latency: HdrHistogram | None
    service: HdrHistogram | None

    @property
    def name(self) -> str:
        return self.data["name"]


# --------------------------------------------------------------------------- escaping


def safe_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element (and in JS source).

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e``, ``\\u0026`` so no
    string can write ``</script>`` or ``<!--``; everything non-ASCII (U+2028 and
    U+2029 included) is ``\\uXXXX``. NaN and infinities are refused: JSON has none.
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def esc(value: Any) -> str:
    """Any value as HTML text (quotes included, so also safe in an attribute)."""
    return html.escape(str(value), quote=True)


def plotly_text(value: Any) -> str:
    """A string for a plotly label: plotly reads ``<b>``, ``<a href>`` etc. in labels and decodes entities, so escape."""
    return html.escape(str(value), quote=False)


def _inline_script(js: str) -> str:
    """JS text that cannot end its ``<script>`` element early; CR normalised as the HTML parser would (hashes match)."""
    js = js.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def _csp_hash(js: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii") + "'"


# --------------------------------------------------------------------------- loading and checking


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def load_run(path: Path) -> Run:
    """Read, check and decode one JSON report; any problem is a ReportInputError naming the file."""
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
    return Run(path, data, latency, service)


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
    for key in ("profile", "trust", "service", "generator"):
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
    histograms = data["histograms"]
    for key in ("latency", "service", "schedule_lag"):
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
    if model == "open":
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


# --------------------------------------------------------------------------- charts (plotly figures as JSON)


def _figure_json(fig: Any) -> dict[str, Any]:
    return json.loads(fig.to_json(engine="json"))


def _base_layout(go: Any, **extra: Any) -> Any:
    settings: dict[str, Any] = {
        "template": "plotly_white",
        "height": 360,
        "margin": {"l": 70, "r": 30, "t": 30, "b": 50},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        "hovermode": "x unified",
    }
    settings.update(extra)
    return go.Layout(**settings)


def _seconds_axis(seconds: list[int]) -> dict[str, Any]:
    """The x axis of the per-second charts: whole seconds (a short run would otherwise get 0.5 s ticks)."""
    axis: dict[str, Any] = {"title": {"text": "seconds since start"}, "tickformat": ",d"}
    if seconds and max(seconds) - min(seconds) <= 12:
        axis.update(tick0=0, dtick=1)
    return axis


def latency_over_time(go: Any, run: Run) -> dict[str, Any]:
    series = run.data["series"]
    seconds = [p["second"] for p in series]
    fig = go.Figure(layout=_base_layout(go, xaxis=_seconds_axis(seconds), yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"}))
    for key, label, color in (("p50_ms", "p50", "#2ca02c"), ("p95_ms", "p95", "#ff7f0e"), ("p99_ms", "p99", "#d62728")):
        fig.add_trace(
            go.Scatter(
                x=seconds,
                y=[p[key] for p in series],
                name=label,
                mode="lines+markers",
                line={"color": color, "width": 2},
                marker={"size": 5},
                hovertemplate="%{y:.2f} ms",
            )
        )
    for check in run.data["sla"]["checks"]:
        if check["unit"] != "ms" or check["criterion"] not in LATENCY_CRITERIA:
            continue
        label = f"{check['label']} {fmt_value(check['threshold'], 'ms')}: {STATUS_TEXT.get(check['status'], check['status'])}"
        fig.add_hline(
            y=check["threshold"],
            line={"color": "#b00020" if check["status"] != "pass" else "#555555", "dash": "dash", "width": 1.5},
            annotation={"text": plotly_text(label), "xanchor": "right", "x": 1, "yanchor": "bottom", "font": {"size": 11}},
        )
    if not series:
        fig.add_annotation(text="no measured seconds", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _figure_json(fig)


def throughput_over_time(go: Any, run: Run) -> dict[str, Any]:
    series = run.data["series"]
    seconds = [p["second"] for p in series]
    fig = go.Figure(layout=_base_layout(go, xaxis=_seconds_axis(seconds), yaxis={"title": {"text": "requests per second"}, "rangemode": "tozero"}))
    fig.add_trace(go.Scatter(x=seconds, y=[p["completed"] for p in series], name="completed/s", mode="lines+markers", line={"color": "#1f77b4", "width": 2}))
    fig.add_trace(go.Scatter(x=seconds, y=[p["sent"] for p in series], name="sent/s", mode="lines", line={"color": "#7f7f7f", "width": 1, "dash": "dot"}))
    fig.add_trace(go.Scatter(x=seconds, y=[p["errors"] for p in series], name="errors/s", mode="lines+markers", line={"color": "#d62728", "width": 2}))
    if not series:
        fig.add_annotation(text="no measured seconds", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _figure_json(fig)


def distribution_chart(go: Any, runs: Sequence[Run]) -> dict[str, Any]:
    """Every run's latency percentile distribution in one chart (service time too, hidden, for open-loop runs).

    Percentile SLA criteria are marked where they sit: ``p95 <= 800 ms`` is a
    cross at (95 %, 800 ms), so a curve passing under the cross meets it.
    """
    max_x = 100.0
    curves_drawn = 0
    fig = go.Figure(layout=_base_layout(go, hovermode="closest", height=460))
    for index, (run, label) in enumerate(zip(runs, _run_labels(runs))):
        color = RUN_COLORS[index % len(RUN_COLORS)]
        group = f"run{index}"
        curves = [(run.latency, plotly_text(label), "solid", True)]
        if run.data["load_model"] == "open" and run.service is not None:
            curves.append((run.service, plotly_text(f"{label} (service time)"), "dot", "legendonly"))
        for histogram, name, dash, visible in curves:
            if histogram is None:
                continue
            points = percentile_distribution(histogram)
            if not points:
                continue
            max_x = max(max_x, points[-1][1])
            curves_drawn += 1
            fig.add_trace(
                go.Scatter(
                    x=[p[1] for p in points],
                    y=[p[2] for p in points],
                    customdata=[f"{p[0]:.5g}" for p in points],
                    name=name,
                    legendgroup=group,
                    visible=visible,
                    mode="lines",
                    line={"color": color, "width": 2, "dash": dash},
                    hovertemplate="p%{customdata}: %{y:.2f} ms",
                )
            )
        sla_points = [
            (c, PERCENTILE_CRITERIA[c["criterion"]])
            for c in run.data["sla"]["checks"]
            if c["criterion"] in PERCENTILE_CRITERIA and c["unit"] == "ms" and c.get("window_s") is None
        ]
        if sla_points:
            fig.add_trace(
                go.Scatter(
                    x=[1.0 / (1.0 - p / 100.0) for _, p in sla_points],
                    y=[c["threshold"] for c, _ in sla_points],
                    text=[plotly_text(f"{c['label']} {fmt_value(c['threshold'], 'ms')}") for c, _ in sla_points],
                    name=plotly_text(f"SLA of {label}"),
                    legendgroup=group,
                    mode="markers",
                    marker={"symbol": "x-thin-open", "size": 14, "line": {"width": 3, "color": color}, "color": color},
                    hovertemplate="%{text}",
                )
            )
    tickvals, ticktext = percentile_ticks(max_x)
    fig.update_layout(
        xaxis={
            "type": "log",
            "title": {"text": "percentile"},
            "tickvals": tickvals,
            "ticktext": ticktext,
            "range": [0, math.log10(max_x * 1.5)],
            "showgrid": True,
        },
        yaxis={"title": {"text": "latency (ms)"}, "rangemode": "tozero"},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 0,
                "xanchor": "left",
                "y": -0.18,
                "yanchor": "top",
                "showactive": True,
                "buttons": [
                    {"label": "linear latency axis", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                    {"label": "log latency axis", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                ],
            }
        ],
    )
    fig.update_layout(margin={"b": 90})
    if not curves_drawn:
        fig.add_annotation(text="no latency was measured", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _figure_json(fig)


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
.chart { width: 100%; min-height: 360px; }
.notes { margin: 6px 0 0; padding-left: 20px; color: var(--warn); }
.meaning { color: var(--muted); font-style: italic; }
details { margin-top: 14px; } summary { cursor: pointer; color: var(--muted); }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px; overflow: auto; font-size: 12px; max-height: 420px; }
#bench-errors { color: var(--fail); background: #fff0f0; border-color: var(--fail); white-space: pre-wrap; margin: 0; }
#bench-errors:empty { display: none; }
nav a { margin-right: 12px; }
"""

#: Runs first, in <body> right after the error box: records script errors, blocked fetches and dialogs there.
TRAP_JS = """(function () {
  "use strict";
  var box = document.getElementById("bench-errors");
  function report(message) { box.textContent += String(message) + "\\n"; }
  window.benchReportError = report;
  window.onerror = function (message, source, line, column) {
    report("script error: " + message + (line ? " (line " + line + ":" + column + ")" : ""));
    return false;
  };
  window.addEventListener("error", function (event) {
    if (event.target && event.target !== window) { report("failed to load: " + (event.target.src || event.target.href || event.target.tagName)); }
  }, true);
  window.addEventListener("unhandledrejection", function (event) { report("unhandled rejection: " + (event.reason && event.reason.message || event.reason)); });
  document.addEventListener("securitypolicyviolation", function (event) {
    report("blocked by the page's security policy: " + event.violatedDirective + " " + (event.blockedURI || ""));
  });
  window.alert = window.confirm = window.prompt = function (message) { report("a script tried to open a dialog: " + message); };
})();"""

#: Runs last: draws every chart from the JSON block, then marks <body data-charts-ready="N">.
MAIN_JS = """(function () {
  "use strict";
  var report = window.benchReportError;
  try {
    if (typeof Plotly === "undefined") { throw new Error("plotly.js did not load"); }
    var spec = JSON.parse(document.getElementById("bench-charts").textContent);
    var drawn = spec.charts.map(function (chart) {
      return Plotly.newPlot(chart.id, chart.figure.data, chart.figure.layout, spec.config);
    });
    Promise.all(drawn).then(function () {
      document.body.setAttribute("data-charts-ready", String(drawn.length));
    }, function (error) { report("a chart failed to draw: " + (error && error.message || error)); });
  } catch (error) {
    report("charts failed: " + (error && error.message || error));
  }
})();"""

PLOTLY_CONFIG = {"responsive": True, "displaylogo": False, "showLink": False, "showSendToCloud": False, "showEditInChartStudio": False}


def _facts(run: Run) -> str:
    d = run.data
    req = d["requests"]
    lat = d["latency"]
    profile = d.get("profile") if isinstance(d.get("profile"), dict) else {}
    target_url = d.get("target_url") or "–"
    target_cfg = profile.get("target") if isinstance(profile.get("target"), dict) else {}
    method = target_cfg.get("method") if isinstance(target_cfg.get("method"), str) else ""
    mock = " (the bundled mock server)" if "url" in target_cfg and target_cfg.get("url") is None else ""
    rows = [
        ("profile", esc(d.get("profile_path") or "–")),
        ("status", esc(d["status"]) + ("" if d.get("complete", True) else " (incomplete)")),
        ("load model", esc(_load_text(d))),
        ("target", esc(f"{method} {target_url}".strip()) + esc(mock)),
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
        rows.append(
            f"<tr><td>{esc(c['label'])}{note}</td><td class=\"num\">{esc(fmt_value(c['threshold'], c['unit']))}</td>"
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


def render_html(runs: Sequence[Run], *, title: str | None = None, generated_at: str | None = None) -> str:
    """The whole page as one string. Imports plotly (the ``report`` extra)."""
    import plotly
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    if not runs:
        raise ValueError("no runs to report")
    labels = _run_labels(runs)
    generated_at = generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = title or ("bench report: " + labels[0] if len(runs) == 1 else f"bench report: {len(runs)} runs")
    charts: list[dict[str, Any]] = [{"id": "chart-distribution", "figure": distribution_chart(go, runs)}]
    sections = []
    for index, (run, label) in enumerate(zip(runs, labels), start=1):
        d = run.data
        charts.append({"id": f"chart-{index}-latency", "figure": latency_over_time(go, run)})
        charts.append({"id": f"chart-{index}-throughput", "figure": throughput_over_time(go, run)})
        verdict, cls = _verdict(d)
        status_cls = "status-ok" if d["status"] == "completed" else "status-bad"
        profile_json = json.dumps(_redacted_profile(d.get("profile")), indent=2, ensure_ascii=False, allow_nan=False)
        sections.append(
            f'<section class="run" id="run-{index}">'
            f'<h2><span style="color:{RUN_COLORS[(index - 1) % len(RUN_COLORS)]}">&#9632;</span> <span class="run-name">{esc(label)}</span>'
            f'<span class="badge {cls}">{esc(verdict)}</span><span class="badge {status_cls}">{esc(d["status"])}</span></h2>'
            f'<p class="sub">{esc(run.path.name)}</p>'
            f"{_facts(run)}"
            f"<h3>SLA</h3>{_sla_table(run)}"
            f'<h3>Latency per second (p50 / p95 / p99; dashed: latency SLA thresholds)</h3><div class="chart" id="chart-{index}-latency"></div>'
            f'<h3>Throughput and errors per second</h3><div class="chart" id="chart-{index}-throughput"></div>'
            '<p class="sub">Seconds count from the start of the run, warm-up included; only measured seconds are shown, and the first and last may be partial.</p>'
            f"<details><summary>Resolved profile</summary><pre>{esc(profile_json)}</pre></details>"
            "</section>"
        )
    payload = safe_json({"config": PLOTLY_CONFIG, "charts": charts})
    trap_js = _inline_script(TRAP_JS)
    main_js = _inline_script(MAIN_JS)
    plotly_js = _inline_script(get_plotlyjs())
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(trap_js)} {_csp_hash(plotly_js)} {_csp_hash(main_js)}; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    plural = "run" if len(runs) == 1 else "runs"
    nav = "".join(f'<a href="#run-{i}">{esc(label)}</a>' for i, label in enumerate(labels, start=1))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="bench {esc(_bench_version())}, plotly {esc(plotly.__version__)}">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
        f'<body data-charts-expected="{len(charts)}">'
        f'<pre id="bench-errors"></pre><script>{trap_js}</script>\n'
        "<main>"
        f"<header><h1>{esc(title)}</h1>"
        f'<p class="sub">{len(runs)} {plural}; generated {esc(generated_at)} by bench {esc(_bench_version())}. '
        "Self-contained: opens offline, nothing is fetched.</p><nav>" + nav + "</nav></header>"
        '<section id="overview"><h2>Overview</h2>'
        f"{_overview(runs, labels)}"
        "<h3>Latency percentile distribution (HdrHistogram, from the stored histograms)</h3>"
        '<p class="sub">x: percentile on a 1/(1&minus;p) log scale, so the tail gets the room; y: latency. One curve per run; '
        "crosses mark percentile SLA thresholds. Open-loop runs also have a service-time curve (click its legend entry).</p>"
        '<div class="chart" id="chart-distribution"></div></section>'
        + "".join(sections)
        + "</main>\n"
        f'<script type="application/json" id="bench-charts">{payload}</script>\n'
        f"<script>{plotly_js}</script>\n"
        f"<script>{main_js}</script>\n"
        "</body></html>\n"
    )


def _bench_version() -> str:
    import bench

    return bench.__version__


def build(paths: Sequence[Path], *, title: str | None = None) -> tuple[str, int]:
    """Load every report (ReportInputError on the first bad one) and render the page; returns (html, number of runs)."""
    runs = load_runs(paths)
    return render_html(runs, title=title), len(runs)
