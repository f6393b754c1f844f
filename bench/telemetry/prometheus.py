"""``/metrics`` in Prometheus text while a run goes, served by prometheus_client from the parent.

The server is prometheus_client's own request handler (``MetricsHandler``:
content negotiation, gzip, the exposition format) on a ``ThreadingHTTPServer``
of the standard library, not the niced collecting thread, not a worker. Not
the library's ``start_http_server``, whose WSGI stack made a scrape cost the
parent 0.7-0.8 ms of CPU instead of about 0.5 ms. A thread per connection, so
an idle connection (a browser's preconnect) cannot hold up Prometheus.
A scrape asks the collecting thread for fresh ``Figures`` (``FiguresBox``),
waits for them at most FRESH_WAIT_S, and never reads the Aggregator.
Metric names and labels are listed in ``families``' docstrings and README.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import MetricsHandler
from prometheus_client.registry import Collector, CollectorRegistry

from bench.telemetry.live import LADDER_S, Figures, FiguresBox, Hist

HISTOGRAM_HELP = {
    "latency": "Response time of measured requests that got an HTTP response (from the intended send in an open loop)",
    "schedule_lag": "How late the generator sent each request after it was due (open loop)",
    "ttft": "Time to first token of streamed responses",
    "tpot": "Time per output token after the first",
    "itl": "Gaps between consecutive content events of streamed responses",
}


def _buckets(hist: Hist) -> list[tuple[str, float]]:
    return [*((f"{le:g}", float(n)) for le, n in zip(LADDER_S, hist.cumulative)), ("+Inf", float(hist.count))]


def families(fig: Figures, base: dict[str, str]) -> Iterable:
    """The metric families of one run's Figures; ``base`` holds the labels every series carries (profile, scenario)."""
    keys = list(base)
    values = list(base.values())
    requests = CounterMetricFamily("bench_requests", "Requests completed, by outcome (ok, http_error, client_error, check) and phase", labels=[*keys, "phase", "outcome"])
    for (phase, outcome), n in sorted(fig.requests.items()):
        requests.add_metric([*values, phase, outcome], n)
    yield requests
    sent = CounterMetricFamily("bench_requests_sent", "Requests sent, by phase", labels=[*keys, "phase"])
    for phase, n in sorted(fig.sent.items()):
        sent.add_metric([*values, phase], n)
    yield sent
    responses = CounterMetricFamily("bench_responses", "HTTP responses by status code and phase (a failed check counts under its status too)", labels=[*keys, "phase", "status"])
    for (phase, code), n in sorted(fig.responses.items()):
        responses.add_metric([*values, phase, str(code)], n)
    yield responses
    errors = CounterMetricFamily("bench_errors", "Failed requests by kind: the report's client error kinds and check, and http for an HTTP error status", labels=[*keys, "phase", "kind"])
    http = {phase: n for (phase, outcome), n in fig.requests.items() if outcome == "http_error"}
    for phase, n in sorted(http.items()):
        errors.add_metric([*values, phase, "http"], n)
    for (phase, kind), n in sorted(fig.errors.items()):
        errors.add_metric([*values, phase, kind], n)
    yield errors
    in_flight = GaugeMetricFamily("bench_in_flight", "Requests in flight, summed over workers at their last report", labels=keys)
    in_flight.add_metric(values, fig.in_flight)
    yield in_flight
    if fig.scheduled_rps is not None:
        g = GaugeMetricFamily("bench_scheduled_rps", "Sends the open-loop schedule asked for in the last closed second", labels=keys)
        g.add_metric(values, fig.scheduled_rps)
        yield g
        g = GaugeMetricFamily("bench_achieved_rps", "Sends in the last closed second (warm-up included), to compare with bench_scheduled_rps", labels=keys)
        g.add_metric(values, fig.achieved_rps or 0.0)
        yield g
    for name, hist in fig.histograms.items():
        h = HistogramMetricFamily(f"bench_{name}_seconds", HISTOGRAM_HELP[name], labels=keys)
        h.add_metric(values, _buckets(hist), hist.sum_s)
        yield h
    if "ttft" in fig.histograms:
        c = CounterMetricFamily("bench_output_tokens", "Output tokens of measured responses", labels=keys)
        c.add_metric(values, fig.output_tokens)
        yield c
    if fig.steps:
        step_requests = CounterMetricFamily("bench_step_requests", "A session step's measured requests by outcome", labels=[*keys, "step", "outcome"])
        step_latency = HistogramMetricFamily("bench_step_latency_seconds", "A session step's response time", labels=[*keys, "step"])
        for step, (outcomes, hist) in sorted(fig.steps.items()):
            for outcome, n in outcomes.items():
                step_requests.add_metric([*values, step, outcome], n)
            step_latency.add_metric([*values, step], _buckets(hist), hist.sum_s)
        yield step_requests
        yield step_latency
    if fig.sla:
        g = GaugeMetricFamily("bench_sla_passing", "1 while an SLA criterion passes on the whole run so far, 0 while it fails or cannot be measured yet", labels=[*keys, "criterion"])
        for label, ok in fig.sla.items():
            g.add_metric([*values, label], ok)
        yield g
    g = GaugeMetricFamily("bench_elapsed_seconds", "Seconds of the run covered by the reports merged so far", labels=keys)
    g.add_metric(values, fig.elapsed_s)
    yield g
    g = GaugeMetricFamily("bench_run_finished", "1 once the run's final figures are published", labels=keys)
    g.add_metric(values, int(fig.final))
    yield g


