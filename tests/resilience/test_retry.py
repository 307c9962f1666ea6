"""What is retried, where and when: classification, retry-after, backoff, the retry budget."""
from __future__ import annotations

import email.utils

import pytest

from proxy.resilience.config import RetryPolicy, compile_retry
from proxy.resilience.retry import RetryBudget, backoff, exception_failure, retry_after, status_failure


def test_insufficient_quota_is_final_and_not_the_upstreams_fault():
    body = b'{"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}'
    f = status_failure(429, {"retry-after": "1"}, body)
    assert f.final and not f.same_ok and not f.counts_against_upstream


def test_same_upstream_only_when_it_never_saw_the_request_or_said_so():
    assert exception_failure("connect").same_ok
    assert not exception_failure("timeout").same_ok and not exception_failure("broken").same_ok
    assert status_failure(429, {"retry-after": "2"}, b"").same_ok
    assert status_failure(503, {"x-should-retry": "true"}, b"").same_ok
    assert not status_failure(500, {}, b"").same_ok                       # it did not say
    assert not status_failure(503, {"retry-after": "1", "x-should-retry": "false"}, b"").same_ok
    for f in (status_failure(500, {}, b""), exception_failure("timeout")):
        assert not f.final and f.counts_against_upstream                   # another upstream may serve


def test_retry_after_forms():
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "3"}) == 3.0
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert retry_after({"retry-after": date}, now=1_000_000) == pytest.approx(10.0)
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_backoff_is_exponential_with_full_jitter_and_capped():
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4.0)
    assert [backoff(policy, n, rand=lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff(policy, 3, rand=lambda: 0.25) == 1.0


def test_retry_budget_caps_retries_per_upstream():
    policy = compile_retry({"budget": {"ratio": 0.2, "minRetries": 1}})
    budget = RetryBudget()
    for _ in range(10):
        budget.count("p", False, 100.0)
    allowed = 0
    while budget.allows("p", policy, 100.0):
        budget.count("p", True, 100.0)
        allowed += 1
    assert allowed == 3                                  # r < 0.2 * (10 + r)
    assert budget.allows("other", policy, 100.0)         # per upstream
    assert budget.allows("p", policy, 125.0)             # the window moved on


def test_a_span_per_attempt():
    from types import SimpleNamespace

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from proxy.exchange import Exchange
    from proxy.resilience.attempts import Attempt
    from proxy.telemetry.tracing import ExchangeTracer

    exporter = InMemorySpanExporter()
    tracer = ExchangeTracer("t", SimpleSpanProcessor(exporter))
    ex = Exchange("req-1", "POST", "/v1/chat/completions", "", {}, None, policy=SimpleNamespace(digest="d"))
    ex.attempts = [Attempt("primary", "gpt-4o", ex.started + 0.01, ex.started + 0.02, error="connect"),
                   Attempt("secondary", "gpt-4o", ex.started + 0.02, ex.started + 0.05, status=200, served=True)]
    ex.spans.append(("upstream", ex.started + 0.02, ex.started + 0.5))
    ex.finished = ex.started + 0.6
    tracer.record(ex)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"upstream primary", "upstream secondary", "aifw unknown"}
    assert spans["upstream primary"].attributes["error.type"] == "connect"
    assert spans["upstream secondary"].attributes["http.response.status_code"] == 200
    served = spans["upstream secondary"]
    assert (served.end_time - served.start_time) / 1e9 == pytest.approx(0.48, abs=0.01)
