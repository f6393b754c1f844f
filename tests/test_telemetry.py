"""bench.telemetry without a Prometheus server: the bucket ladder, /metrics text, the target's metrics scraped from the mock."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path

import pytest

import bench
from bench.engine.errors import ProfileError
from bench.engine.plan.profile import parse_profile
from bench.engine.workers.samples import new_histogram
from bench.telemetry.live import LADDER_S, Ladder
from bench.telemetry.scrape import MAX_SERIES, TargetScraper, parse

ROOT = Path(__file__).resolve().parent.parent


def test_ladder_counts_whole_buckets_and_count_is_exact() -> None:
    rng = random.Random(3)
    histogram = new_histogram()
    values = [max(1, int(rng.lognormvariate(9.5, 1.5))) for _ in range(20000)]
    for v in values:
        histogram.record_value(v)
    hist = Ladder().reduce(histogram)
    assert hist.count == len(values)
    for le, n in zip(LADDER_S, hist.cumulative):
        assert n == sum(1 for v in values if histogram.get_highest_equivalent_value(v) <= le * 1e6)
    assert hist.sum_s == pytest.approx(sum(values) / 1e6, rel=1e-3)
    assert Ladder().reduce(new_histogram()).count == 0


def test_parse_keeps_numbers_skips_buckets_and_picks_by_name_or_regex() -> None:
    text = (
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 3\n"
        "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 7\n"
        "# TYPE vllm:e2e_request_latency_seconds histogram\n"
        "vllm:e2e_request_latency_seconds_bucket{le=\"1.0\"} 2\nvllm:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "vllm:e2e_request_latency_seconds_sum 3.5\nvllm:e2e_request_latency_seconds_count 4\n"
        "# TYPE odd gauge\nodd NaN\n"
    )
    every = dict(parse(text))
    assert every == {
        'vllm:num_requests_running{model_name="m"}': 3.0,
        'vllm:num_requests_waiting{model_name="m"}': 7.0,
        "vllm:e2e_request_latency_seconds_sum": 3.5,
        "vllm:e2e_request_latency_seconds_count": 4.0,
    }
    assert [n for n, _ in parse(text, ("vllm:num_requests_waiting",))] == ['vllm:num_requests_waiting{model_name="m"}']
    assert len(parse(text, ("vllm:num_requests_.*",))) == 2
    assert len(parse(text, ("vllm:e2e.*_bucket",))) == 2  # picked explicitly, buckets are kept


class _Many(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = "".join(f"# TYPE g{i} gauge\ng{i} {i}\n" for i in range(MAX_SERIES + 7)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_scraper_keeps_at_most_max_series_and_names_the_rest() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Many)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scraper = TargetScraper(f"http://127.0.0.1:{server.server_address[1]}/metrics")
        scraper._start_wall_s = 0.0  # noqa: SLF001 - every scrape lands in a second >= 0
        scraper.scrape_once()
    finally:
        server.shutdown()
        server.server_close()
    assert len(scraper.result()) == MAX_SERIES and "g0" in scraper.result() and "g49" in scraper.result()
    (note,) = scraper.messages("http://x/metrics")
    assert "kept the first 50 series" in note and "g50, g51" in note
    failing = TargetScraper("http://127.0.0.1:9/metrics", timeout_s=0.5)
    failing._start_wall_s = 0.0  # noqa: SLF001
    failing.scrape_once()
    assert failing.result() == {} and "1 of 1 scrapes" in failing.messages("u")[0]


def test_profile_fields_are_checked() -> None:
    base = {"target": {"url": "http://127.0.0.1:1/"}, "load": {"concurrency": 1, "requests": 1}}
    p = parse_profile({**base, "output": {"metrics_port": "0.0.0.0:9464", "metrics_linger": "5s"}})
    assert (p.output.metrics_host, p.output.metrics_port, p.output.metrics_linger_s) == ("0.0.0.0", 9464, 5.0)
    assert parse_profile({**base, "output": {"metrics_port": 0}}).output.metrics_port == 0
    out = parse_profile({**base, "output": {"otlp": "http://127.0.0.1:4318", "otlp_interval": "2s"}}).output
    assert (out.otlp_url, out.otlp_interval_s) == ("http://127.0.0.1:4318", 2.0)
    assert parse_profile({**base, "output": {"otlp": "http://127.0.0.1:4318"}}).output.otlp_interval_s == 5.0
    for bad, field in (
        ({"output": {"metrics_port": "nine"}}, "output.metrics_port"),
        ({"output": {"metrics_port": 70000}}, "output.metrics_port"),
        ({"output": {"otlp": "grpc://x:4317"}}, "output.otlp"),
        ({"output": {"otlp": "http://x:4318", "otlp_interval": "10ms"}}, "output.otlp_interval"),
        ({"output": {"otlp": "http://x:4318", "otlp_interval": 5}}, "output.otlp_interval"),
        ({"target": {"url": "http://127.0.0.1:1/", "metrics": ["vllm:.*"]}}, "target.metrics"),
        ({"target": {"url": "http://127.0.0.1:1/", "metrics_url": "/metrics", "metrics": ["("]}}, "target.metrics"),
        ({"target": {"url": "http://127.0.0.1:1/", "metrics_url": "ftp://x/metrics"}}, "target.metrics_url"),
    ):
        with pytest.raises(ProfileError) as info:
            parse_profile({**base, **bad})
        assert info.value.field == field


@pytest.mark.slow
def test_metrics_port_serves_prometheus_text_and_the_mock_metrics_are_scraped(tmp_path: Path) -> None:
    """The shipped chat profile scrapes the mock's /metrics: its slots in use, queue and requests, per second, into the report."""
    profile = bench.load_profile(ROOT / "profiles" / "openai-chat.yaml", {"requests": 32, "json": str(tmp_path / "r.json"), "metrics_port": "0"})
    seen: list[str] = []
    lines: list[str] = []
    scrapers: list[threading.Thread] = []

    def announce(line: str) -> None:
        lines.append(line)

    from bench.telemetry import Telemetry

    original = Telemetry.__init__

    def init(self, profile, url, announce_=announce):  # capture the printed URL
        original(self, profile, url, announce_)

    Telemetry.__init__ = init  # type: ignore[method-assign]
    try:

        def scrape(url: str) -> None:
            seen.append(urllib.request.urlopen(url, timeout=5).read().decode())

        def progress(snap) -> None:  # on the collecting thread, which a scrape waits for: scrape from another
            if lines and snap.completed > 8 and not scrapers:
                scrapers.append(threading.Thread(target=scrape, args=(lines[0].split()[1],)))
                scrapers[0].start()

        result = bench.run(profile, on_progress=progress)
    finally:
        Telemetry.__init__ = original  # type: ignore[method-assign]
    assert result.status == "completed"
    scrapers[0].join(10)
    assert seen and 'bench_ttft_seconds_bucket{le="+Inf",profile="openai-chat",scenario=""}' in seen[0]
    assert 'bench_sla_passing{criterion="ttft.p95 <= 800ms"' in seen[0]
    report = json.loads((tmp_path / "r.json").read_text())
    target = report["target_metrics"]
    assert set(target) == {"mock:num_requests_running", "mock:num_requests_waiting", "mock:gpu_cache_usage_perc", "mock:requests_total"}
    running = [v for _, v in target["mock:num_requests_running"]]
    assert max(running) == 8  # concurrency 8 against 8 slots: every slot busy while the run goes
    assert all(v == 0 for _, v in target["mock:num_requests_waiting"])
    seconds = [s for s, _ in target["mock:requests_total"]]
    assert seconds == sorted(seconds) and len(seconds) >= 2 and seconds[0] >= 0
    assert 0 < target["mock:requests_total"][-1][1] <= report["requests"]["sent"] + report["warmup"]["sent"]
    with_target = [p for p in report["series"] if "target" in p]
    assert with_target and with_target[0]["target"]["mock:num_requests_running"] >= 0
    from bench.cli.html_report import render_html, run_from_data

    page = render_html([run_from_data(report, tmp_path / "r.json")])
    assert "Target: mock:num_requests_running" in page and "The target's metrics" in page


