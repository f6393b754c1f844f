"""output.otlp against a minimal OTLP/HTTP receiver (protobuf definitions from opentelemetry-proto): the last pushed counts are the report's."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

import bench

pb = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2", reason="needs pip install 'bench-loadtest[otel]'")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs pip install 'bench-loadtest[otel]'")

PROFILE = """\
name: otlp
target: {method: GET, timeout: 5s}
mock:
  latency: {model: lognormal, median: 10ms, p95: 30ms}
  errors: {rate: 0.05, statuses: [503]}
  seed: 2
load: {rate: 120/s, arrival: poisson, seed: 3, duration: 3s, workers: 1}
sla: {p95: 500ms}
output: {otlp: "http://127.0.0.1:PORT", otlp_interval: 1s, json: JSON}
"""


class Receiver(BaseHTTPRequestHandler):
    latest: dict[tuple[str, tuple], float] = {}
    posts = 0
    sent_while_running: list[float] = []  # bench_requests_sent_total (measured) of each push before the run finished

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = pb.ExportMetricsServiceRequest()
        request.ParseFromString(body)
        this: dict[tuple[str, tuple], float] = {}
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points = metric.sum.data_points if metric.HasField("sum") else metric.gauge.data_points
                    for point in points:
                        attrs = tuple(sorted((a.key, a.value.string_value) for a in point.attributes))
                        value = point.as_double if point.HasField("as_double") else point.as_int
                        this[(metric.name, attrs)] = value
        Receiver.latest.update(this)
        Receiver.posts += 1
        finished = [v for (n, _), v in this.items() if n == "bench_run_finished"]
        if finished == [0]:
            Receiver.sent_while_running.append(sum(v for (n, a), v in this.items() if n == "bench_requests_sent_total" and ("phase", "measured") in a))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
def test_otlp_push_ends_at_the_reports_counts(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "p.yaml"
        path.write_text(PROFILE.replace("PORT", str(server.server_address[1])).replace("JSON", str(tmp_path / "r.json")))
        result = bench.run(bench.load_profile(path))
    finally:
        server.shutdown()
        server.server_close()
    requests = result.summary["requests"]

    def total(name: str, **match: str) -> float:
        return sum(v for (n, attrs), v in Receiver.latest.items() if n == name and all((k, w) in attrs for k, w in match.items()))

    assert Receiver.posts >= 3  # once a second while it ran (otlp_interval: 1s), and the final flush
    running = Receiver.sent_while_running
    assert running and running == sorted(running) and 0 < running[-1] < requests["sent"]  # live figures, not only the final ones
    assert total("bench_requests_total", phase="measured") == requests["completed"]
    assert total("bench_requests_total", phase="measured", outcome="http_error") == requests["http_errors"] > 0
    assert total("bench_requests_sent_total", phase="measured") == requests["sent"]
    assert total("bench_latency_seconds_count") == result.summary["latency"]["count"]
    assert total("bench_latency_seconds_bucket", le="+Inf") == result.summary["latency"]["count"]
    assert total("bench_run_finished", profile="otlp") == 1
