"""The policy's JSON Schema, assembled from the core's keys, each guard's and each section's.

``aifw policy schema`` prints it; policies/policy.schema.json is that output, and a test keeps the
two equal, so editors always validate against what the proxy really accepts.
"""
from __future__ import annotations

import copy
from typing import Any

from ..durations import DURATION_SCHEMA, SIZE_SCHEMA
from ..guards import GUARD_SPECS
from ..guards.base import COMMON_PROPERTIES
from ..resilience.config import BREAKER_SCHEMA
from ..resilience.routes import ROUTE_PROPERTIES
from .sections import SECTION_SPECS

SCHEMA_ID = "https://aifw.dev/schemas/policy.schema.json"

_GLOBS = {"type": "array", "items": {"type": "string", "minLength": 1},
          "description": "Glob patterns (fnmatch: *, ?, [..])."}


def _obj(props: dict[str, Any], description: str = "", required: list[str] | None = None) -> dict:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if description:
        out["description"] = description
    if required:
        out["required"] = required
    return out


TIMEOUTS = _obj({
    "connect": {**DURATION_SCHEMA, "description": "TCP/TLS connect timeout (default 10s)."},
    "firstByte": {**DURATION_SCHEMA, "description": "Time until the upstream's response headers arrive (default 120s)."},
    "streamIdle": {**DURATION_SCHEMA, "description": "Longest silence inside a streamed answer (default 120s). Streams have no total timeout."},
    "total": {**DURATION_SCHEMA, "description": "Total time for a non-streamed answer (default 600s)."},
}, "Upstream timeouts.")

UPSTREAM = _obj({
    "provider": {"enum": ["openai", "azure", "anthropic", "openai-compatible"],
                 "description": "The wire dialect the upstream speaks."},
    "baseUrl": {"type": "string", "pattern": "^https?://", "description":
                "Base URL as the provider's SDK takes it: https://api.openai.com/v1, "
                "https://api.anthropic.com, https://RESOURCE.openai.azure.com."},
    "apiKey": {"type": "string", "description": "Provider key the proxy sends in virtualKeys mode "
               "(write ${ENV_VAR}; never the literal key)."},
    "apiVersion": {"type": "string", "description": "Azure api-version used when an OpenAI-style path is routed to Azure."},
    "timeouts": TIMEOUTS,
    "maxConnections": {"type": "integer", "minimum": 1, "description": "Connection pool size (default 256)."},
    "breaker": {**BREAKER_SCHEMA, "description": "This upstream's circuit breaker (over resilience.breaker)."},
}, "An upstream provider.", required=["provider", "baseUrl"])


def guard_schema(name: str, partial: bool = False) -> dict:
    spec = next(s for s in GUARD_SPECS if s.name == name)
    schema = copy.deepcopy(dict(spec.schema))
    schema.setdefault("type", "object")
    schema["additionalProperties"] = False
    props = schema.setdefault("properties", {})
    for key, value in COMMON_PROPERTIES.items():
        props.setdefault(key, value)
    if spec.description:
        schema.setdefault("description", spec.description)
    if partial:
        schema.pop("required", None)
    return schema


def _guards(partial: bool) -> dict:
    return _obj({spec.name: guard_schema(spec.name, partial) for spec in GUARD_SPECS},
                "Guards, in request order (response hooks run in reverse order).")


def _section(spec, partial: bool) -> dict:
    schema = copy.deepcopy(dict(spec.schema))
    if partial:
        schema.pop("required", None)
    return schema