class _Stalling(BaseHTTPRequestHandler):
    """/metrics that answers at once, except that scrape 3 takes 2.5 s (longer than the scraper's 1 s timeout)."""

    scrapes = 0

    def do_GET(self) -> None:  # noqa: N802
        _Stalling.scrapes += 1
        if _Stalling.scrapes == 3:
            time.sleep(2.5)
        body = f"# TYPE queue_length gauge\nqueue_length {_Stalling.scrapes}\n".encode()
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the scraper gave up on this one

    def log_message(self, *args) -> None:
        pass


def _run_with_metrics_url(tmp_path: Path, metrics_url: str) -> tuple[dict, float]:
    """A 6 s open loop of 100/s against the bundled mock, the target's metrics at ``metrics_url``; (report, wall seconds)."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: scrape-gaps\n"
        "mock: {latency: {model: fixed, delay: 2ms}}\n"
        f"target: {{metrics_url: '{metrics_url}'}}\n"
        "load: {rate: 100/s, duration: 6s, workers: 1}\n"
        f"output: {{json: '{tmp_path / 'r.json'}'}}\n"
    )
    started = time.monotonic()
    result = bench.run(bench.load_profile(path))
    wall = time.monotonic() - started
    assert result.status == "completed"
    return json.loads((tmp_path / "r.json").read_text()), wall


@pytest.mark.slow
def test_a_slow_or_down_metrics_endpoint_leaves_gaps_and_never_holds_the_run(tmp_path: Path) -> None:
    """The run sends its whole schedule on time while scrapes time out or are refused; the failed seconds are recorded."""
    from bench.cli.html_report import render_html, run_from_data

    _Stalling.scrapes = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slow, slow_wall = _run_with_metrics_url(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    assert slow["requests"]["sent"] == 600 and slow["requests"]["ok"] == 600  # the schedule, all of it
    assert slow["latency"]["p99"] < 200  # ms: no request waited for a scrape
    scrapes = slow["target_scrapes"]
    assert scrapes["failed"].get("timeout", 0) >= 1 and scrapes["scrapes"] >= 4
    gap_seconds = {second for second, kind in scrapes["gaps"] if kind == "timeout"}
    kept = {second for second, _ in slow["target_metrics"]["queue_length"]}
    assert gap_seconds and not gap_seconds & kept  # a failed scrape's second has no value
    assert min(kept) < min(gap_seconds) < max(kept)  # values before the stall and after it
    assert any("scrapes of" in m and "timeout" in m for m in slow["messages"])
    assert slow_wall < 6 + 6  # ended on time: the stop waits at most one scrape's timeout
    page = render_html([run_from_data(slow, tmp_path / "r.json")])
    assert "scrapes failed (timeout:" in page and "Target: queue_length" in page

    with socket.socket() as holder:  # a port nothing listens on: every scrape refused
        holder.bind(("127.0.0.1", 0))
        down_port = holder.getsockname()[1]
    (tmp_path / "r.json").unlink()
    down, _ = _run_with_metrics_url(tmp_path, f"http://127.0.0.1:{down_port}/metrics")
    assert down["requests"]["sent"] == 600 and down["requests"]["ok"] == 600
    assert down["target_metrics"] == {} and down["target_scrapes"]["failed"] == {"refused": down["target_scrapes"]["scrapes"]}
    assert len(down["target_scrapes"]["gaps"]) >= 4


@pytest.mark.slow
def test_the_mock_with_capacity_serves_its_slots_queue_and_refusals_on_metrics(tmp_path: Path) -> None:
    """6 users against 2 slots and a queue of 2: the scraped series say 2 running, 2 waiting, and the refusals so far."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: capacity-metrics\n"
        "mock: {latency: {model: fixed, delay: 100ms}, capacity: {slots: 2, queue: 2, status: 503}}\n"
        "target: {metrics_url: /metrics}\n"
        "load: {concurrency: 6, duration: 4s, workers: 1}\n"
        "sla: {error_rate: 'off'}\n"
        f"output: {{json: '{tmp_path / 'r.json'}'}}\n"
    )
    result = bench.run(bench.load_profile(path))
    assert result.status == "completed"
    report = json.loads((tmp_path / "r.json").read_text())
    target = {name: [v for _, v in points] for name, points in report["target_metrics"].items()}
    assert max(target["mock:num_requests_running"]) == 2
    assert max(target["mock:num_requests_waiting"]) == 2
    assert 0 < target["mock:requests_rejected_total"][-1] <= report["status_codes"]["503"] + report["warmup"].get("status_codes", {}).get("503", 0)
    sent = report["requests"]["sent"] + report["warmup"]["sent"]
    assert target["mock:requests_total"] == sorted(target["mock:requests_total"]) and 0 < target["mock:requests_total"][-1] <= sent
    assert report["target_scrapes"]["failed"] == {}