#: How long a scrape waits for the collecting thread to take fresh figures (it looks every 50 ms) before serving the last ones.
FRESH_WAIT_S = 0.3


class _RunCollector(Collector):
    def __init__(self, owner: "MetricsServer") -> None:
        self.owner = owner

    def collect(self) -> Iterable:
        owner = self.owner
        fig, generation = owner.box.ask_fresh(FRESH_WAIT_S)
        if fig is not None:
            yield from families(fig, owner.labels)
        owner._scraped(generation)  # noqa: SLF001


#: A client that connects and sends nothing is dropped after this long.
CLIENT_TIMEOUT_S = 5.0


class _MetricsOnly(MetricsHandler):
    """The library's handler, on ``/metrics`` only: a browser's ``/favicon.ico`` must not count as the final scrape."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] == "/metrics":
            super().do_GET()
            return
        body = b"bench serves its metrics on /metrics\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """A thread per connection (daemon threads: none outlives the run), on any address family."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, host: str, port: int, handler: type) -> None:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self.address_family = family
        super().__init__(sockaddr[:2], handler)


class MetricsServer:
    """``/metrics`` on ``host:port`` (port 0: any free port; see ``port``) for one run, served by prometheus_client's handler."""

    def __init__(self, host: str, port: int, box: FiguresBox, labels: dict[str, str]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.box = box
        self.labels = labels  # profile, scenario: on every series
        self._scraped_generation = -1
        self._scrape_event = threading.Condition()
        self.registry.register(_RunCollector(self))
        handler = type("RunMetricsHandler", (_MetricsOnly,), {"registry": self.registry, "timeout": CLIENT_TIMEOUT_S})
        self._server = _Server(host, port, handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="bench-metrics", daemon=True)
        self._thread.start()
        self.host = host
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def _scraped(self, generation: int) -> None:
        with self._scrape_event:
            self._scraped_generation = max(self._scraped_generation, generation)
            self._scrape_event.notify_all()

    def wait_scraped(self, timeout_s: float) -> bool:
        """Wait until a scrape has read the last published figures, or ``timeout_s``; True if it was scraped."""
        deadline = time.monotonic() + timeout_s
        generation = self.box.generation
        with self._scrape_event:
            while self._scraped_generation < generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._scrape_event.wait(left)
        return True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
