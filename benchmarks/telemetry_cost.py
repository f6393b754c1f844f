"""What live telemetry costs the parent: its CPU share at full load, with each exporter on and off, side by side.

Every variant is the same real run (``bench run`` in a child process, two
workers on the ``fast`` transport, 400 users against the bundled mock at 5 ms,
tens of thousands of requests a second); only the telemetry differs:

- ``off``: no telemetry (the parent's budget today);
- ``prometheus 1s``: ``--metrics-port`` scraped once a second by this script
  (a Prometheus ``scrape_interval: 1s``);
- ``prometheus 15s``: the same scraped every 15 s (Prometheus's default);
- ``target 1s``: ``target.metrics_url`` scraping a vLLM-sized endpoint
  (served by this script: 48 gauges and counters, 6 histograms of 12 buckets);
- ``otlp 5s``, ``otlp 1s``: ``output.otlp`` pushing every 5 s (the default
  ``otlp_interval``) or every second to a receiver in this script that
  answers 200 (needs the ``otel`` extra; skipped without it).

The figure is the report's ``generator.parent_cpu``: the parent's process CPU
time over the run's wall time (collecting thread, exporters, scraper; not the
workers, not the mock). Variants run interleaved, ``--pairs`` rounds, so a
noisy neighbour hits all of them alike; the table gives each run and the median.

    python benchmarks/telemetry_cost.py [--pairs 3] [--seconds 8] [--only off,prometheus-1s]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from _common import machine_line, run_bench


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_like_metrics() -> bytes:
    """A model server's /metrics of about vLLM's size: gauges and counters, and histograms (whose buckets bench skips)."""
    lines = []
    for i in range(48):
        kind = "counter" if i % 3 == 0 else "gauge"
        name = f"vllm:metric_{i}" + ("_total" if kind == "counter" else "")
        lines += [f"# HELP {name} a series", f"# TYPE {name} {kind}", f'{name}{{model_name="m"}} {i * 1.5}']
    for h in range(6):
        name = f"vllm:histogram_{h}_seconds"
        lines += [f"# HELP {name} a histogram", f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{le="{le}",model_name="m"}} {n}' for n, le in enumerate((0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, "+Inf"))]
        lines += [f'{name}_sum{{model_name="m"}} 12.5', f'{name}_count{{model_name="m"}} 11']
    return ("\n".join(lines) + "\n").encode()


class _Endpoint(BaseHTTPRequestHandler):
    """Serves the vLLM-like text on GET and answers 200 to OTLP posts."""

    body = vllm_like_metrics()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def scrape_every(url: str, every_s: float, stop: threading.Event) -> None:
    """GET ``url`` every ``every_s`` until ``stop`` (failures before the server is up are expected)."""
    while not stop.wait(every_s):
        try:
            urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            pass


def profile(seconds: float) -> dict:
    return {
        "name": "telemetry-cost",
        "mock": {"latency": {"model": "fixed", "delay": "5ms"}},
        "client": {"transport": "fast"},
        "load": {"concurrency": 400, "duration": f"{seconds:g}s", "workers": 2},
        "sla": {"p95": "500ms", "p99": "1s"},
    }


def run_variant(name: str, seconds: float, endpoint_url: str) -> tuple[float | None, float | None, str]:
    """(parent CPU share, requests/s, error) of one run of ``name``."""
    p = profile(seconds)
    extra: list[str] = []
    stop = threading.Event()
    scraper = None
    if name.startswith("prometheus"):
        port = free_port()
        extra = ["--metrics-port", str(port), "--metrics-linger", "0s"]
        every = float(name.split("-")[1].rstrip("s"))
        scraper = threading.Thread(target=scrape_every, args=(f"http://127.0.0.1:{port}/metrics", every, stop), daemon=True)
        scraper.start()
    elif name == "target-1s":
        p["target"] = {"metrics_url": endpoint_url + "/metrics"}
    elif name.startswith("otlp"):
        p["output"] = {"otlp": endpoint_url, "otlp_interval": name.split("-")[1]}
    try:
        report, error = run_bench(p, [], timeout_s=seconds + 60, extra_args=extra)
    finally:
        stop.set()
        if scraper is not None:
            scraper.join(5)
    if report is None:
        return None, None, error
    return report["generator"]["parent_cpu"], report["rps"], ""


VARIANTS = ("off", "prometheus-1s", "prometheus-15s", "target-1s", "otlp-5s", "otlp-1s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="each run's duration (default 8)")
    parser.add_argument("--only", default=",".join(VARIANTS), help=f"comma-separated variants of {', '.join(VARIANTS)}")
    args = parser.parse_args()
    variants = [v for v in args.only.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants: {', '.join(sorted(unknown))}")
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        skipped = [v for v in variants if v.startswith("otlp")]
        if skipped:
            print(f"{', '.join(skipped)} skipped: pip install 'bench-loadtest[otel]'")
        variants = [v for v in variants if not v.startswith("otlp")]
    print(machine_line())
    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint_url = f"http://127.0.0.1:{server.server_address[1]}"
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    rps: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for round_ in range(args.pairs):
            for name in variants:
                share, rate, error = run_variant(name, args.seconds, endpoint_url)
                if share is None:
                    print(f"round {round_ + 1} {name}: {error}")
                    continue
                cpu[name].append(share * 100)
                rps[name].append(rate)
                print(f"round {round_ + 1} {name:>15}: parent {share * 100:.2f} % of a core at {rate:,.0f} req/s", flush=True)
                time.sleep(1)
    finally:
        server.shutdown()
        server.server_close()
    off = statistics.median(cpu["off"]) if cpu.get("off") else None
    print(f"\n{'variant':>15}  {'parent CPU, each run (% of a core)':<36} {'median':>7} {'vs off':>8} {'req/s':>8}")
    for name in variants:
        if not cpu[name]:
            continue
        median = statistics.median(cpu[name])
        delta = f"{median - off:+.2f}" if off is not None and name != "off" else ""
        runs = ", ".join(f"{v:.2f}" for v in cpu[name])
        print(f"{name:>15}  {runs:<36} {median:7.2f} {delta:>8} {statistics.median(rps[name]):8,.0f}")


if __name__ == "__main__":
    main()
