"""Telemetry: OpenTelemetry spans and metrics per exchange, Prometheus text, structlog setup.

Core contract: ``Telemetry(config)`` once per process (config = compiled ``telemetry``
section); ``observe(ex)`` once per finished exchange; ``count_reload(ok)`` after each policy
reload attempt; ``prometheus_text()`` for GET /metrics; ``setup_logging(fmt)`` at start-up;
``watch_audit(audit_log)`` to expose the audit queue; ``await close()`` at shutdown.
"""
from __future__ import annotations

from typing import Any

from ..bounded import ModelLabels
from ..durations import NOT_COMPUTED, upstream_seconds
from .config import TelemetryConfig, compile_section
from ..lazyimport import lazy

# Used once serving (where aiohttp has imported it); `aifw policy check` never needs it.
asyncio = lazy("asyncio", globals(), "asyncio")

# The OpenTelemetry SDK (~0.2 s to import) and structlog (~25 ms) are loaded by the Telemetry
# object that uses them, not by importing this package: `policy check` compiles the telemetry
# section without either.

__all__ = ["Telemetry", "TelemetryConfig", "compile_section"]


def _status_text(status: int | None) -> str:
    return str(status or 0)


class _StatusLabels(dict):
    """status -> its label (``"0"`` for none): a dict subscript, no Python call per lookup,
    for the statuses HTTP defines; any other is formatted when asked."""

    def __missing__(self, status: int | None) -> str:
        return _status_text(status)


_STATUS_LABELS = _StatusLabels({status: _status_text(status) for status in range(100, 600)})


class Telemetry:
    def __init__(self, config: TelemetryConfig | None = None, *, span_exporter: Any = None,
                 metric_exporter: Any = None) -> None:
        """``span_exporter`` / ``metric_exporter`` replace the OTLP exporters (tests)."""
        self.config = config = config or TelemetryConfig()
        self.metrics: Any = None
        self.tracer = None
        self._failed_once = False
        self.model_labels = ModelLabels()
        endpoint = config.otlp_endpoint
        if config.metrics:
            readers = []
            if metric_exporter is None and endpoint:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
                metric_exporter = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")
            if metric_exporter is not None:
                from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
                readers.append(PeriodicExportingMetricReader(
                    metric_exporter, export_interval_millis=config.export_interval * 1000))
            from .metrics import Metrics
            self.metrics = Metrics(config.service_name, readers)
        if config.traces and (span_exporter is not None or endpoint):
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
            from .tracing import ExchangeTracer
            if span_exporter is not None:
                processor = SimpleSpanProcessor(span_exporter)
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
                processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
            self.tracer = ExchangeTracer(config.service_name, processor)

    # --- wiring ----------------------------------------------------------------------------------
    def watch_audit(self, audit: Any) -> None:
        """Expose ``audit.queue_depth()``, ``audit.records_lost`` and ``audit.broken``."""
        if self.metrics is not None:
            self.metrics.audit_source = audit

    def watch_breakers(self, states: Any) -> None:
        """Expose ``states()`` (upstream -> breaker state) as a gauge."""
        if self.metrics is not None:
            self.metrics.breaker_source = states

    def watch_reachability(self, reachable: Any) -> None:
        """Expose ``reachable()`` (upstream -> its host answered the last probe) as a gauge."""
        if self.metrics is not None:
            self.metrics.reachability_source = reachable

    def watch_backends(self, up: Any) -> None:
        """Expose ``up()`` (backend -> working) as a gauge."""
        if self.metrics is not None:
            self.metrics.backend_source = up

    def setup_logging(self, fmt: str | None = None) -> str:
        from .logs import setup_logging
        return setup_logging(fmt or self.config.log_format)

    # --- per exchange ----------------------------------------------------------------------------
    def observe(self, ex: Any, upstream: Any = NOT_COMPUTED) -> None:
        """Spans and metrics for one finished exchange; never raises into the core.
        ``upstream``: ``durations.upstream_seconds(ex)``, when the caller computed it."""
        try:
            if self.metrics is not None:
                self._metrics(ex, upstream)
            if self.tracer is not None:
                self.tracer.record(ex)
        except Exception as exc:  # telemetry must never fail a request
            if not self._failed_once:
                self._failed_once = True
                import structlog
                structlog.get_logger("aifw.telemetry").error("telemetry_observe_failed", exc_info=exc)

    def _metrics(self, ex: Any, upstream: Any = NOT_COMPUTED) -> None:
        m = self.metrics
        endpoint = getattr(ex.endpoint, "name", None) or "unknown"
        m.requests.add(1, (endpoint, _STATUS_LABELS[ex.status], ex.decision))
        if ex.decision == "blocked" and ex.verdict is not None:
            for rule in ex.verdict.rule_ids or ("none",):
                m.blocks.add(1, (ex.verdict.guard, rule))
        usage = ex.usage
        if usage.prompt_tokens or usage.completion_tokens:
            model = self.model_labels.label(ex.model, ex.policy)   # bounded: no series per client string
            groups = ex.identity.groups if ex.identity is not None and ex.identity.groups else ("none",)
            for group in groups:
                if usage.prompt_tokens:
                    m.tokens.add(usage.prompt_tokens, (group, model, "prompt"))
                if usage.completion_tokens:
                    m.tokens.add(usage.completion_tokens, (group, model, "completion"))
        m.guard_duration.record_each(ex.guard_seconds.items())
        if upstream is NOT_COMPUTED:
            upstream = upstream_seconds(ex)
        if upstream is not None:
            m.upstream_duration.record(upstream, (getattr(ex.upstream, "name", None) or "unknown",))
        if ex.finished is not None:
            m.request_duration.record(ex.finished - ex.started, (endpoint,))
        if ex.uninspected:
            m.bypasses.add(1, (endpoint,))
        for hook, direction, outcome, seconds in ex.hook_calls:
            m.hook_calls.add(1, (hook, direction, outcome))
            m.hook_duration.record(seconds, (hook,))
        for finding in ex.findings:
            if finding.action == "fault":
                m.guard_faults.add(1, (finding.guard,))
        for attempt in ex.attempts:
            m.upstream_attempts.add(1, (attempt.upstream, _STATUS_LABELS[attempt.status]))
            if attempt.error is not None:
                m.upstream_errors.add(1, (attempt.upstream, attempt.error))
            if attempt.ended is not None and attempt.error != "breaker_open":
                m.attempt_duration.record(attempt.ended - attempt.started, (attempt.upstream,))

    def count_reload(self, ok: bool) -> None:
        if self.metrics is not None:
            self.metrics.reloads.add(1, ("ok" if ok else "failed",))
            self.metrics.reload_failing = not ok

    def prometheus_text(self) -> tuple[bytes, str]:
        from .metrics import PROMETHEUS_CONTENT_TYPE
        body = self.metrics.prometheus_text() if self.metrics is not None else b""
        return body, PROMETHEUS_CONTENT_TYPE

    async def close(self) -> None:
        """Flush and stop exporters (blocking SDK calls: run off the event loop)."""
        def shutdown() -> None:
            if self.tracer is not None:
                self.tracer.shutdown()
            if self.metrics is not None:
                self.metrics.shutdown()
        await asyncio.to_thread(shutdown)
