"""Outputs for other tools: HdrHistogram interval log, per-second CSV, JUnit XML, Markdown summary.

Each is a plain function of the run's data (or, for the interval log, a
writer fed one closed second at a time, so the log streams to disk and memory
stays flat). They only format; the numbers come from the aggregator and gate.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

from hdrh.histogram import HdrHistogram

HLOG_VERSION = "1.3"
SERIES_COLUMNS = ("second", "sent", "completed", "ok", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms")


class HlogWriter:
    """Writes the HdrHistogram interval log (``.hlog``), one line per second of the measured phase.

    The format is HdrHistogram's standard one (read by HistogramLogReader,
    HistogramLogAnalyzer, hdr-plot): a version and start-time header, a legend,
    then ``start_s,length_s,max,payload`` with times relative to the start time,
    the max in milliseconds and the payload the base64 compressed histogram
    (values in microseconds).
    """

    def __init__(self, path: Path, start_epoch_s: float):
        self.path = path
        self.file: TextIO = open(path, "w", encoding="ascii")
        when = dt.datetime.fromtimestamp(start_epoch_s, dt.timezone.utc).isoformat()
        self.file.write(f"#[Histogram log format version {HLOG_VERSION}]\n")
        self.file.write(f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch), {when}]\n")
        self.file.write("#[values in microseconds; Interval_Max in milliseconds]\n")
        self.file.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
        self.intervals = 0

    def add(self, second: int, histogram: HdrHistogram) -> None:
        if self.file.closed or histogram.get_total_count() == 0:
            return
        payload = histogram.encode().decode("ascii")
        self.file.write(f"{float(second):.3f},1.000,{histogram.get_max_value() / 1000:.3f},{payload}\n")
        self.intervals += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


def write_series_csv(path: Path, series: Iterable[Mapping[str, Any]]) -> None:
    """The per-second series as CSV, one row per second of the measured phase."""
    with open(path, "w", newline="", encoding="ascii") as f:
        writer = csv.writer(f)
        writer.writerow(SERIES_COLUMNS)
        for point in series:
            writer.writerow(["" if point[c] is None else point[c] for c in SERIES_COLUMNS])


def _number(value: Any) -> str:
    if value is None:
        return "none"
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "infinite"
    return f"{value:g}" if isinstance(value, float) else str(value)


def junit_xml(report: Mapping[str, Any]) -> str:
    """The SLA verdict as JUnit XML: one test case per criterion, a failure element for each that failed.

    CI systems (GitLab, Jenkins, GitHub test reporters) show these as tests.
    A run that ended early (aborted, interrupted, crashed, unmeasurable) adds
    a failing ``run completed`` case, so the suite cannot look green.
    """
    from xml.sax.saxutils import escape, quoteattr  # here, not at import: it pulls in urllib and email
    name = str(report.get("name", "bench"))
    checks = report.get("sla", {}).get("checks", [])
    cases = []
    for check in checks:
        label = check.get("label") or f"{check['criterion']} {check['op']}"
        title = f"{label} {_number(check['threshold'])} {check.get('unit', '')}".strip()
        body = ""
        if not check["passed"]:
            message = f"measured {_number(check['measured'])} {check.get('unit', '')}: {check.get('status', 'fail')}"
            if check.get("note"):
                message += f" ({check['note']})"
            body = f"<failure message={quoteattr(message)} type={quoteattr(check.get('status', 'fail'))}>{escape(message)}</failure>"
        cases.append(f'    <testcase classname={quoteattr("bench." + name)} name={quoteattr(title)} time="0">{body}</testcase>')
    status = report.get("status", "completed")
    if status != "completed":
        message = "; ".join(report.get("messages", [])) or status
        cases.append(
            f'    <testcase classname={quoteattr("bench." + name)} name="run completed" time="0">'
            f"<failure message={quoteattr(status)} type={quoteattr(status)}>{escape(message)}</failure></testcase>"
        )
    failures = sum("<failure" in c for c in cases)
    duration = report.get("duration_s") or 0.0
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<testsuites>\n  <testsuite name={quoteattr('bench ' + name)} tests=\"{len(cases)}\" failures=\"{failures}\" "
        f'errors="0" time="{duration:.3f}">\n' + "\n".join(cases) + "\n  </testsuite>\n</testsuites>\n"
    )


def markdown_summary(report: Mapping[str, Any]) -> str:
    """A short Markdown summary of a run, for ``$GITHUB_STEP_SUMMARY``."""

    def ms(value: Any) -> str:
        if value is None:
            return "-"
        if value == "inf" or (isinstance(value, float) and math.isinf(value)):
            return "∞"
        return f"{value:.2f} ms"

    latency = report.get("latency", {})
    requests = report.get("requests", {})
    passed = report.get("sla", {}).get("passed")
    verdict = "✅ SLA met" if passed else "❌ SLA not met"
    if report.get("status") not in (None, "completed"):
        verdict += f" (run {report['status']})"
    rps = report.get("rps")
    error_rate = report.get("error_rate")
    lines = [
        f"### bench: {_md(str(report.get('name', '')))} — {verdict}",
        "",
        f"{requests.get('sent', 0)} requests, {_number(round(rps, 1)) if rps else '-'} req/s, "
        f"error rate {'-' if error_rate is None else f'{error_rate * 100:.2f} %'}, {report.get('load_model', '')} loop",
        "",
        "| p50 | p90 | p95 | p99 | p99.9 | max |",
        "|---|---|---|---|---|---|",
        "| " + " | ".join(ms(latency.get(k)) for k in ("p50", "p90", "p95", "p99", "p99.9", "max")) + " |",
    ]
    checks = report.get("sla", {}).get("checks", [])
    if checks:
        lines += ["", "| criterion | threshold | measured | result |", "|---|---|---|---|"]
        for c in checks:
            unit = c.get("unit", "")
            label = _md(c.get("label") or c["criterion"])
            result = "PASS" if c["passed"] else c.get("status", "fail").upper()
            lines.append(f"| {label} | {_number(c['threshold'])} {unit} | {_number(c['measured'])} {unit} | {result} |")
    if report.get("trusted") is False:
        lines += ["", "⚠️ results may not be trustworthy: " + _md("; ".join(report.get("trust", {}).get("reasons", [])))]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Keep profile-supplied text from breaking the Markdown table or injecting HTML."""
    from xml.sax.saxutils import escape
    return escape(text).replace("|", "\\|").replace("\n", " ")