def test_an_idle_connection_does_not_hold_up_a_scrape() -> None:
    """A client that connects and says nothing (a browser's preconnect) must not make Prometheus's scrape wait."""
    from bench.telemetry.live import Figures, FiguresBox
    from bench.telemetry.prometheus import MetricsServer

    box = FiguresBox()
    server = MetricsServer("127.0.0.1", 0, box, {"profile": "p", "scenario": ""})
    try:
        box.publish(Figures(sent={"measured": 7}, final=True))
        with socket.create_connection(("127.0.0.1", server.port)):  # open, silent, for the whole scrape
            started = time.monotonic()
            text = urllib.request.urlopen(server.url, timeout=2).read().decode()
            took = time.monotonic() - started
        assert 'bench_requests_sent_total{phase="measured",profile="p",scenario=""} 7.0' in text
        assert 'bench_run_finished{profile="p",scenario=""} 1.0' in text
        assert took < 1.0
        assert server.wait_scraped(0.1)  # the final figures were read
    finally:
        server.close()


def test_parse_names_counters_as_typed_and_splits_only_on_newlines() -> None:
    text = (
        "# HELP tgi_request_count Total requests\n# TYPE tgi_request_count counter\ntgi_request_count 42\n"
        'odd{x="p\u2028q",y="#{}"} 1\n'  # a line separator inside a label value is not a line break
        "  spaced 3\n"  # a sample line parsers accept, which the name prefilter does not recognise
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n"
    )
    assert dict(parse(text)) == {"tgi_request_count_total": 42.0, 'odd{x="p\u2028q",y="#{}"}': 1.0, "spaced": 3.0, "h_sum": 4.0, "h_count": 3.0}
    assert parse(text, ("tgi_request_count_total",)) == [("tgi_request_count_total", 42.0)]  # as the type names it
    assert parse(text, ("h_.*",)) == [("h_bucket{le=\"1\"}", 2.0), ("h_bucket{le=\"+Inf\"}", 3.0), ("h_sum", 4.0), ("h_count", 3.0)]
    assert parse(text, ("odd",)) == [('odd{x="p\u2028q",y="#{}"}', 1.0)]  # picks: nothing else leaks through


