"""The resilience keys of a policy: retry and breaker settings, their schema and compiled form.

``resilience.retry`` and ``resilience.breaker`` are the policy-wide defaults; a route's
``retry`` and an upstream's ``breaker`` override them key by key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..durations import DURATION_SCHEMA, parse_duration
from ..limits.config import SCHEMA as _LIMITS_SCHEMA

RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Retries and fallbacks of one exchange.",
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10,
                     "description": "Upstream attempts per exchange, fallbacks included (default: one per upstream of the route)."},
        "deadline": {**DURATION_SCHEMA, "description": "Time from the first attempt after which no new attempt starts and a "
                                                      "running one must have its answer's headers (default: none; each attempt has its upstream's timeouts)."},
        "backoff": {"type": "object", "additionalProperties": False,
                    "description": "Wait before trying an upstream again that already failed in this exchange: "
                                   "exponential with full jitter, at least what the provider's retry-after asks.",
                    "properties": {
                        "initial": {**DURATION_SCHEMA, "description": "First backoff ceiling (default 250ms)."},
                        "max": {**DURATION_SCHEMA, "description": "Largest backoff ceiling (default 5s)."}}},
        "maxRetryAfter": {**DURATION_SCHEMA, "description": "Longest retry-after honoured by waiting (default 10s); "
                                                            "a provider asking for longer is not tried again in this exchange."},
        "budget": {"type": "object", "additionalProperties": False,
                   "description": "Per upstream and process: retries (second tries of an upstream that failed in the "
                                  "same exchange) stay under this share of its requests, so a dying provider is not hammered.",
                   "properties": {
                       "ratio": {"type": "number", "minimum": 0, "maximum": 1, "description": "Retries per request (default 0.2)."},
                       "minRetries": {"type": "integer", "minimum": 0,
                                      "description": "Retries always allowed per 10 seconds (default 3), for low traffic."}}},
    },
}

BREAKER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Circuit breaker of an upstream: open after repeated failures, skip it (or answer 503 "
                   "upstream_unavailable) during the cool-down, then let real requests probe it.",
    "properties": {
        "enabled": {"type": "boolean", "description": "Turn the breaker on (default: on when a breaker section is given)."},
        "failures": {"type": "integer", "minimum": 1, "description": "Consecutive failures that open it (default 5)."},
        "errorRate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                      "description": "Share of failed requests in a window that opens it (default: off)."},
        "minRequests": {"type": "integer", "minimum": 1, "description": "Requests a window needs before errorRate counts (default 20)."},
        "window": {**DURATION_SCHEMA, "description": "Window of errorRate (default 60s)."},
        "slowCall": {**DURATION_SCHEMA, "description": "Answers whose headers take longer count as failures (default: off)."},
        "coolDown": {**DURATION_SCHEMA, "description": "Time it stays open before probes are let through (default 30s)."},
        "probes": {"type": "integer", "minimum": 1,
                   "description": "Requests let through at once when half-open; as many successes close it (default 1)."},
    },
}

SECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Retries, fallbacks and circuit breakers (docs/resilience.md).",
    "properties": {
        "retry": RETRY_SCHEMA,
        "breaker": BREAKER_SCHEMA,
        "store": {"enum": ["memory", "redis"],
                  "description": "Where breaker state lives: memory (each process its own, default) or redis (shared by replicas)."},
        "redis": {**_LIMITS_SCHEMA["properties"]["redis"],
                  "description": "Redis connection for store redis: the same keys as ratelimit.redis."},
    },
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int | None = None       # None: one per upstream of the route
    deadline: float | None = None
    backoff_initial: float = 0.25
    backoff_max: float = 5.0
    max_retry_after: float = 10.0
    budget_ratio: float = 0.2
    budget_min: int = 3


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5
    error_rate: float | None = None
    min_requests: int = 20
    window: float = 60.0
    slow_call: float | None = None
    cool_down: float = 30.0
    probes: int = 1


def _opt_duration(raw: Mapping[str, Any], key: str, default: float | None) -> float | None:
    return parse_duration(raw[key]) if key in raw else default


def compile_retry(raw: Mapping[str, Any] | None, base: RetryPolicy = RetryPolicy()) -> RetryPolicy:
    raw = raw or {}
    backoff = raw.get("backoff") or {}
    budget = raw.get("budget") or {}
    return RetryPolicy(
        attempts=int(raw["attempts"]) if "attempts" in raw else base.attempts,
        deadline=_opt_duration(raw, "deadline", base.deadline),
        backoff_initial=_opt_duration(backoff, "initial", base.backoff_initial),
        backoff_max=_opt_duration(backoff, "max", base.backoff_max),
        max_retry_after=_opt_duration(raw, "maxRetryAfter", base.max_retry_after),
        budget_ratio=float(budget.get("ratio", base.budget_ratio)),
        budget_min=int(budget.get("minRetries", base.budget_min)),
    )


def compile_breaker(raw: Mapping[str, Any] | None, base: BreakerPolicy | None) -> BreakerPolicy | None:
    """None: no breaker. An upstream's section merges over the policy-wide one."""
    if raw is None:
        return base
    if not raw.get("enabled", True):
        return None
    b = base or BreakerPolicy()
    return BreakerPolicy(
        failures=int(raw.get("failures", b.failures)),
        error_rate=float(raw["errorRate"]) if "errorRate" in raw else b.error_rate,
        min_requests=int(raw.get("minRequests", b.min_requests)),
        window=_opt_duration(raw, "window", b.window),
        slow_call=_opt_duration(raw, "slowCall", b.slow_call),
        cool_down=_opt_duration(raw, "coolDown", b.cool_down),
        probes=int(raw.get("probes", b.probes)),
    )


@dataclass(frozen=True, slots=True)
class ResilienceDefaults:
    retry: RetryPolicy
    breaker: BreakerPolicy | None


def compile_defaults(section: Mapping[str, Any] | None) -> ResilienceDefaults:
    section = section or {}
    return ResilienceDefaults(compile_retry(section.get("retry")),
                              compile_breaker(section.get("breaker"), None))
