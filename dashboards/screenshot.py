"""Picture the dashboard's panels from a real run: Prometheus scrapes ``bench run --metrics-port``, Chromium draws the queries.

Grafana is not packaged by Debian, so the picture (``dashboards/bench-dashboard.png``)
is the next most real thing: every panel of ``bench.json`` (not the inference
ones) as its PromQL drawn by Prometheus's own graph page (one Chromium
screenshot each), laid out on the dashboard's columns. A panel's several queries are joined with ``or`` and
labelled by their legends, ``$profile``/``$scenario`` match everything and
``$__rate_interval`` is 5s (four 1 s scrapes and one).

The run: an open loop ramping 50 -> 400/s against the bundled mock with 16
slots (about 320/s), so the queue, the latency and the SLA verdict turn
half-way, and a bounded queue answers 503 once full.

    python dashboards/screenshot.py [--out dashboards/bench-dashboard.png]

Needs ``prometheus`` and ``chromium`` on the PATH; stops both by PID.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH = 1600  # pixels for the dashboard's 24 columns
ROW = 34  # pixels per grid row (a panel of h 8: 272 px)

PROFILE = """\
name: checkout-api
target: {method: GET, timeout: 5s}
mock:
  latency: {model: lognormal, median: 40ms, p95: 120ms}
  errors: {rate: 0.01, statuses: [500]}
  capacity: {slots: 16, queue: 400, status: 503}
load:
  rate: 50/s
  stages:
    - {duration: 30s, rate: 400/s}
    - {duration: 15s, rate: 400/s}
    - {duration: 15s, rate: 100/s}
  workers: 2
sla: {p95: 300ms, error_rate: 5%}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def panel_query(panel: dict) -> str:
    """The panel's queries as one: variables filled in, each fixed legend a ``series`` label."""
    parts = []
    for target in panel["targets"]:
        expr = target["expr"].replace("$__rate_interval", "5s").replace("$profile", ".*").replace("$scenario", ".*")
        legend = target.get("legendFormat", "")
        if legend and "{{" not in legend:
            expr = f'label_replace({expr}, "series", "{legend}", "", "")'
        parts.append(expr)
    return " or ".join(parts)


def graph_url(prom_port: int, expr: str, end: dt.datetime, range_s: int) -> str:
    query = {"g0.expr": expr, "g0.tab": "0", "g0.range_input": f"{range_s}s", "g0.end_input": end.strftime("%Y-%m-%d %H:%M:%S"), "g0.moment_input": end.strftime("%Y-%m-%d %H:%M:%S")}
    return f"http://127.0.0.1:{prom_port}/graph?" + urllib.parse.urlencode(query)


#: Each panel's graph page is drawn at this size, then cropped below Prometheus's header and scaled to the panel's width.
SHOT_W, SHOT_H, CROP_TOP = 1200, 830, 105


def shoot(chromium: str, url: str, out: Path) -> None:
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={SHOT_W},{SHOT_H}",
         "--virtual-time-budget=10000", f"--screenshot={out}", url],
        capture_output=True,
        timeout=120,
    )  # fmt: skip


def page(panels: list[dict], shots: list[Path]) -> tuple[str, int]:
    """A page laying the panels' pictures out on the dashboard's grid (its columns; rows as tall as their pictures)."""
    rows: dict[int, list[tuple[dict, Path]]] = {}
    for panel, shot in zip(panels, shots):
        rows.setdefault(panel["gridPos"]["y"], []).append((panel, shot))
    html_rows, height = [], 0
    for _, row in sorted(rows.items()):
        boxes, row_height = [], 0
        for panel, shot in sorted(row, key=lambda ps: ps[0]["gridPos"]["x"]):
            w = panel["gridPos"]["w"] * WIDTH // 24 - 8
            scale = w / SHOT_W
            shown = int((SHOT_H - CROP_TOP) * scale)
            row_height = max(row_height, shown + 30)
            boxes.append(
                f'<div class="panel" style="width:{w}px"><h3>{html.escape(panel["title"])}</h3>'
                f'<div class="frame" style="height:{shown}px"><img src="{shot.as_uri()}" style="width:{w}px;margin-top:{-int(CROP_TOP * scale)}px"></div></div>'
            )
        html_rows.append(f'<div class="row">{"".join(boxes)}</div>')
        height += row_height + 8
    return (
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        f"body{{margin:0;font-family:sans-serif;background:#f4f5f5;width:{WIDTH}px}}"
        ".row{display:flex;gap:8px;margin-bottom:8px}"
        ".panel{background:#fff;border:1px solid #d8d9da;overflow:hidden}"
        ".panel h3{margin:0;padding:6px 8px;font-size:14px;color:#1d2430}"
        ".frame{overflow:hidden}"
        f"</style></head><body>{''.join(html_rows)}</body></html>"
    ), height


def wait_for_first_scrape(prom_port: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/targets", timeout=2) as r:
                targets = json.load(r)["data"]["activeTargets"]
            if targets and not targets[0]["lastScrape"].startswith("0001"):
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("prometheus did not start scraping")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=str(HERE / "bench-dashboard.png"))
    args = parser.parse_args()
    prometheus, chromium = shutil.which("prometheus"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not prometheus or not chromium:
        sys.exit("needs prometheus and chromium on the PATH (apt-get install prometheus chromium)")
    dashboard = json.loads((HERE / "bench.json").read_text())
    panels = [p for p in dashboard["panels"] if not p["title"].startswith("Inference")]
    metrics_port, prom_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"
            f"scrape_configs:\n  - job_name: bench\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
        )
        (tmp_path / "checkout-api.yaml").write_text(PROFILE)
        prom = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_first_scrape(prom_port, 40)
            started = dt.datetime.now(dt.timezone.utc)
            run = subprocess.run(
                [sys.executable, "-m", "bench", "run", str(tmp_path / "checkout-api.yaml"), "--metrics-port", str(metrics_port), "--metrics-linger", "3s", "-q"],
                cwd=HERE.parent,
                capture_output=True,
                text=True,
                timeout=300,
            )
            print(run.stdout[-600:])
            time.sleep(2)
            # The graph page takes its end to the minute: the next whole minute, and the range back to the start.
            end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
            range_s = int((end - started).total_seconds()) + 3
            shots = []
            for i, panel in enumerate(panels):
                shots.append(tmp_path / f"panel-{i}.png")
                shoot(chromium, graph_url(prom_port, panel_query(panel), end, range_s), shots[-1])
            text, height = page(panels, shots)
            (tmp_path / "dashboard.html").write_text(text)
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
                 f"--window-size={WIDTH},{height}", f"--screenshot={args.out}", (tmp_path / "dashboard.html").as_uri()],
                capture_output=True,
                timeout=120,
            )  # fmt: skip
        finally:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(timeout=15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
