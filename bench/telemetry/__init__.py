"""Seeing inside a run while it goes: bench's own live metrics out, the target's metrics in.

- ``live.py``: the Aggregator's figures as plain immutable data (``Figures``),
  taken on the collecting thread when an exporter asks (``FiguresBox``).
- ``prometheus.py``: ``/metrics`` (prometheus_client) serving the last Figures
  (``output.metrics_port``, ``--metrics-port``).
- ``otlp.py``: the same metrics pushed over OTLP/HTTP (``output.otlp``; the
  ``otel`` extra).
- ``scrape.py``: the target's Prometheus endpoint (``target.metrics_url``)
  scraped every second into the report's ``target_metrics``.

Everything here runs in the parent, on threads of its own or at the
collecting thread's cadence; no worker waits for any of it. ``Telemetry`` is
what the runner calls.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin

from bench.engine.errors import RunError


def _announce(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Telemetry:
    """The run's exporters and target scraper; ``None``-free calls for the runner (see ``runner._run_workers``)."""

    def __init__(self, profile, target_url: str, announce: Callable[[str], None] = _announce) -> None:
        from bench.telemetry.live import FiguresBox, LiveFigures

        self.profile = profile
        self.announce = announce
        self.figures = LiveFigures(profile)
        self.box = FiguresBox()  # what the exporters read
        self.labels = {
            "profile": profile.name if profile.scenario is None else Path(profile.source).stem,
            "scenario": profile.scenario or "",
        }
        self.server = None
        self.otlp = None
        self.scraper = None
        metrics_url = profile.target.metrics_url
        self.metrics_url = urljoin(target_url, metrics_url) if metrics_url else None

    @staticmethod
    def wanted(profile) -> bool:
        out = profile.output
        return out.metrics_port is not None or out.otlp_url is not None or profile.target.metrics_url is not None

    def start(self) -> None:
        """Listen for scrapes and connect the OTLP exporter, before the workers start. Raises RunError."""
        out = self.profile.output
        if out.metrics_port is not None:
            from bench.telemetry.prometheus import MetricsServer

            try:
                self.server = MetricsServer(out.metrics_host, out.metrics_port, self.box, self.labels)
            except OSError as exc:
                raise RunError(f"cannot serve metrics on {out.metrics_host}:{out.metrics_port}: {exc.strerror or exc}") from None
            self.announce(f"metrics: {self.server.url} (Prometheus text, while the run goes)")
        if out.otlp_url is not None:
            from bench.telemetry.otlp import OtlpPusher

            self.otlp = OtlpPusher(out.otlp_url, self.labels, self.box, out.otlp_interval_s)

    def begin(self, start_wall_s: float | None) -> None:
        """The workers' common start: second 0 of the target's metrics."""
        if self.metrics_url is not None:
            from bench.telemetry.scrape import TargetScraper

            self.scraper = TargetScraper(self.metrics_url, self.profile.target.metrics)
            self.scraper.begin(start_wall_s)

    def update(self, aggregator) -> None:
        """Called by the collecting thread on every turn of its loop (at least every 50 ms): takes new figures when
        a scrape or an OTLP export waits for them; otherwise it costs a flag check."""
        if self.box.wanted:
            self.box.publish(self.figures.take(aggregator))

    def stop_scraping(self) -> None:
        if self.scraper is not None:
            self.scraper.stop()

    def finish(self, aggregator, verdict, summary: dict[str, Any], messages: list[str]) -> None:
        """The run's final figures (its verdict included), and the target's metrics into the summary."""
        if self.server is not None or self.otlp is not None:
            self.box.publish(self.figures.take(aggregator, final=True, verdict=verdict))
        if self.scraper is not None:
            from bench.engine.plan.profile import redact_url
            from bench.telemetry.scrape import merge_into_series

            shown = redact_url(self.metrics_url)
            summary["target_metrics"] = self.scraper.result()
            summary["target_scrapes"] = self.scraper.record(shown)
            merge_into_series(summary["series"], summary["target_metrics"])
            messages.extend(self.scraper.messages(shown))

    def close(self) -> None:
        """Keep /metrics up until the final figures are scraped (at most ``output.metrics_linger``), then stop everything."""
        self.stop_scraping()
        if self.otlp is not None:
            self.otlp.close()
        if self.server is not None:
            try:
                self.server.wait_scraped(self.profile.output.metrics_linger_s)
            finally:
                self.server.close()
