"""A capacity search's report read back: `bench report` draws it, and its probes are runs for `bench report` and `bench compare`.

One real search (`bench search --json`, about 3 s) against the bundled
mock's OpenAI endpoint with 2 generation slots, so that one and two users
are answered at once and three or four wait for a slot: a probe that passes
and one that fails. The page's latency-throughput curve has a point per
percentile for every judged probe, filled by its outcome, the SLA threshold
and the capacity marked; ``search.json#N`` is probe N wherever a run report
goes; a bare search report, ``#0``, ``#99``, ``#x`` and ``#N`` on a run
report are refused with one line and exit 2. The page opens in headless
Chromium with nothing refused (skipped without Chromium).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from bench.cli import html_report
from bench.engine.results.compare import CompareError, load_run
from test_html_report import XSS_MESSAGE, XSS_NAME, assert_charts_drawn, bench_cli, open_in_chromium, svg_of

PROFILE = {
    "name": "slots",
    "target": {"api": "openai-chat", "model": "m", "stream": False},
    "mock": {"openai": {"ttft": {"model": "fixed", "delay": "10ms"}, "inter_token": {"model": "fixed", "delay": "2ms"}, "output_tokens": {"min": 4, "max": 4}, "slots": 2}},
    "load": {"concurrency": 1, "requests": 40},
    "sla": {"p95": "27ms"},
}


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(the search report's path, its data, a plain run report: the first probe's, on its own)."""
    folder = tmp_path_factory.mktemp("search")
    (folder / "slots.yaml").write_text(yaml.safe_dump(PROFILE, sort_keys=False))
    done = bench_cli("search", "slots.yaml", "--over", "concurrency", "--max", "4", "--json", "search.json", "--quiet", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((folder / "search.json").read_text())
    run = folder / "run.json"
    run.write_text(json.dumps(data["search"]["probes"][0]["report"]))
    return folder / "search.json", data, run


def judged(data: dict) -> list[dict]:
    return [p for p in data["search"]["probes"] if p["outcome"] in ("pass", "fail", "indeterminate")]


def test_the_page_draws_the_curve_the_capacity_and_the_table(searched) -> None:
    path, data, _ = searched
    page_path = path.with_name("search.html")
    done = bench_cli("report", str(path), "-o", str(page_path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    page = page_path.read_text()
    assert "<script" not in page and "Content-Security-Policy" in page
    svg = svg_of(page, "chart-capacity")
    points = re.findall(r'<circle class="point"[^>]* fill="([^"]+)"', svg)
    probes = judged(data)
    assert len(points) == 3 * len(probes)  # p50, p95 and p99 of every judged probe
    for outcome, color in html_report.OUTCOME_COLORS.items():
        assert points.count(color) == 3 * sum(p["outcome"] == outcome for p in probes), outcome
    assert any(p["outcome"] == "fail" for p in probes)  # 4 users wait for 2 slots
    s = data["search"]
    assert s["capacity"] is not None and s["capacity_rps"] is not None
    label = f"capacity {int(s['capacity'])} user{'s' if s['capacity'] != 1 else ''}, {s['capacity_rps']:,.0f} req/s"
    assert re.search(rf'<line class="mark"[^>]*><title>{re.escape(label)}</title>', svg), label
    assert "SLA p95 27.00 ms" in svg
    table = page.split('<table class="search">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr") == 1 + len(s["probes"]) and table.count('class="capacity"') == 1
    assert f"capacity: {int(s['capacity'])} user" in page.split('class="answer">', 1)[1].split("</p>", 1)[0]


def test_probes_without_a_verdict_far_thresholds_and_injected_text(searched) -> None:
    path, data, _ = searched
    data = copy.deepcopy(data)
    data["name"] = XSS_NAME
    extra = copy.deepcopy(data["search"]["probes"][0])
    extra.update(level=64.0, outcome="generator-limited", why=XSS_MESSAGE)
    data["search"]["probes"].append(extra)
    data["search"]["stopped"] = "generator-limited"
    for probe in data["search"]["probes"]:
        for check in probe["report"]["sla"]["checks"]:
            if check["criterion"] == "p95":
                check["threshold"] = 10_000.0  # far above every probe: named at the top edge, not stretching the axis
    page = html_report.render_search(html_report.search_from_data(data, Path("search.json")))
    svg = svg_of(page, "chart-capacity")
    assert len(re.findall(r'<circle class="point"', svg)) == 3 * len(judged(data))
    assert 'class="threshold-above"' in svg and 'class="threshold"' not in svg
    assert "Not drawn (no verdict on the target): #" in page and "the answer so far" in page
    assert XSS_NAME not in page and "<img" not in page and "&lt;script&gt;" in page


def test_probe_n_is_a_run_for_compare_and_report(searched) -> None:
    path, data, _ = searched
    run = load_run(f"{path}#2")
    assert run.label == "search.json#2" and run.report == data["search"]["probes"][1]["report"]
    folder = path.parent
    same = bench_cli("compare", "search.json#1", "search.json#1", cwd=folder)
    assert same.returncode == 0 and "search.json#1" in same.stdout, same.stderr
    levels = [p["level"] for p in data["search"]["probes"]]
    k = next(i for i, level in enumerate(levels, 1) if level != levels[0])  # a level within noise is probed twice
    other = bench_cli("compare", "search.json#1", f"search.json#{k}", cwd=folder)
    assert other.returncode == 2 and f"differ in concurrency: {levels[0]:g} vs {levels[k - 1]:g}" in other.stderr, other.stderr
    assert bench_cli("compare", "search.json#1", f"search.json#{k}", "--force", cwd=folder).returncode == 0
    report = bench_cli("report", "search.json#2", "-o", "probe.html", cwd=folder)
    assert report.returncode == 0, report.stderr
    page = (folder / "probe.html").read_text()
    assert 'id="run-1"' in page and 'id="chart-1-latency"' in page and 'id="chart-capacity"' not in page


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("search.json", "search.json: a search report (4 probes), not a run; pick probes with search.json#N"),
        ("search.json#0", "search.json#0: no such probe; this search ran 4"),
        ("search.json#99", "search.json#99: no such probe; this search ran 4"),
        ("search.json#x", "search.json#x: expected a probe number after #"),
        ("run.json#1", "run.json#1: #N picks a probe of a search report, and run.json is not one"),
    ],
)
def test_refusals_are_one_line_and_exit_2(searched, argument: str, message: str, monkeypatch) -> None:
    path, data, _ = searched
    message = message.replace("4", str(len(data["search"]["probes"])))
    folder = path.parent
    monkeypatch.chdir(folder)
    with pytest.raises(CompareError, match=re.escape(message)):
        load_run(argument)
    compared = bench_cli("compare", argument, "run.json", cwd=folder)
    assert compared.returncode == 2 and message in compared.stderr and "Traceback" not in compared.stderr
    assert len(compared.stderr.strip().splitlines()) == 1, compared.stderr
    if argument != "search.json":  # alone, a search report is a page of its own
        reported = bench_cli("report", argument, "-o", "refused.html", cwd=folder)
        assert reported.returncode == 2 and message in reported.stderr and not (folder / "refused.html").exists()


def test_a_search_report_is_not_overlaid_with_runs(searched) -> None:
    path, _, _ = searched
    done = bench_cli("report", "search.json", "run.json", "-o", "mixed.html", cwd=path.parent)
    assert done.returncode == 2 and "pick them with search.json#N" in done.stderr


@pytest.mark.slow
def test_the_search_page_renders_in_headless_chromium(searched, tmp_path: Path) -> None:
    path, _, _ = searched
    page = tmp_path / "search.html"
    html_report.write_report(page, [json.loads(path.read_text())], sources=["search.json"])
    dom, log, shot = open_in_chromium(page, tmp_path, 1400)
    assert_charts_drawn(dom, log, ["chart-capacity"])
    assert 'class="mark"' in dom and shot.stat().st_size > 50_000