class _Garbage(BaseHTTPRequestHandler):
    """First a status line that is not HTTP, then a body that trickles a byte every 0.3 s."""

    calls = 0

    def do_GET(self) -> None:  # noqa: N802
        _Garbage.calls += 1
        if _Garbage.calls == 1:
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(10):
            try:
                self.wfile.write(b"#")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.3)

    def log_message(self, *args) -> None:
        pass


def test_a_garbled_or_trickling_endpoint_is_a_recorded_failure_within_the_timeout() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scraper = TargetScraper(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout_s=1.0)
        scraper._start_wall_s = 0.0  # noqa: SLF001
        scraper.scrape_once()  # a bad status line: an http.client error, not an OSError
        started = time.monotonic()
        scraper.scrape_once()  # one byte every 0.3 s never times out a read, but the whole scrape must
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert took < 2.0
    assert scraper.scrapes == 2 and sum(scraper.failures.values()) == 2 and "timeout" in scraper.failures
    assert len(scraper.gaps) == 2


def test_metrics_are_served_on_metrics_only() -> None:
    """A browser's /favicon.ico is a 404 and does not count as the scrape of the final figures."""
    from bench.telemetry.live import Figures, FiguresBox
    from bench.telemetry.prometheus import MetricsServer

    box = FiguresBox()
    server = MetricsServer("127.0.0.1", 0, box, {"profile": "p", "scenario": ""})
    try:
        box.publish(Figures(final=True))
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/favicon.ico", timeout=2)
        assert info.value.code == 404
        assert not server.wait_scraped(0.2)
        assert "bench_run_finished" in urllib.request.urlopen(server.url + "?x=1", timeout=2).read().decode()
        assert server.wait_scraped(0.2)
    finally:
        server.close()