def build_schema() -> dict:
    scope = _obj({
        "name": {"type": "string", "description": "A name for logs and audit records."},
        "match": _obj({
            "groups": {**_GLOBS, "description": "Caller groups (any matches)."},
            "users": {**_GLOBS, "description": "Users (any matches)."},
            "keys": {**_GLOBS, "description": "Key ids, names or fingerprints (any matches)."},
            "models": {**_GLOBS, "description": "Requested models (any matches)."},
            "routes": {**_GLOBS, "description": "Endpoint names such as chat.completions, or request paths."},
        }, "Every criterion given must match."),
        "guards": _guards(partial=True),
        **{spec.name: copy.deepcopy(dict(spec.scope_schema)) for spec in SECTION_SPECS if spec.scope_schema},
    }, "Overrides for matching exchanges; the first matching scope applies.", required=["match"])

    props: dict[str, Any] = {
        "$schema": {"type": "string"},
        "version": {"const": 1, "description": "Policy format version."},
        "name": {"type": "string", "description": "Policy name, recorded in every audit record."},
        "description": {"type": "string", "description": "Free text for humans."},
        "mode": {"enum": ["enforce", "monitor"], "description":
                 "enforce: apply decisions. monitor: decide and record, but let everything through."},
        "failureMode": {"enum": ["closed", "open"], "description":
                        "When a guard fails: closed answers 503 guardrail_unavailable (default); open lets the exchange through, recorded as uninspected."},
        "server": _obj({
            "host": {"type": "string", "description": "Listen address (default 127.0.0.1)."},
            "port": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "Listen port (default 8080)."},
            "maxBodyBytes": {**SIZE_SCHEMA, "description": "Largest request body read at all (default 10MiB); larger gets 413."},
            "maxHeaderBytes": {"type": "integer", "minimum": 1024, "description": "Largest request header line or field (default 16384)."},
            "headerTimeout": {**DURATION_SCHEMA, "description": "Time a client may take to send request headers (default 10s)."},
            "bodyTimeout": {**DURATION_SCHEMA, "description": "Time a client may take to send the request body (default 30s)."},
            "keepAlive": {**DURATION_SCHEMA, "description": "Idle keep-alive timeout (default 30s)."},
            "shutdownGrace": {**DURATION_SCHEMA, "description": "Time given to running streams on shutdown (default 30s)."},
            "trustForwardedFor": {"type": "boolean", "description": "Take the client address from X-Forwarded-For (behind a trusted load balancer)."},
            "readinessToken": {"type": "string", "description":
                               "Bearer token that shows operators /readyz detail: policy, reloads, last reload error, "
                               "backend problems (write ${AIFW_READINESS_TOKEN}; at least 16 characters). "
                               "Without it, or without the header, /readyz answers status only."},
            "maxInspectedResponseBytes": {**SIZE_SCHEMA, "description":
                                          "Largest non-streamed upstream answer read and inspected, after decompression (default 64MiB)."},
            "oversizedResponse": {"enum": ["block", "pass"], "description":
                                  "A larger answer on an inspected endpoint: block (502 upstream_error, default) or pass it through uninspected, recorded as bypassed."},
            "upstreamProbeInterval": {**DURATION_SCHEMA, "description":
                                      "How often each upstream host is checked for /readyz and /metrics with a TCP connect "
                                      "(and TLS handshake), never a provider call (default 30s; 0 turns it off; at least 1s)."},
        }, "Listener settings."),
        "identity": _obj({
            "mode": {"enum": ["passthrough", "virtualKeys"], "description":
                     "passthrough: forward the client's provider key, identify callers by a keyed fingerprint. "
                     "virtualKeys: clients use aifw-issued keys; the proxy holds the provider keys."},
            "keysFile": {"type": "string", "description": "Keys file for virtualKeys (relative to the policy file)."},
            "fingerprintSecret": {"type": "string", "description": "Secret keying caller fingerprints (write ${AIFW_FINGERPRINT_SECRET})."},
            "userHeader": {"type": "string", "description": "Header a trusted key uses to assert the end user (default x-aifw-user)."},
            "trustPassthroughUsers": {"type": "boolean", "description":
                                      "In passthrough mode, accept end-user assertions (user field, user header) from any caller (default false)."},
            "allowAnonymous": {"type": "boolean", "description": "passthrough: forward requests that carry no key at all (default false)."},
        }, "How callers are identified."),
        "upstreams": {"type": "object", "minProperties": 1, "additionalProperties": UPSTREAM,
                      "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"},
                      "description": "Named upstream providers."},
        "routes": {"type": "array", "items": _obj({
            "models": {**_GLOBS, "description": "Model globs routed to the upstream."},
            **ROUTE_PROPERTIES,
        }, required=["models"]), "description":
            "Model routing, first match wins, among upstreams that speak the endpoint's dialect."},
        "passthrough": _obj({
            "paths": {**_GLOBS, "description": "Paths forwarded without inspection (e.g. /v1/files*)."},
            "upstream": {"type": "string", "description": "Upstream for these paths (default: the first OpenAI-dialect upstream)."},
        }, "Paths forwarded uninspected; everything else unknown gets 404."),
        "unrecognizedBody": {"enum": ["block", "pass"], "description":
                             "A body the parser cannot read: block (400, default) or pass uninspected."},
        "guards": _guards(partial=False),
        "scopes": {"type": "array", "items": scope, "description": "Scoped overrides; first match wins."},
    }
    for spec in SECTION_SPECS:
        props[spec.name] = _section(spec, partial=False)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "aifw policy",
        **_obj(props, "An aifw policy file.", required=["version", "upstreams"]),
    }
