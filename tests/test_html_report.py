"""`bench report`: the self-contained HTML page.

Unit tests: escaping, the percentile-distribution data of a known histogram,
the page's structure (no script, no external resource), the charts' content
(the partial last second left out, a far SLA threshold named at the edge
instead of stretching the axis, the warm-up shaded, the target line, the
inference section, the method and URL), and bad or not comparable inputs
through the real command (`python -m bench report`, exit 2, one line, no
traceback).

Slow tests: two real runs against the bundled mock (one closed loop named
``<script>alert(1)</script>``, one open loop), overlaid with --force, and a
streamed inference run written by `bench run --html`, opened in headless
Chromium: every chart drawn, nothing refused by the page's security policy,
the injected name shown as text, the partial last second not plotted, and a
screenshot that is not a blank page. Skipped with the reason when no Chromium
is installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from hdrh.histogram import HdrHistogram

from bench.cli import html_report
from bench.cli.html_report import ReportInputError, load_run, percentile_distribution, percentile_ticks

XSS_NAME = "<script>alert(1)</script>"
XSS_HEADER = "</script><script>alert(3)</script>"
XSS_MESSAGE = "<img src=x onerror=alert(2)> & <!-- \u2028"


def bench_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"}
    )


def histogram_of(values_us: list[int]) -> HdrHistogram:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    for value in values_us:
        histogram.record_value(value)
    return histogram


def fake_report(name: str = "demo", *, values_us: list[int] | None = None, **changes) -> dict:
    """A small report with the shape `bench run --json` writes (schema 1)."""
    histogram = histogram_of(values_us if values_us is not None else list(range(1000, 51000, 50)))
    encoded = histogram.encode().decode("ascii")
    report = {
        "schema_version": 1,
        "bench_version": "0.1.0",
        "name": name,
        "profile_path": "profiles/demo.yaml",
        "profile": {"name": name, "target": {"url": None, "method": "GET", "headers": {"Authorization": "Bearer s3cret", "X-Trace": XSS_HEADER}}},
        "target_url": "http://127.0.0.1:9/",
        "started_at": "2026-01-02T03:04:05+00:00",
        "ended_at": "2026-01-02T03:04:08+00:00",
        "status": "completed",
        "complete": True,
        "messages": [XSS_MESSAGE],
        "load_model": "closed",
        "latency_meaning": "service time: from the actual send to the last response byte (closed loop)",
        "requests": {"sent": 1000, "completed": 1000, "ok": 990, "http_errors": 10, "client_errors": 0, "unfinished": 0},
        "error_rate": 0.01,
        "duration_s": 3.0,
        "rps": 333.3,
        "latency": {"count": histogram.get_total_count(), "p50": 26.0, "p90": 46.0, "p95": 48.5, "p99": 50.5, "p99.9": 51.0, "max": 51.0},
        "trust": {"trusted": True, "reasons": []},
        "series": [
            {"second": s, "sent": 333, "completed": 330, "ok": 327, "errors": 3, "p50_ms": 25.0 + s, "p95_ms": 48.0, "p99_ms": 50.0, "max_ms": 51.0}
            for s in range(3)
        ],
        "histograms": {"unit": "us", "latency": encoded, "service": encoded, "schedule_lag": ""},
        "sla": {
            "passed": False,
            "checks": [
                {"criterion": "p95", "label": "p95 <=", "unit": "ms", "threshold": 40.0, "measured": 48.5, "status": "fail", "window_s": None, "note": ""},
                {"criterion": "error_rate", "label": "error_rate <=", "unit": "ratio", "threshold": 0.05, "measured": 0.01, "status": "pass"},
                {"criterion": "p99", "label": "p99 <= <b>bold</b>", "unit": "ms", "threshold": 80.0, "measured": None, "status": "not measurable", "note": "no value"},
                {"criterion": "ttft.p95", "label": "ttft.p95 <=", "unit": "ms", "threshold": 500.0, "measured": 120.0, "status": "pass"},
            ],
        },
    }
    report.update(changes)
    return report


def write(path: Path, report: dict) -> Path:
    path.write_text(json.dumps(report))
    return path


# --------------------------------------------------------------------------- escaping


def test_html_escaping() -> None:
    assert html_report.esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"


# --------------------------------------------------------------------------- percentile distribution


def test_percentile_distribution_of_a_known_histogram() -> None:
    values = list(range(1, 10_001))  # 1 us .. 10 ms, one each: the value at percentile p is p * 100 us
    histogram = histogram_of(values)
    points = percentile_distribution(histogram)
    levels = [p[0] for p in points]
    # HdrHistogram's own reporting levels (5 ticks per half distance): 0, 10, 19, 27.1, 34.39, ...
    assert levels[:5] == pytest.approx([0.0, 10.0, 19.0, 27.1, 34.39])
    assert all(b > a for a, b in zip(levels, levels[1:])) and levels[-1] < 100.0
    assert len(points) > 60  # up to 99.99 % for 10,000 values
    for level, x, value_ms in points:
        assert x == pytest.approx(1.0 / (1.0 - level / 100.0))
        # The histogram's value at that percentile (HdrHistogram's iterator rounds ranks up, so within a bucket) ...
        assert abs(value_ms * 1000 - histogram.get_value_at_percentile(level)) <= 0.001 * value_ms * 1000
        # ... which is the true quantile of 1..10000 us within HdrHistogram's 3 significant digits.
        true_us = max(1.0, level / 100 * 10_000)
        assert abs(value_ms * 1000 - true_us) <= 0.001 * true_us + 1, (level, value_ms)
    assert points[0][1] == 1.0 and points[0][2] == pytest.approx(0.001)
    assert points[-1][2] * 1000 == histogram.get_max_value()  # the curve ends at the maximum
    assert [p[2] for p in points] == sorted(p[2] for p in points)


def test_percentile_axis_labels() -> None:
    assert percentile_ticks(50) == ([1.0, 2.0, 10.0, 100.0], ["0%", "50%", "90%", "99%"])
    values, labels = percentile_ticks(1047)
    assert labels[-2:] == ["99.9%", "99.99%"] and values[-1] == 1e4


def test_percentile_distribution_of_an_empty_histogram() -> None:
    assert percentile_distribution(histogram_of([])) == []


# --------------------------------------------------------------------------- the page


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("page")
    runs = [
        load_run(write(folder / "a.json", fake_report(XSS_NAME))),
        load_run(write(folder / "b.json", fake_report("open", values_us=list(range(2000, 80000, 7)), load_model="open"))),
    ]
    return html_report.render_html(runs)


def test_page_shows_every_input_string_as_text(page: str) -> None:
    for raw in (XSS_NAME, XSS_HEADER, "<img src=x", "<b>bold</b>", "alert(1)</script>"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; &lt;!--" in page
    parsed = PageParser()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert XSS_NAME in text and "<img src=x onerror=alert(2)>" in text  # as text, not markup
    assert "s3cret" not in page and "(redacted)" in text  # credentials in headers are not shown
    # Only the page's own elements: no event-handler attribute and nothing loaded from anywhere.
    for tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "src" not in attrs, (tag, attrs)
        assert tag not in ("link", "iframe", "img", "object", "embed", "base"), tag
        if "href" in attrs:
            assert re.fullmatch(r"#run-\d+", attrs["href"] or ""), attrs


def test_an_unmeasured_run_still_renders(tmp_path: Path) -> None:
    empty = {"unit": "us", "latency": "", "service": "", "schedule_lag": ""}
    report = fake_report("nothing", status="unmeasurable", series=[], histograms=empty, latency={"count": 0, "p50": None, "max": None})
    page = html_report.render_html([load_run(write(tmp_path / "r.json", report))])
    assert "no latency was measured" in page and "no measured seconds" in page


def svg_of(page: str, chart_id: str) -> str:
    """The <svg> element of one chart."""
    start = page.index(f'id="{chart_id}"')
    return page[start : page.index("</svg>", start)]


def test_page_has_no_script_and_every_chart(page: str) -> None:
    parsed = PageParser()
    parsed.feed(page)
    assert parsed.scripts == [] and "<script" not in page.lower()
    csp = next(attrs["content"] for tag, attrs in parsed.tags if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp  # so no script may run, and nothing is fetched
    ids = [attrs["id"] for tag, attrs in parsed.tags if tag == "svg"]
    per_run = ("latency", "throughput", "outcomes", "inflight")
    assert ids == ["chart-distribution", *(f"chart-{i}-{c}" for i in (1, 2) for c in per_run)]
    assert page.count('data-charts="9"') == 1
    assert len(page.encode()) < 200_000
    # The injected name is escaped in the distribution chart's legend and point titles too.
    distribution = svg_of(page, "chart-distribution")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in distribution and "open (service time)" in distribution
    # The latency chart: a threshold line per request-latency criterion (p95 40 ms, p99 80 ms; not ttft.p95) ...
    latency = svg_of(page, "chart-1-latency")
    assert latency.count('class="threshold"') == 2 and "SLA p95 40.00 ms: FAIL" in latency and "ttft" not in latency
    # ... and both fit (data up to 50 ms), so nothing is named at the top edge.
    assert "threshold-above" not in latency


def points_of(svg: str, series: str) -> list[int]:
    """The seconds a line has a point at (from the points' hover titles)."""
    return [int(n) for n in re.findall(rf"<title>second (\d+): {re.escape(series)} ", svg)]


def test_partial_last_second_is_not_plotted(tmp_path: Path) -> None:
    series = [
        {"second": s, "sent": 100, "completed": 100, "ok": 100, "errors": 0, "p50_ms": 20.0, "p95_ms": 30.0, "p99_ms": 40.0, "max_ms": 41.0}
        for s in range(4)
    ]
    series[-1].update(sent=0, completed=9)
    ended_inside = load_run(write(tmp_path / "a.json", fake_report(series=series, series_end_s=3.3)))
    page = html_report.render_html([ended_inside])
    assert points_of(svg_of(page, "chart-1-throughput"), "completed/s") == [0, 1, 2]
    assert points_of(svg_of(page, "chart-1-latency"), "latency p95") == [0, 1, 2]
    assert "Second 3 is partial (0.30 s long) and is not plotted: its 9 completed and 0 sent requests count in the totals." in page
    # A run that ended at the end of its last second keeps it; an older report without series_end_s drops the last.
    whole = html_report.render_html([load_run(write(tmp_path / "b.json", fake_report(series=series, series_end_s=3.98)))])
    assert points_of(svg_of(whole, "chart-1-throughput"), "completed/s") == [0, 1, 2, 3] and "is partial" not in whole
    old = html_report.render_html([load_run(write(tmp_path / "c.json", fake_report(series=series)))])
    assert points_of(svg_of(old, "chart-1-throughput"), "completed/s") == [0, 1, 2] and "the run ended inside it" in old


def test_a_far_threshold_does_not_stretch_the_axis(tmp_path: Path) -> None:
    report = fake_report()
    far = {"criterion": "p95", "label": "p95 <=", "unit": "ms", "threshold": 800.0, "measured": 48.5, "status": "pass"}
    report["sla"] = {"passed": True, "checks": [far]}
    page = html_report.render_html([load_run(write(tmp_path / "r.json", report))])
    latency = svg_of(page, "chart-1-latency")
    ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="end" font-size="11" fill="#5b6472">([\d.,]+)</text>', latency)]
    assert ticks and max(ticks) <= 60, ticks  # the data's 50 ms, not 800 ms
    assert 'class="threshold"' not in latency
    assert re.search(r'class="threshold-above"[^>]*>SLA p95 800.00 ms: PASS &#8593;', latency)
    # On the distribution chart the SLA cross is named at its percentile, at the edge, too.
    assert "threshold-above" in svg_of(page, "chart-distribution")


def test_warmup_shade_target_rate_and_in_flight(tmp_path: Path) -> None:
    series = [
        {
            "second": s, "sent": 50 + 25 * s, "completed": 50 + 25 * s, "ok": 50 + 25 * s, "errors": 0, "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0,
            "max_ms": 13.0, "in_flight": 3 + s, "status_codes": {"200": 48 + 25 * s, "503": 2}, "error_kinds": {"timeout": 1},
        }
        for s in range(2, 6)
    ]  # fmt: skip
    load = {"rate_per_s": 50.0, "warmup_s": 2.0, "max_in_flight": 1000, "stages": [{"duration_s": 4.0, "target": 150.0}, {"duration_s": 2.0, "target": 150.0}]}
    profile = {"name": "ramp", "target": {"url": None, "method": "GET"}, "load": load}
    report = fake_report("ramp", load_model="open", series=series, series_end_s=6.0, profile=profile)
    page = html_report.render_html([load_run(write(tmp_path / "r.json", report))])
    throughput = svg_of(page, "chart-1-throughput")
    shade = re.search(r'<rect class="shade" x="([\d.]+)" y="\d+" width="([\d.]+)"', throughput)
    assert shade and "warm-up" in throughput
    x0, x1 = 70.0, 1160 - 20.0  # the plot area spans 0 .. 6 s
    assert float(shade.group(1)) == pytest.approx(x0) and float(shade.group(2)) == pytest.approx((x1 - x0) * 2 / 6, abs=0.2)
    target = re.search(r'<path class="line" d="([^"]+)"[^>]*stroke="#111827"[^>]*><title>target rate</title>', throughput)
    assert target, "no target rate line"
    corners = [tuple(map(float, xy.split(","))) for xy in re.split("[ML]", target.group(1)) if xy]
    assert [round((x - x0) / (x1 - x0) * 6, 2) for x, _ in corners] == [0.0, 4.0, 6.0]  # 50/s at 0, 150/s at 4 s, held to 6 s
    assert points_of(svg_of(page, "chart-1-inflight"), "in flight") == [2, 3, 4, 5]
    assert "in-flight cap 1,000" in svg_of(page, "chart-1-inflight") and "threshold-above" in svg_of(page, "chart-1-inflight")
    outcomes = svg_of(page, "chart-1-outcomes")
    assert points_of(outcomes, "HTTP 503") == [2, 3, 4, 5] and points_of(outcomes, "error: timeout") == [2, 3, 4, 5]
    assert "GET / on the bundled mock server" in page


def test_inference_section_and_endpoint(tmp_path: Path) -> None:
    ttft = histogram_of(list(range(100_000, 400_000, 997)))
    tpot = histogram_of(list(range(20_000, 25_000, 17)))
    series = [
        {
            "second": s, "sent": 8, "completed": 8, "ok": 8, "errors": 0, "p50_ms": 900.0, "p95_ms": 1200.0, "p99_ms": 1300.0, "max_ms": 1300.0,
            "output_tokens": 300 + s, "ttft_p50_ms": 200.0, "ttft_p95_ms": 350.0, "ttft_p99_ms": 390.0, "tpot_p50_ms": 22.0, "tpot_p95_ms": 24.0,
            "tpot_p99_ms": 24.5, "itl_p50_ms": None, "itl_p95_ms": None, "itl_p99_ms": None,
        }
        for s in range(3)
    ]  # fmt: skip
    kind = {"name": "default", "method": "POST", "path": None, "url": None, "api": "openai-chat", "stream": True}
    profile = {"name": "chat", "target": {"url": "https://llm.example/", "method": "GET"}, "request_kinds": [kind]}
    report = fake_report("chat", series=series, series_end_s=3.0, profile=profile, target_url="https://llm.example/")
    report["histograms"].update(ttft=ttft.encode().decode(), tpot=tpot.encode().decode())
    report["inference"] = {"ttft": {"count": ttft.get_total_count(), "p50": 250.0}, "output_tokens": 903, "output_tokens_per_s": 301.0}
    page = html_report.render_html([load_run(write(tmp_path / "r.json", report))])
    for chart_id in ("chart-distribution-ttft", "chart-distribution-tpot", "chart-1-ttft", "chart-1-tpot", "chart-1-itl", "chart-1-tokens"):
        assert f'id="{chart_id}"' in page, chart_id
    assert "chart-distribution-itl" not in page  # no ITL histogram in this report
    assert points_of(svg_of(page, "chart-1-tokens"), "output tokens/s") == [0, 1, 2]
    # The ttft.p95 criterion (500 ms) is drawn on the TTFT chart, and only there.
    assert "SLA ttft.p95 500.00 ms: PASS" in svg_of(page, "chart-1-ttft") and "ttft" not in svg_of(page, "chart-1-latency")
    assert "POST https://llm.example/v1/chat/completions (openai-chat, streamed)" in page



# --------------------------------------------------------------------------- bad inputs, through the command


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    good = fake_report()
    corrupt = dict(good, histograms={**good["histograms"], "latency": "HISTFAAAACh4nJNpmSzMwMDAxQABzFCaEUzOmQ" + "A" * 20})
    not_base64 = dict(good, histograms={**good["histograms"], "latency": "not a histogram!"})
    bad_series = dict(good, series=[{"second": 0, "sent": "many"}])
    cases = {
        "missing": (folder / "missing.json", "no such file"),
        "truncated": (folder / "truncated.json", "truncated JSON"),
        "binary": (folder / "binary.json", "not UTF-8"),
        "list": (folder / "list.json", "not a bench JSON report: the top level is a list"),
        "other-json": (folder / "other.json", "not a bench JSON report: no schema_version"),
        "future-schema": (folder / "future.json", "schema_version 99 is not supported"),
        "bad-series": (folder / "series.json", "series[0].sent is a string, expected a number"),
        "nan": (folder / "nan.json", "NaN is not valid JSON"),
        "corrupt-histogram": (folder / "corrupt.json", "histograms.latency is not a valid HdrHistogram encoding"),
        "not-base64-histogram": (folder / "nob64.json", "histograms.latency is not a valid HdrHistogram encoding"),
        "altered-count": (folder / "altered.json", "histograms.latency holds 1000 values but latency.count is 999"),
    }
    full = json.dumps(good)
    cases["truncated"][0].write_text(full[: len(full) // 2])
    cases["binary"][0].write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    cases["list"][0].write_text("[1, 2]")
    cases["other-json"][0].write_text('{"name": "x", "series": []}')
    write(cases["future-schema"][0], dict(good, schema_version=99))
    write(cases["bad-series"][0], bad_series)
    cases["nan"][0].write_text(full.replace('"rps": 333.3', '"rps": NaN'))
    write(cases["corrupt-histogram"][0], corrupt)
    write(cases["not-base64-histogram"][0], not_base64)
    write(cases["altered-count"][0], dict(good, latency={**good["latency"], "count": 999}))
    return cases


@pytest.mark.parametrize(
    "case",
    ["missing", "truncated", "binary", "list", "other-json", "future-schema", "bad-series", "nan", "corrupt-histogram", "not-base64-histogram", "altered-count"],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    path, expected = _bad_inputs(tmp_path)[case]
    with pytest.raises(ReportInputError) as caught:
        load_run(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_bad_inputs_exit_2_through_the_command(tmp_path: Path) -> None:
    cases = _bad_inputs(tmp_path)
    good = write(tmp_path / "good.json", fake_report())
    for case in ("missing", "truncated", "other-json", "corrupt-histogram"):
        path, expected = cases[case]
        result = bench_cli("report", str(good), str(path), "-o", str(tmp_path / "out.html"), cwd=tmp_path)
        assert result.returncode == 2, (case, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], (case, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out.html").exists()


def test_output_in_a_missing_directory_fails_before_reading_anything(tmp_path: Path) -> None:
    result = bench_cli("report", str(tmp_path / "not-there.json"), "-o", str(tmp_path / "no" / "dir" / "r.html"), cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "not-there.json" not in result.stderr and "Traceback" not in result.stderr
    result = bench_cli("report", str(tmp_path / "not-there.json"), "-o", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_runs_that_offered_different_load_are_refused_unless_forced(tmp_path: Path) -> None:
    closed = write(tmp_path / "closed.json", fake_report("a"))
    opened = write(tmp_path / "open.json", fake_report("b", load_model="open"))
    out = tmp_path / "out.html"
    result = bench_cli("report", str(closed), str(opened), "-o", str(out), cwd=tmp_path)
    assert result.returncode == 2 and not out.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not comparable" in lines[0] and "load model: 'closed' vs 'open'" in lines[0] and "--force" in lines[0], result.stderr
    # The same runs as bench compare sees them: refused there too.
    assert bench_cli("compare", str(closed), str(opened), cwd=tmp_path).returncode == 2
    forced = bench_cli("report", str(closed), str(opened), "-o", str(out), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    page = out.read_text()
    assert 'id="not-comparable"' in page and "load model: &#x27;closed&#x27; vs &#x27;open&#x27;" in page
    # Comparable runs need no flag and get no warning.
    again = write(tmp_path / "again.json", fake_report("a again"))
    assert bench_cli("report", str(closed), str(again), "-o", str(out), cwd=tmp_path).returncode == 0
    assert 'id="not-comparable"' not in out.read_text()



# --------------------------------------------------------------------------- real runs in a real browser


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def run_profile(folder: Path, stem: str, data: dict) -> Path:
    import bench

    out = folder / f"{stem}.json"
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    result = bench.run(bench.load_profile(path, {"json": str(out)}))
    assert result.status == "completed", result.messages
    return out


@pytest.fixture(scope="module")
def real_reports(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("runs")
    closed = {
        "name": XSS_NAME,
        "target": {"method": "POST", "headers": {"X-Trace": XSS_HEADER}, "body": {"prompt": "hi"}},
        "mock": {"latency": {"model": "lognormal", "median": "15ms", "p95": "45ms"}, "errors": {"rate": 0.02}, "seed": 5},
        "load": {"concurrency": 8, "duration": "2s", "workers": 1},
        "sla": {"p95": "60ms", "p99": "150ms", "error_rate": "5%"},
    }
    opened = {
        "name": "open loop",
        "mock": {"latency": {"model": "lognormal", "median": "10ms", "p95": "30ms"}, "seed": 6},
        "load": {"rate": "150/s", "arrival": "poisson", "duration": "2s", "workers": 1},
        "sla": {"p99": "100ms", "min_rps": 120},
    }
    return [run_profile(folder, "closed", closed), run_profile(folder, "open", opened)]


def open_in_chromium(page: Path, folder: Path, height: int) -> tuple[str, str, Path]:
    """(DOM after loading, browser log, screenshot) of a page in headless Chromium; skips when there is none."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium to open the page in (Debian: apt-get install chromium)")
    shot = folder / f"{page.stem}.png"
    browser = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            f"--user-data-dir={folder / 'profile'}",
            f"--window-size=1400,{height}",
            f"--screenshot={shot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert browser.returncode == 0 and "</html>" in browser.stdout, browser.stderr[-2000:]
    assert png_size(shot) == (1400, height)
    return browser.stdout, browser.stderr, shot


def assert_charts_drawn(dom: str, log: str, chart_ids: list[str]) -> None:
    for chart_id in chart_ids:
        svg = dom.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
        assert re.search(r'class="line" d="M[\d.]+,[\d.]+L[\d.]', svg), f"{chart_id}: no data line drawn"
    # Nothing refused by the page's security policy, nothing fetched, no script anywhere.
    assert "Refused to" not in log and "Content Security Policy" not in log, log[-2000:]
    assert "<script" not in dom


def last_second_hidden(report: dict, dom: str, chart_id: str, series: str, key: str = "p50_ms") -> None:
    """The latency chart has a point for every whole second and none for a partial last one."""
    svg = dom.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
    plotted = [int(n) for n in re.findall(rf"<title>second (\d+): {re.escape(series)} ", svg)]
    last = report["series"][-1]
    partial = report["series_end_s"] < last["second"] + html_report.FULL_SECOND
    whole = [p["second"] for p in report["series"][:-1] if p[key] is not None] + ([] if partial or last[key] is None else [last["second"]])
    assert plotted == whole, (plotted, whole, report["series_end_s"])
    assert (f"Second {last['second']} is partial" in dom) == partial


@pytest.mark.slow
def test_real_reports_render_in_headless_chromium(real_reports: list[Path], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    refused = bench_cli("report", *map(str, real_reports), "-o", str(page), cwd=tmp_path)
    assert refused.returncode == 2 and "not comparable" in refused.stderr and not page.exists()  # closed vs open loop
    result = bench_cli("report", *map(str, real_reports), "-o", str(page), "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote" in result.stdout and 20_000 < page.stat().st_size < 300_000

    dom, log, shot = open_in_chromium(page, tmp_path, 3000)
    ids = ["chart-distribution"] + [f"chart-{i}-{c}" for i in (1, 2) for c in ("latency", "throughput", "outcomes", "inflight")]
    assert_charts_drawn(dom, log, ids)
    assert 'id="not-comparable"' in dom
    # The injected name is text (in the heading and in the chart legend), never an element.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert XSS_NAME not in dom and "alert(3)</script>" not in dom
    for index, path in enumerate(real_reports, start=1):
        last_second_hidden(json.loads(path.read_text()), dom, f"chart-{index}-latency", "latency p50")
    # A blank page of this size is ~20 kB; charts, tables and text make it many times that.
    assert shot.stat().st_size > 150_000, shot.stat().st_size


@pytest.mark.slow
def test_bench_run_html_writes_the_inference_report(tmp_path: Path) -> None:
    profile = {
        "name": "chat",
        "target": {"api": "openai-chat", "model": "m", "stream": True, "timeout": "10s"},
        "data": {"synthetic": {"count": 8, "prompt_tokens": 8, "max_tokens": 16}},
        "mock": {"seed": 3, "openai": {"ttft": {"model": "fixed", "delay": "40ms"}, "inter_token": {"model": "fixed", "delay": "5ms"}, "output_tokens": {"min": 8, "max": 16}}},
        "load": {"concurrency": 4, "duration": "2s", "warmup": "500ms", "workers": 1},
        "sla": {"ttft.p95": "2s", "tpot.p95": "50ms"},
        "output": {"html": "from-profile.html"},
    }
    (tmp_path / "chat.yaml").write_text(yaml.safe_dump(profile))
    result = bench_cli("run", "chat.yaml", "--json", "chat.json", "--html", "chat.html", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    page = tmp_path / "chat.html"
    assert "wrote chat.html" in result.stdout and page.stat().st_size > 20_000
    assert not (tmp_path / "from-profile.html").exists()  # --html replaced output.html
    report = json.loads((tmp_path / "chat.json").read_text())
    text = page.read_text()
    assert "POST /v1/chat/completions on the bundled mock server (openai-chat, streamed)" in text
    dom, log, _ = open_in_chromium(page, tmp_path, 2400)
    ids = ["chart-distribution", "chart-distribution-ttft", "chart-distribution-tpot", "chart-distribution-itl"]
    ids += [f"chart-1-{c}" for c in ("latency", "throughput", "inflight", "ttft", "tpot", "itl", "tokens")]
    assert_charts_drawn(dom, log, ids)
    assert "warm-up" in dom.split('id="chart-1-ttft"', 1)[1].split("</svg>", 1)[0]
    last_second_hidden(report, dom, "chart-1-ttft", "TTFT p50", "ttft_p50_ms")
    # The profile's output.html is written when no flag says otherwise.
    again = bench_cli("run", "chat.yaml", "-q", cwd=tmp_path)
    assert again.returncode == 0 and "wrote from-profile.html" in again.stdout and (tmp_path / "from-profile.html").stat().st_size > 20_000
