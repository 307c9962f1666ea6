"""A span per exchange, with child spans for guard hooks and the upstream call.

Spans are built after the fact from ``ex.spans`` (monotonic times, converted to epoch ns with
the exchange's start pair), so tracing costs nothing while the request is in flight. The
parent comes from the client's ``traceparent`` header when there is one. Attributes carry ids,
model, decision, rule ids and token counts: never prompt or answer text.
"""
from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..bounded import cap

_PROPAGATOR = TraceContextTextMapPropagator()


def _rule_ids(ex: Any) -> list[str]:
    rules: list[str] = []
    if ex.verdict is not None:
        rules.extend(ex.verdict.rule_ids)
    for f in ex.findings:
        for r in f.rule_ids:
            if r not in rules:
                rules.append(r)
    return rules


class ExchangeTracer:
    def __init__(self, service_name: str, processor: SpanProcessor) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("aifw")

    def record(self, ex: Any) -> None:
        wall0, mono0 = ex.started_wall, ex.started

        def ns(mono: float) -> int:
            return int((wall0 + (mono - mono0)) * 1e9)

        finished = ex.finished if ex.finished is not None else mono0
        parent = _PROPAGATOR.extract(ex.headers) if ex.headers else None
        endpoint = getattr(ex.endpoint, "name", None) or "unknown"
        usage = ex.usage
        attrs: dict[str, Any] = {
            "aifw.request_id": ex.request_id,
            "aifw.endpoint": endpoint,
            "aifw.decision": ex.decision,
            "aifw.rule_ids": _rule_ids(ex),
            "aifw.uninspected": len(ex.uninspected),
            "aifw.tokens.reserved": usage.reserved_tokens,
            "http.request.method": ex.method,
            "aifw.stream": bool(ex.stream),
        }
        optional = {
            "gen_ai.request.model": cap(ex.model),
            "http.response.status_code": ex.status,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "aifw.upstream": getattr(ex.upstream, "name", None),
            "aifw.policy.digest": getattr(ex.policy, "digest", None),
            "aifw.key_id": ex.identity.key_id if ex.identity else None,
        }
        attrs.update((k, v) for k, v in optional.items() if v is not None)
        root = self.tracer.start_span(f"aifw {endpoint}", context=parent, kind=SpanKind.SERVER,
                                      start_time=ns(mono0), attributes=attrs)
        if ex.decision == "error" or (ex.status or 0) >= 500:
            root.set_status(Status(StatusCode.ERROR, ex.error or f"status {ex.status}"))
        ctx = trace.set_span_in_context(root)
        served_end = None
        for name, start, end in ex.spans:
            if name.startswith("upstream") and ex.attempts:
                served_end = end          # the attempts below carry the upstream calls
                continue
            kind = SpanKind.CLIENT if name.startswith("upstream") else SpanKind.INTERNAL
            child = self.tracer.start_span(name, context=ctx, kind=kind, start_time=ns(start))
            child.end(end_time=ns(end))
        for number, attempt in enumerate(ex.attempts, 1):
            self._attempt_span(ctx, ns, number, attempt, served_end)
        root.end(end_time=ns(finished))

    def _attempt_span(self, ctx, ns, number: int, attempt: Any, served_end: float | None) -> None:
        """One CLIENT span per upstream attempt; the served one lasts until its answer ended."""
        attrs: dict[str, Any] = {"aifw.upstream": attempt.upstream, "aifw.attempt": number}
        if attempt.model:
            attrs["gen_ai.request.model"] = attempt.model
        if attempt.status is not None:
            attrs["http.response.status_code"] = attempt.status
        if attempt.error is not None:
            attrs["error.type"] = attempt.error
        end = served_end if attempt.served and served_end is not None else (attempt.ended or attempt.started)
        span = self.tracer.start_span(f"upstream {attempt.upstream}", context=ctx, kind=SpanKind.CLIENT,
                                      start_time=ns(attempt.started), attributes=attrs)
        if attempt.error is not None and not attempt.served:
            span.set_status(Status(StatusCode.ERROR, attempt.error))
        span.end(end_time=ns(end))

    def shutdown(self) -> None:
        self.provider.shutdown()
