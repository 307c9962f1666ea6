"""The policy's ``telemetry`` section: schema and compilation into a frozen TelemetryConfig."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "OpenTelemetry traces and metrics, Prometheus /metrics, operational logs.",
    "properties": {
        "otlpEndpoint": {"type": "string", "pattern": "^https?://",
                         "description": "OTLP/HTTP collector base URL, e.g. http://otel:4318 "
                                        "(traces go to /v1/traces, metrics to /v1/metrics). "
                                        "Default: $OTEL_EXPORTER_OTLP_ENDPOINT; unset: no export."},
        "serviceName": {"type": "string", "minLength": 1,
                        "description": "service.name resource attribute (default aifw)."},
        "metrics": {"type": "boolean",
                    "description": "Collect metrics and serve /metrics (default true)."},
        "traces": {"type": "boolean",
                   "description": "Export a span per exchange when an endpoint is set "
                                  "(default true)."},
        "exportInterval": {"type": "number", "exclusiveMinimum": 0,
                           "description": "Seconds between OTLP metric exports (default 30)."},
        "logFormat": {"enum": ["json", "console", "auto"],
                      "description": "Operational logs: json (production), console (readable), "
                                     "auto (console on a terminal, else json; the default)."},
    },
}


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    otlp_endpoint: str | None = None
    service_name: str = "aifw"
    metrics: bool = True
    traces: bool = True
    export_interval: float = 30.0
    log_format: str = "auto"


def compile_section(raw: Mapping[str, Any] | None, ctx: Any = None) -> TelemetryConfig:
    raw = raw or {}
    endpoint = raw.get("otlpEndpoint") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    return TelemetryConfig(
        otlp_endpoint=endpoint.rstrip("/") if endpoint else None,
        service_name=raw.get("serviceName", "aifw"),
        metrics=bool(raw.get("metrics", True)),
        traces=bool(raw.get("traces", True)),
        export_interval=float(raw.get("exportInterval", 30.0)),
        log_format=raw.get("logFormat", "auto"),
    )
