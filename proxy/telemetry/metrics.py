"""Metrics: OpenTelemetry SDK instruments, read two ways.

- OTLP: a PeriodicExportingMetricReader when an endpoint is configured.
- Prometheus: an InMemoryMetricReader collected on each scrape of /metrics and rendered by
  ``render_prometheus`` below (about 60 lines). Chosen over opentelemetry-exporter-prometheus
  because that package pulls in prometheus_client and its own HTTP server/registry, while the
  proxy already serves /metrics from aiohttp; one set of instruments feeds both outputs.
"""
from __future__ import annotations

import math
import re
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (Histogram, InMemoryMetricReader, MetricReader,
                                              Sum)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# seconds: guards take micro- to milliseconds, upstream calls up to minutes
GUARD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)

_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
MAX_LABEL = 128      # label values come from clients (model names): keep them bounded


def _label_value(value: Any) -> str:
    text = str(value)[:MAX_LABEL]
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prom_name(name: str, unit: str, counter: bool) -> str:
    base = _LABEL_BAD.sub("_", name)
    if unit == "s" and not base.endswith("_seconds"):
        base += "_seconds"
    if counter:
        base += "_total"
    return base


def _labels(attrs: Any, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = [(_LABEL_BAD.sub("_", str(k)), _label_value(v)) for k, v in sorted((attrs or {}).items())]
    pairs += list(extra)
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else ""


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_prometheus(data: Any) -> bytes:
    """MetricsData (cumulative) -> Prometheus text exposition format 0.0.4."""
    out: list[str] = []
    if data is None:
        return b""
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                agg = metric.data
                if isinstance(agg, Sum):
                    counter = agg.is_monotonic
                    name = _prom_name(metric.name, metric.unit, counter)
                    kind = "counter" if counter else "gauge"
                elif isinstance(agg, Histogram):
                    name, kind = _prom_name(metric.name, metric.unit, False), "histogram"
                else:
                    name, kind = _prom_name(metric.name, metric.unit, False), "gauge"
                out.append(f"# HELP {name} {metric.description}")
                out.append(f"# TYPE {name} {kind}")
                for point in agg.data_points:
                    if kind == "histogram":
                        cumulative = 0
                        for bound, count in zip(point.explicit_bounds, point.bucket_counts):
                            cumulative += count
                            out.append(f"{name}_bucket{_labels(point.attributes, (('le', _num(float(bound))),))} {cumulative}")
                        out.append(f"{name}_bucket{_labels(point.attributes, (('le', '+Inf'),))} {point.count}")
                        out.append(f"{name}_sum{_labels(point.attributes)} {_num(point.sum)}")
                        out.append(f"{name}_count{_labels(point.attributes)} {point.count}")
                    else:
                        out.append(f"{name}{_labels(point.attributes)} {_num(point.value)}")
    return ("\n".join(out) + "\n").encode()


class Metrics:
    """The proxy's instruments. ``audit_source`` (set later) feeds the audit gauges."""

    def __init__(self, service_name: str, readers: list[MetricReader] = ()) -> None:
        self.prom_reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self.prom_reader, *readers],
            resource=Resource.create({"service.name": service_name}),
            views=[View(instrument_name="aifw.guard.duration",
                        aggregation=ExplicitBucketHistogramAggregation(GUARD_BUCKETS)),
                   View(instrument_name="aifw.upstream.duration",
                        aggregation=ExplicitBucketHistogramAggregation(UPSTREAM_BUCKETS)),
                   View(instrument_name="aifw.request.duration",
                        aggregation=ExplicitBucketHistogramAggregation(UPSTREAM_BUCKETS))],
            shutdown_on_exit=False,
        )
        meter = self.provider.get_meter("aifw")
        self.audit_source: Any = None
        self.requests = meter.create_counter(
            "aifw.requests", description="Exchanges by endpoint, status and decision.")
        self.blocks = meter.create_counter(
            "aifw.blocks", description="Blocked exchanges by guard and rule id.")
        self.tokens = meter.create_counter(
            "aifw.tokens", description="Tokens by user group, model and type (prompt/completion).")
        self.guard_duration = meter.create_histogram(
            "aifw.guard.duration", unit="s", description="Time spent in each guard per exchange.")
        self.upstream_duration = meter.create_histogram(
            "aifw.upstream.duration", unit="s", description="Upstream call duration.")
        self.request_duration = meter.create_histogram(
            "aifw.request.duration", unit="s", description="Whole exchange duration.")
        self.bypasses = meter.create_counter(
            "aifw.bypasses", description="Exchanges not fully inspected (a guard failed open or "
                                         "a body was not understood).")
        self.reloads = meter.create_counter(
            "aifw.policy.reloads", description="Policy reloads by result (ok/failed).")
        meter.create_observable_gauge(
            "aifw.audit.queue.depth", callbacks=[self._queue_depth],
            description="Audit records waiting for the writer.")
        meter.create_observable_counter(
            "aifw.audit.records.lost", callbacks=[self._records_lost],
            description="Audit records dropped because the sink failed (failureMode open).")
        meter.create_observable_gauge(
            "aifw.audit.sink.up", callbacks=[self._sink_up],
            description="1 when the audit sink is writable, 0 when it is failing.")

    def _queue_depth(self, options: CallbackOptions):
        src = self.audit_source
        return [Observation(src.queue_depth())] if src is not None else []

    def _records_lost(self, options: CallbackOptions):
        src = self.audit_source
        return [Observation(src.records_lost)] if src is not None else []

    def _sink_up(self, options: CallbackOptions):
        src = self.audit_source
        return [Observation(0 if src.broken else 1)] if src is not None else []

    def prometheus_text(self) -> bytes:
        return render_prometheus(self.prom_reader.get_metrics_data())

    def shutdown(self) -> None:
        self.provider.shutdown()
