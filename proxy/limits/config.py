"""The ``ratelimit`` policy section: its JSON Schema and its compiled, frozen form."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import secretenv
from ..globs import GlobSet
from .spec import RATE_PATTERN, SPEND_PATTERN, LimitSpecError, parse_budget, parse_rate, parse_spend

KINDS = ("requests", "tokens", "budget", "spend", "concurrency")
CALENDAR_KINDS = ("budget", "spend")   # counted per UTC day or month, settled from actual use
SCOPES = ("user", "key", "group", "global")
REDIS_URL_ENV = "AIFW_REDIS_URL"

_RATE_SCHEMA = {"type": "string", "pattern": RATE_PATTERN}
_RATES = {
    "oneOf": [_RATE_SCHEMA, {"type": "array", "items": _RATE_SCHEMA, "minItems": 1}],
}
_GLOBS = {"type": "array", "items": {"type": "string", "minLength": 1}}

LIMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "anyOf": [{"required": [k]} for k in KINDS],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$",
                 "description": "Stable id of this limit: names its counters and its rule id."},
        "description": {"type": "string", "description": "Free text for people."},
        "scope": {"enum": list(SCOPES),
                  "description": "Who shares one counter: each user, each key, a group, or everyone (default user)."},
        "groups": {**_GLOBS, "description": "scope group: only these groups (default: every group of the caller)."},
        "perMember": {"type": "boolean",
                      "description": "scope group: a counter per member instead of one pooled for the group."},
        "models": {**_GLOBS, "description": "Apply only to models matching these globs (e.g. gpt-4*)."},
        "routes": {**_GLOBS, "description": "Apply only to these endpoints (names such as chat.completions, embeddings, messages) or request paths (globs)."},
        "perModel": {"type": "boolean", "description": "A separate counter for each model."},
        "requests": {**_RATES, "description": "Request rates, e.g. 60/minute or [10/second, 5000/day]."},
        "tokens": {**_RATES, "description": "Token rates (prompt + completion), e.g. 100000/minute."},
        "budget": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                   "description": "Token quotas per UTC calendar day or month, e.g. 2000000/month."},
        "spend": {"oneOf": [{"type": "string", "pattern": SPEND_PATTERN},
                            {"type": "array", "items": {"type": "string", "pattern": SPEND_PATTERN}, "minItems": 1}],
                  "description": "Spend budgets in US dollars per UTC calendar day or month, e.g. 50USD/month: "
                                 "the request's highest possible cost is reserved before it is forwarded and "
                                 "settled from the provider's reported usage (prices: the cost section)."},
        "concurrency": {"type": "integer", "minimum": 1, "description": "Requests in flight at once."},
    },
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "backend": {"enum": ["memory", "redis"],
                    "description": "memory: one process only; redis: shared by every worker and replica."},
        "redis": {
            "type": "object",
            "additionalProperties": False,
            "description": "Redis connection (backend redis).",
            "properties": {
                "url": {"type": "string",
                        "description": f"redis:// or rediss:// (TLS) URL; default: the {REDIS_URL_ENV} environment variable."},
                "passwordEnv": {"type": "string", "description": "Environment variable holding the Redis password."},
                "keyPrefix": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]+$",
                              "description": "Prefix of every key (also its Cluster hash tag); default aifw."},
                "timeoutMs": {"type": "integer", "minimum": 1, "description": "Per-command timeout (default 500)."},
                "connectTimeoutMs": {"type": "integer", "minimum": 1, "description": "Connect timeout (default 500)."},
                "retryIntervalMs": {"type": "integer", "minimum": 10,
                                    "description": "While Redis is down, how often to try it again (default 1000)."},
                "tls": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "TLS settings for rediss:// URLs.",
                    "properties": {
                        "caFile": {"type": "string", "description": "CA bundle to verify the server."},
                        "certFile": {"type": "string", "description": "Client certificate (mutual TLS)."},
                        "keyFile": {"type": "string", "description": "Client key (mutual TLS)."},
                        "verify": {"type": "boolean", "description": "Verify the server certificate (default true)."},
                    },
                },
            },
        },
        "defaultMaxTokens": {"type": "integer", "minimum": 0,
                             "description": "Output tokens reserved when a request sets no max_tokens (default 4096)."},
        "charsPerToken": {"type": "number", "exclusiveMinimum": 0,
                          "description": "Characters per token for estimates (non-OpenAI models, streamed text; default 4)."},
        "cutOffStreams": {"type": "boolean",
                          "description": "End a stream with finish_reason length once it has used its reserved output tokens."},
        "concurrencyLeaseSeconds": {"type": "integer", "minimum": 1,
                                    "description": "A concurrency slot whose holder vanished is freed after this (default 600)."},
        "limits": {"type": "array", "items": LIMIT_SCHEMA, "description": "Every applicable limit must pass."},
    },
}


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    kind: str                       # requests | tokens | budget | spend | concurrency
    scope: str                      # user | key | group | global
    amount: int                     # spend: micro-dollars
    window: float = 0.0             # rates: seconds; concurrency: lease seconds
    period: str = ""                # budgets and spend: day | month
    text: str = ""                  # as written, for messages
    groups: frozenset[str] = frozenset()
    per_member: bool = False
    models: GlobSet = GlobSet.of(())
    routes: GlobSet = GlobSet.of(())
    per_model: bool = False


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = field(repr=False)         # may hold a password
    password: str | None = field(default=None, repr=False)
    key_prefix: str = "aifw"
    timeout: float = 0.5
    connect_timeout: float = 0.5
    retry_interval: float = 1.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    @property
    def identity(self) -> str:
        """Names the shared connection: same server and prefix, same backend object."""
        return f"{self.url}|{self.key_prefix}|{self.ca_file}|{self.cert_file}|{self.verify}"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    limits: tuple[Limit, ...]
    backend: str = "memory"
    redis: RedisSettings | None = None
    default_max_tokens: int = 4096
    chars_per_token: float = 4.0
    cut_off_streams: bool = False
    lease_seconds: float = 600.0
    key_prefix: str = "aifw"

    @property
    def counts_tokens(self) -> bool:
        return any(lim.kind in ("tokens", "budget", "spend") for lim in self.limits)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _resolve_path(path: str | None, policy_dir: str) -> str | None:
    if not path:
        return None
    return path if os.path.isabs(path) else os.path.join(policy_dir, path)


def compile_redis(section: Mapping[str, Any], policy_dir: str, env: Mapping[str, str] = os.environ) -> RedisSettings:
    url = section.get("url") or env.get(REDIS_URL_ENV)
    if not url:
        raise LimitSpecError(f"ratelimit: backend redis needs redis.url or ${REDIS_URL_ENV}")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise LimitSpecError("ratelimit: redis.url must start with redis://, rediss:// or unix://")
    password = None
    if section.get("passwordEnv"):
        password = secretenv.read(section["passwordEnv"], env)
        if password is None:
            raise LimitSpecError(f"ratelimit: environment variable {section['passwordEnv']} is not set")
    tls = section.get("tls") or {}
    return RedisSettings(
        url=url,
        password=password,
        key_prefix=section.get("keyPrefix", "aifw"),
        timeout=section.get("timeoutMs", 500) / 1000,
        connect_timeout=section.get("connectTimeoutMs", 500) / 1000,
        retry_interval=section.get("retryIntervalMs", 1000) / 1000,
        ca_file=_resolve_path(tls.get("caFile"), policy_dir),
        cert_file=_resolve_path(tls.get("certFile"), policy_dir),
        key_file=_resolve_path(tls.get("keyFile"), policy_dir),
        verify=tls.get("verify", True),
    )


def compile_limits(section: Mapping[str, Any], policy_dir: str = ".",
                   env: Mapping[str, str] = os.environ) -> LimitsConfig:
    """Compile a validated ``ratelimit`` section (defaults applied here)."""
    lease = float(section.get("concurrencyLeaseSeconds", 600))
    limits: list[Limit] = []
    seen: set[str] = set()
    for raw in section.get("limits", ()):
        name = raw["name"]
        if name in seen:
            raise LimitSpecError(f"ratelimit: two limits are named {name!r}")
        seen.add(name)
        scope = raw.get("scope", "user")
        if scope != "group" and (raw.get("groups") or raw.get("perMember")):
            raise LimitSpecError(f"ratelimit: limit {name!r}: groups/perMember need scope group")
        common = dict(
            scope=scope,
            groups=frozenset(raw.get("groups", ())),
            per_member=bool(raw.get("perMember", False)),
            models=GlobSet.of(raw.get("models")),
            routes=GlobSet.of(raw.get("routes")),
            per_model=bool(raw.get("perModel", False)),
        )
        try:
            for kind in ("requests", "tokens"):
                for text in _as_list(raw.get(kind, [])):
                    rate = parse_rate(text)
                    limits.append(Limit(name, kind, amount=rate.amount, window=rate.window, text=rate.text, **common))
            for text in _as_list(raw.get("budget", [])):
                budget = parse_budget(text)
                limits.append(Limit(name, "budget", amount=budget.amount, period=budget.period, text=budget.text, **common))
            for text in _as_list(raw.get("spend", [])):
                spend = parse_spend(text)
                limits.append(Limit(name, "spend", amount=spend.amount, period=spend.period, text=spend.text, **common))
        except LimitSpecError as exc:
            raise LimitSpecError(f"ratelimit: limit {name!r}: {exc}") from None
        if raw.get("concurrency"):
            limits.append(Limit(name, "concurrency", amount=int(raw["concurrency"]), window=lease,
                                text=f"{raw['concurrency']} in flight", **common))
    backend = section.get("backend", "memory")
    redis = compile_redis(section.get("redis") or {}, policy_dir, env) if backend == "redis" else None
    return LimitsConfig(
        limits=tuple(limits),
        backend=backend,
        redis=redis,
        default_max_tokens=int(section.get("defaultMaxTokens", 4096)),
        chars_per_token=float(section.get("charsPerToken", 4.0)),
        cut_off_streams=bool(section.get("cutOffStreams", False)),
        lease_seconds=lease,
        key_prefix=redis.key_prefix if redis else "aifw",
    )
