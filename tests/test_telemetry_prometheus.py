"""bench's live metrics scraped by a real Prometheus server, checked against the run's JSON report.

Prometheus (Debian's ``prometheus`` package; ``.ci/run`` installs it) scrapes
``bench run --metrics-port P`` every second; afterwards its HTTP API must hold
the report's counts: requests sent, ok, errors, and the latency histogram's
``_count`` equal to the report's latency count.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = shutil.which("prometheus")

pytestmark = pytest.mark.slow

PROFILE = """\
name: telemetry
target: {method: GET, timeout: 5s}
mock:
  latency: {model: lognormal, median: 20ms, p95: 60ms}
  errors: {rate: 0.05, statuses: [503]}
  seed: 5
load: {rate: 150/s, arrival: poisson, seed: 7, duration: 4s, warmup: 1s, workers: 2}
sla: {p95: 500ms, error_rate: 10%}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port: int, expr: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.load(response)
    assert data["status"] == "success", data
    result = data["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def query_raw(port: int, expr: str | None):
    """The API's answer to an instant query, or (``expr`` None) the list of scrape targets."""
    path = "targets" if expr is None else "query?" + urllib.parse.urlencode({"query": expr})
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.mark.skipif(PROMETHEUS is None, reason="needs the prometheus binary (apt-get install prometheus; .ci/run installs it as root)")
def test_prometheus_stores_the_reports_counts(tmp_path: Path) -> None:
    metrics_port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"
        "scrape_configs:\n"
        f"  - job_name: bench\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    (tmp_path / "p.yaml").write_text(PROFILE)
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"),
    )  # fmt: skip
    try:
        # Ready, and already scraping the (not yet listening) port: Prometheus applies new targets
        # on a 5 s tick, which would otherwise eat the first seconds of a short run.
        deadline = time.monotonic() + 40
        while True:
            try:
                targets = query_raw(prom_port, None)["data"]["activeTargets"]
                if targets and not targets[0]["lastScrape"].startswith("0001"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        report_path = tmp_path / "r.json"
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "bench", "run", str(tmp_path / "p.yaml"), "--metrics-port", str(metrics_port),
             "--metrics-linger", "5s", "--json", str(report_path), "-q"],
            cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        took = time.monotonic() - started
        assert run.returncode == 0, run.stderr + run.stdout
        assert f"metrics: http://127.0.0.1:{metrics_port}/metrics" in run.stderr
        assert took < 4 + 1 + 5 + 10  # lingered only until scraped (5 s at most)
        report = json.loads(report_path.read_text())
        requests = report["requests"]
        assert requests["sent"] > 400 and requests["http_errors"] > 0  # 150/s for 4 s, about 5 % answered 503

        def last(expr: str) -> float | None:
            return query(prom_port, f"last_over_time(({expr})[10m:1s])")

        def last_series(metric: str) -> float | None:
            return query(prom_port, f"sum(last_over_time({metric}[10m]))")

        sel = 'job="bench",profile="telemetry",phase="measured"'
        assert last_series(f'bench_requests_sent_total{{{sel}}}') == requests["sent"]
        assert last_series(f'bench_requests_total{{{sel},outcome="ok"}}') == requests["ok"]
        assert last_series(f'bench_requests_total{{{sel},outcome="http_error"}}') == requests["http_errors"]
        assert last_series(f'bench_requests_total{{{sel}}}') == requests["completed"]
        errors = requests["http_errors"] + requests["client_errors"] + requests["check_failures"]
        assert last_series(f'bench_errors_total{{{sel}}}') == errors
        assert last_series(f'bench_responses_total{{{sel},status="503"}}') == report["status_codes"]["503"]
        hist = 'job="bench",profile="telemetry"'
        assert last_series(f'bench_latency_seconds_count{{{hist}}}') == report["latency"]["count"]
        assert last_series(f'bench_latency_seconds_bucket{{{hist},le="+Inf"}}') == report["latency"]["count"]
        assert last_series(f'bench_run_finished{{{hist}}}') == 1
        assert last_series(f'bench_sla_passing{{{hist}}}') == sum(c["passed"] for c in report["sla"]["checks"])
        # histogram_quantile over the stored buckets lands within the 1-2-5 ladder step of the report's p95
        p95 = last(f'histogram_quantile(0.95, bench_latency_seconds_bucket{{{hist}}})')
        assert p95 is not None and report["latency"]["p95"] / 2.5 <= p95 * 1000 <= report["latency"]["p95"] * 2.5
        # the request rate was visible while the run went, in one query: about the profile's 150/s
        peak = query(prom_port, f'max_over_time(sum(rate(bench_requests_total{{{sel}}}[5s]))[10m:1s])')
        assert peak is not None and 100 <= peak <= 220, (peak, query_raw(prom_port, f'bench_requests_total{{{sel}}}[10m]'))
        # every query of the shipped Grafana dashboard parses and runs; those on this run's series find data
        dashboard = json.loads((REPO / "dashboards" / "bench.json").read_text())
        empty = []
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "5s").replace("$profile", ".*").replace("$scenario", ".*")
                found = query_raw(prom_port, f"last_over_time(({expr})[10m:1s])")
                assert found["status"] == "success", (panel["title"], found)
                if not found["data"]["result"]:
                    empty.append(panel["title"])
        assert sorted(set(empty)) == ["Inference: TTFT p50 / p95", "Inference: output tokens per second"], empty  # not an inference run
        print(f"prometheus: sent {requests['sent']}, ok {requests['ok']}, errors {errors}, latency count {report['latency']['count']}, "
              f"p95 report {report['latency']['p95']:.1f} ms vs histogram_quantile {p95 * 1000:.1f} ms, peak rate {peak:.0f}/s, run {took:.1f} s")
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
