"""Steps and turns in the HTML report and in `bench compare`, from real runs of the shipped profiles.

The shipped ``profiles/session.yaml`` (twice) and ``profiles/chat-multiturn.yaml``
(once as shipped, once with the mock's prefix cache off) run once for the
module with small overrides. The page gets a Steps section (a bar per run
and step, the steps' own SLA thresholds, the session counts, a table by
step) and a Turns section (TTFT p50/p95 by turn, runs overlaid, a table by
turn); a step's SLA criterion is named by its step and drawn only on the
step chart; a hostile step name is text. `bench compare` has a row per
turn metric and gates on one. One forced page of every run opens in
headless Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.cli import html_report
from bench.cli.html_report import load_run
from bench.engine.results.compare import metric_info, parse_bounds, run_from_report
from test_html_report import XSS_NAME, bench_cli, open_in_chromium, svg_of

pytestmark = pytest.mark.slow

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
STEPS = ["login", "profile", "cart", "add", "add-again"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """session-a, session-b: 10 sessions each; cached, uncached: 6 conversations of 4 turns, with and without the prefix cache."""
    folder = tmp_path_factory.mktemp("steps")
    uncached = folder / "no-cache.yaml"
    text = (PROFILES / "chat-multiturn.yaml").read_text()
    assert "prefix_cache: {per_token: 1ms}" in text
    uncached.write_text(text.replace("prefix_cache: {per_token: 1ms}", "prefix_cache: {per_token: 1ms, enabled: false}").replace("name: chat-multiturn", "name: no-cache"))
    runs = {
        "session-a": (PROFILES / "session.yaml", "10", []),
        "session-b": (PROFILES / "session.yaml", "10", []),
        "cached": (PROFILES / "chat-multiturn.yaml", "6", []),
        "uncached": (uncached, "6", ["--sla", "ttft.p95=5s,error_rate=0.5%"]),  # the growing history takes TTFT past the profile's 400 ms
    }
    paths = {}
    for stem, (profile, requests, extra) in runs.items():
        out = folder / f"{stem}.json"
        result = bench_cli("run", str(profile), "--requests", requests, "--workers", "1", "--json", str(out), "-q", *extra, cwd=folder)
        assert result.returncode == 0, result.stdout + result.stderr
        paths[stem] = out
    return paths


def page_of(tmp_path: Path, *reports: Path, force: bool = False) -> str:
    page = tmp_path / "r.html"
    result = bench_cli("report", *map(str, reports), "-o", str(page), *(["--force"] if force else []), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return page.read_text()


def test_steps_section_has_the_chart_tables_and_session_counts(reports: dict[str, Path], tmp_path: Path) -> None:
    page = page_of(tmp_path, reports["session-a"], reports["session-b"])
    assert '<a href="#steps">Steps</a>' in page and 'id="turns"' not in page
    section = page[page.index('<section id="steps">') : page.index("</section>", page.index('<section id="steps">'))]
    chart = svg_of(page, "chart-steps")
    # One bar per run and step for each percentile, each named by its step on hover.
    for p in ("p50", "p95", "p99"):
        assert chart.count(f'class="bar {p}"') == 2 * len(STEPS), p
    for name in STEPS:
        assert f"step {name} p95 " in chart and f">{name}</text>" in chart
        assert section.count(f"<tr><td>{name}</td>") == 2  # a row in each run's table
    # The profile's step criteria (login p95 150 ms, add p99 250 ms) are crosses on this chart, per run ...
    assert chart.count("SLA login p95 150.00 ms: PASS") == 2 and chart.count("SLA add p99 250.00 ms: PASS") == 2
    # ... and not thresholds of the whole run's latency: its only latency criterion is p95 200 ms.
    latency = svg_of(page, "chart-1-latency")
    assert latency.count('class="threshold"') == 1 and "200.00 ms" in latency and "150.00 ms" not in latency
    assert "150.00 ms" not in svg_of(page, "chart-distribution")
    # Session counts, from the report.
    data = json.loads(reports["session-a"].read_text())
    sessions = data["sessions"]
    assert sessions["started"] == 10 and f"10 started, {sessions['completed']} completed, {sessions['failed']} failed" in section
    assert "skipped steps" in section and "sessions per second" in section and "session duration" in section
    # What the run sent: each step's method and path.
    assert "POST /flow/login on the bundled mock server (step login)" in page and "GET {{home}} on the bundled mock server (step profile)" in page
    # The SLA table names the step a criterion judges.
    assert 'step <a href="#steps">login</a>: p95 &lt;=' in page and 'step <a href="#steps">add</a>: p99 &lt;=' in page
    assert page.count('data-charts="10"') == 1  # the distribution, the steps, 4 per run


def test_a_hostile_step_name_is_text(reports: dict[str, Path], tmp_path: Path) -> None:
    data = json.loads(reports["session-a"].read_text())
    data["steps"] = {(XSS_NAME if k == "login" else k): v for k, v in data["steps"].items()}
    data["histograms"][f"step:{XSS_NAME}"] = data["histograms"].pop("step:login")
    for check in data["sla"]["checks"]:
        if check.get("step") == "login":
            check["step"], check["label"] = XSS_NAME, f"{XSS_NAME} p95 <="
    data["sessions"]["failures"] = {XSS_NAME: 1}
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    page = html_report.render_html([load_run(path)])
    assert XSS_NAME not in page and "<script" not in page.lower()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<tr><td>{escaped}</td>" in page  # the step table
    assert f"step {escaped} p95 " in svg_of(page, "chart-steps")  # a bar's hover text
    assert f'step <a href="#steps">{escaped}</a>: p95 &lt;=' in page  # the SLA table
    assert f"({escaped}: 1)" in page  # failures by kind


def test_turns_section_overlays_ttft_by_turn(reports: dict[str, Path], tmp_path: Path) -> None:
    page = page_of(tmp_path, reports["cached"], reports["uncached"])
    assert '<a href="#turns">Turns</a>' in page and 'id="steps"' not in page
    chart = svg_of(page, "chart-turns")
    assert chart.count('class="line"') == 4  # TTFT p50 and p95 of each run
    for run in ("chat-multiturn", "no-cache"):
        for p in ("p50", "p95"):
            turns = [int(n) for n in re.findall(rf"<title>turn (\d+): {run} TTFT {p} ", chart)]
            assert turns == [1, 2, 3, 4], (run, p, turns)
    for n in range(1, 5):
        assert f">{n}</text>" in chart
    section = page[page.index('<section id="turns">') :]
    assert section.count('<tr><td class="num">1</td>') == 2  # turn 1 in each run's table
    assert "TTFT p50" in section and "input tokens / request" in section and "conversations per second" in section
    # The table's first row: TTFT p50 of turn 1 and input tokens per request, from the report.
    turn = json.loads(reports["uncached"].read_text())["turns"]["1"]
    row = f'<tr><td class="num">1</td><td class="num">6</td><td class="num">0</td><td class="num">{html_report.fmt_ms(turn["ttft"]["p50"])}</td>'
    assert row in section and f'<td class="num">{turn["input_tokens"] / 6:,.0f}</td>' in section


def test_compare_has_turn_rows_and_gates_on_them(reports: dict[str, Path], tmp_path: Path) -> None:
    cached, uncached = str(reports["cached"]), str(reports["uncached"])
    result = bench_cli("compare", cached, uncached, "--fail-on-regression", "turns.1.ttft.p95=1000%,turns.2.error_rate=1pp", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for metric in ("turns.1.ttft.p50", "turns.4.ttft.p95", "turns.3.p95", "turns.2.error_rate"):
        assert metric in result.stdout
    # Without the prefix cache turn 4 pays for its whole history: its TTFT p50 is far above the cached run's.
    worse = bench_cli("compare", cached, uncached, "--fail-on-regression", "turns.4.ttft.p50=50%", cwd=tmp_path)
    assert worse.returncode == 1 and "turns.4.ttft.p50 regressed beyond turns.4.ttft.p50=50% in" in worse.stderr, worse.stderr
    missing = bench_cli("compare", cached, uncached, "--fail-on-regression", "turns.9.ttft.p50=10%", cwd=tmp_path)
    assert missing.returncode == 1 and "turns.9.ttft.p50: cannot judge" in missing.stderr


def test_turn_metrics_come_from_their_histograms_or_the_summary(reports: dict[str, Path]) -> None:
    data = json.loads(reports["uncached"].read_text())
    assert {"turn:1", "turn:1:ttft", "turn:4", "turn:4:ttft"} <= set(data["histograms"])
    values = run_from_report(data, "r").values
    assert values["turns.2.ttft.p95"] == data["turns"]["2"]["ttft"]["p95"] and values["turns.3.p50"] == data["turns"]["3"]["latency"]["p50"]
    older = {**data, "histograms": {k: v for k, v in data["histograms"].items() if not k.startswith("turn:")}}
    assert {k: v for k, v in run_from_report(older, "r").values.items() if k.startswith("turns.")} == {k: v for k, v in values.items() if k.startswith("turns.")}
    assert metric_info("turns.2.ttft.p95") == ("ms", True) and metric_info("turns.2.error_rate") == ("ratio", True)
    assert metric_info("turns.x.p95") is None and metric_info("turns.2.tpot.p50") is None
    bounds = parse_bounds("turns.2.ttft.p95=20ms,turns.2.error_rate=0.5pp,steps.add-again.p95=10%")
    assert [(b.metric, b.kind) for b in bounds] == [("turns.2.ttft.p95", "abs"), ("turns.2.error_rate", "pp"), ("steps.add-again.p95", "%")]


def test_a_page_with_steps_and_turns_renders_in_headless_chromium(reports: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "all.html"
    result = bench_cli("report", *(str(reports[k]) for k in ("session-a", "cached", "uncached")), "-o", str(page), "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    dom, log, shot = open_in_chromium(page, tmp_path, 2400)
    steps = dom.split('id="chart-steps"', 1)[1].split("</svg>", 1)[0]
    assert len(re.findall(r'<rect class="bar p50" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+"', steps)) == len(STEPS)
    turns = dom.split('id="chart-turns"', 1)[1].split("</svg>", 1)[0]
    assert len(re.findall(r'class="line" d="M[\d.]+,[\d.]+L[\d.]', turns)) == 4
    assert "Refused to" not in log and "Content Security Policy" not in log, log[-2000:]
    assert "<script" not in dom and shot.stat().st_size > 150_000
