"""`bench report`: the self-contained HTML page.

Unit tests: escaping (JSON in a script element, HTML text, plotly labels), the
percentile-distribution data of a known histogram, the page's structure (no
external resource, scripts allowed by hash), and bad inputs through the real
command (`python -m bench report`, exit 2, one line, no traceback).

Slow tests: two real runs against the bundled mock (one closed loop named
``<script>alert(1)</script>``, one open loop), rendered and opened in headless
Chromium: every chart drawn, no script error, no blocked fetch, the injected
name shown as text, and a screenshot that is not a blank page. Skipped with
the reason when no Chromium is installed (Debian: apt-get install chromium).
Wall time: about 20 s on 2 cores, most of it the two runs and one Chromium start.
"""

from __future__ import annotations

import base64
import hashlib
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
from bench.cli.html_report import ReportInputError, load_run, percentile_distribution, percentile_ticks, safe_json

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


def test_safe_json_cannot_end_a_script_element_and_round_trips() -> None:
    value = {"name": "</script><script>alert(1)</script>", "c": "<!-- x --> & \u2028\u2029 é", "n": [1, 2.5, None]}
    text = safe_json(value)
    for raw in ("<", ">", "&", "\u2028", "\u2029", "é"):
        assert raw not in text
    assert "\\u003c/script\\u003e" in text and "\\u003c!--" in text and "\\u2028" in text
    assert json.loads(text) == value
    with pytest.raises(ValueError):
        safe_json({"x": float("nan")})


def test_html_and_plotly_text_escaping() -> None:
    assert html_report.esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    # plotly reads <b>, <a href=...> and entities in labels: escaped, it shows them as text.
    assert html_report.plotly_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"


def test_inline_script_text_cannot_close_its_element() -> None:
    js = 'var a = "</SCRIPT><!--";\r\n'
    out = html_report._inline_script(js)
    assert "</script" not in out.lower() and "<!--" not in out and "\r" not in out


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
    pytest.importorskip("plotly", reason="the report extra: pip install 'bench-loadtest[report]'")
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


def test_page_scripts_are_exactly_the_hashed_ones(page: str) -> None:
    parsed = PageParser()
    parsed.feed(page)
    kinds = [attrs.get("type") for attrs, _ in parsed.scripts]
    assert kinds == [None, "application/json", None, None]  # error trap, chart data, plotly.js (once), drawing code
    assert page.count("* plotly.js v") == 1 and sum(len(text) > 1_000_000 for _, text in parsed.scripts) == 1  # plotly.js, once
    csp = next(attrs["content"] for tag, attrs in parsed.tags if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    for attrs, text in parsed.scripts:
        if attrs.get("type") is None:
            digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in csp
    data = json.loads(parsed.scripts[1][1])
    ids = [c["id"] for c in data["charts"]]
    assert ids == ["chart-distribution", "chart-1-latency", "chart-1-throughput", "chart-2-latency", "chart-2-throughput"]
    assert f'data-charts-expected="{len(ids)}"' in page
    for chart_id in ids:
        assert f'id="{chart_id}"' in page
    # Labels handed to plotly are escaped for its pseudo-HTML as well.
    names = [t.get("name") for t in data["charts"][0]["figure"]["data"]]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in names and "open" in names and "open (service time)" in names
    # The latency chart has a threshold line per request-latency criterion (p95 40 ms, p99 80 ms; not ttft.p95).
    shapes = data["charts"][1]["figure"]["layout"]["shapes"]
    assert sorted(s["y0"] for s in shapes) == [40.0, 80.0]


def test_an_unmeasured_run_still_renders(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    empty = {"unit": "us", "latency": "", "service": "", "schedule_lag": ""}
    report = fake_report("nothing", status="unmeasurable", series=[], histograms=empty, latency={"count": 0, "p50": None, "max": None})
    page = html_report.render_html([load_run(write(tmp_path / "r.json", report))])
    assert "no latency was measured" in page and "no measured seconds" in page


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


def test_without_plotly_the_command_says_what_to_install(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", fake_report())
    code = (
        "import sys; sys.modules['plotly'] = None\n"  # makes `import plotly` raise ImportError
        "from bench.cli.app import main\n"
        f"sys.argv = ['bench', 'report', {str(good)!r}, '-o', {str(tmp_path / 'r.html')!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2, result.stderr
    assert "pip install 'bench-loadtest[report]'" in result.stderr and "Traceback" not in result.stderr


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


@pytest.mark.slow
def test_real_reports_render_in_headless_chromium(real_reports: list[Path], tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium to open the page in (Debian: apt-get install chromium)")
    page = tmp_path / "report.html"
    result = bench_cli("report", *map(str, real_reports), "-o", str(page), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote" in result.stdout and page.stat().st_size > 1_000_000  # plotly.js inlined
    assert page.read_text().count("Plotly") > 0 and page.read_text().count("<script") == 4

    shot = tmp_path / "shot.png"
    browser = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--window-size=1400,3000",
            f"--screenshot={shot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    dom = browser.stdout
    assert browser.returncode == 0 and "</html>" in dom, browser.stderr[-2000:]
    # All five charts drawn (the comparison, then latency and throughput of each run) ...
    assert 'data-charts-ready="5"' in dom, "the charts did not all finish drawing"
    for chart_id in ("chart-distribution", "chart-1-latency", "chart-1-throughput", "chart-2-latency", "chart-2-throughput"):
        chart = dom.split(f'id="{chart_id}"', 1)[1].split('class="chart"', 1)[0]
        assert 'class="main-svg"' in chart, chart_id
        assert re.search(r'class="js-line" d="M[\d.]+,[\d.]+[LHV][\d.]', chart), f"{chart_id}: no data line drawn"
    # ... with no script error, no blocked fetch and no dialog: the trap box stayed empty.
    errors = re.search(r'<pre id="bench-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert errors is not None and errors.group(1) == "", errors and errors.group(1)
    # The injected name is text (in the heading and in plotly's legend), never an element.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert XSS_NAME not in dom and "alert(3)</script>" not in dom
    assert dom.count("<script") == 4

    width, height = png_size(shot)
    assert (width, height) == (1400, 3000)
    # A blank page of this size is ~20 kB; charts, tables and text make it many times that.
    assert shot.stat().st_size > 150_000, shot.stat().st_size
