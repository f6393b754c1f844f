"""``output.otlp``: the live metrics pushed over OTLP/HTTP with the OpenTelemetry SDK (``pip install 'bench-loadtest[otel]'``).

The SDK's periodic reader exports every ``output.otlp_interval`` (5 s by
default, as k6 pushes to Prometheus) from its own thread, and once more when
the run ends (``close``), so the receiver's last values are the report's. At
each export the first observable instrument's callback asks the collecting
thread for fresh ``Figures`` (``FiguresBox``) and all of them read those. A
push costs the parent about 3-4 ms of CPU at full load (collect, protobuf
encoding, the HTTP post), hence not every second by default. Names and attributes are those
of ``/metrics`` (``bench_requests_total`` with ``phase`` and ``outcome``, ...).
The SDK has no asynchronous histogram, so each histogram goes as cumulative
counters in Prometheus's own layout: ``bench_latency_seconds_bucket`` (with
``le``), ``_count`` and ``_sum``, on the same bucket ladder.
"""

from __future__ import annotations

from typing import Iterable

from bench.engine.errors import RunError
from bench.telemetry.live import LADDER_S, Figures, FiguresBox

#: How long the first callback of an export waits for the collecting thread's fresh figures.
FRESH_WAIT_S = 0.3


class OtlpPusher:
    def __init__(self, url: str, labels: dict[str, str], box: FiguresBox, interval_s: float) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.metrics import CallbackOptions, Observation  # noqa: F401
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
        except ImportError as exc:
            raise RunError(f"output.otlp needs the OpenTelemetry SDK: pip install 'bench-loadtest[otel]' ({exc})") from None
        endpoint = url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1/metrics") else "/v1/metrics")
        self.labels = labels
        self.box = box
        self._fig: Figures | None = None
        self.reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=endpoint, timeout=5), export_interval_millis=interval_s * 1000
        )
        self.provider = MeterProvider(resource=Resource.create({"service.name": "bench"}), metric_readers=[self.reader])
        meter = self.provider.get_meter("bench")
        self._Observation = Observation
        counter, gauge = meter.create_observable_counter, meter.create_observable_gauge
        # The SDK calls the callbacks of an export in the order the instruments were made: the first one asks.
        for index, (name, maker, read) in enumerate((
            ("bench_requests_total", counter, lambda f: [({"phase": p, "outcome": o}, n) for (p, o), n in f.requests.items()]),
            ("bench_requests_sent_total", counter, lambda f: [({"phase": p}, n) for p, n in f.sent.items()]),
            ("bench_responses_total", counter, lambda f: [({"phase": p, "status": str(c)}, n) for (p, c), n in f.responses.items()]),
            ("bench_errors_total", counter, _errors),
            ("bench_output_tokens_total", counter, lambda f: [({}, f.output_tokens)] if "ttft" in f.histograms else []),
            ("bench_in_flight", gauge, lambda f: [({}, f.in_flight)]),
            ("bench_scheduled_rps", gauge, lambda f: [({}, f.scheduled_rps)] if f.scheduled_rps is not None else []),
            ("bench_achieved_rps", gauge, lambda f: [({}, f.achieved_rps or 0.0)] if f.scheduled_rps is not None else []),
            ("bench_sla_passing", gauge, lambda f: [({"criterion": c}, ok) for c, ok in f.sla.items()]),
            ("bench_run_finished", gauge, lambda f: [({}, int(f.final))]),
        )):
            maker(name, callbacks=[self._callback(read, fresh=index == 0)])
        for hist in ("latency", "schedule_lag", "ttft", "tpot", "itl"):
            base = f"bench_{hist}_seconds"
            counter(base + "_bucket", callbacks=[self._callback(_buckets(hist))])
            counter(base + "_count", callbacks=[self._callback(lambda f, h=hist: [({}, f.histograms[h].count)] if h in f.histograms else [])])
            counter(base + "_sum", callbacks=[self._callback(lambda f, h=hist: [({}, f.histograms[h].sum_s)] if h in f.histograms else [])])

    def _callback(self, read, fresh: bool = False):
        """An instrument's callback; the first instrument's (``fresh``) asks for the figures every callback of this export reads."""

        def observe(options) -> Iterable:
            if fresh:
                self._fig = self.box.ask_fresh(FRESH_WAIT_S)[0]
            fig = self._fig
            if fig is None:
                return []
            return [self._Observation(value, {**self.labels, **attrs}) for attrs, value in read(fig)]

        return observe

    def close(self) -> None:
        """Stop the reader's thread, which exports once more on its way out: the final figures."""
        self.provider.shutdown(timeout_millis=15_000)


def _errors(f: Figures):
    http = [({"phase": p, "kind": "http"}, n) for (p, o), n in f.requests.items() if o == "http_error"]
    return http + [({"phase": p, "kind": k}, n) for (p, k), n in f.errors.items()]


def _buckets(hist: str):
    def read(f: Figures):
        h = f.histograms.get(hist)
        if h is None:
            return []
        return [({"le": f"{le:g}"}, n) for le, n in zip(LADDER_S, h.cumulative)] + [({"le": "+Inf"}, h.count)]

    return read
