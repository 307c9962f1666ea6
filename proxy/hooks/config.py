"""The hook guard's policy section: the operator endpoints to call, compiled once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..durations import DURATION_SCHEMA, parse_duration
from ..textslots import ROLES

DIRECTIONS = ("request", "answer")

HOOK_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["name", "url"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                 "description": "Names the hook in rule ids (hook.<name>), findings and metrics."},
        "url": {"type": "string", "pattern": "^https?://",
                "description": "Endpoint that receives the JSON contract (POST), e.g. https://guard.internal/v1/check."},
        # not "on": YAML 1.1 reads an unquoted on: key as the boolean true
        "when": {"type": "array", "items": {"enum": list(DIRECTIONS)}, "minItems": 1, "uniqueItems": True,
                 "description": "When to call it: request (before forwarding), answer (before the answer "
                                "reaches the client; a streamed answer is then held whole). Default: [request]."},
        "timeout": {**DURATION_SCHEMA, "description": "Bound on one call, waiting for a free slot included "
                                                      "(default 2s); then the failure mode applies."},
        "maxConcurrency": {"type": "integer", "minimum": 1,
                           "description": "Calls in flight at once per process (default 32); more wait for a "
                                          "slot, within the timeout. Also the connection pool's size."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "Headers sent with every call; write secrets as ${ENV_VAR}."},
        "roles": {"type": "array", "items": {"enum": list(ROLES)},
                  "description": "Slot roles sent (default: all). A call with no slot left is not made."},
        "failureMode": {"enum": ["closed", "open"],
                        "description": "This hook unreachable, slow (timeout), answering an HTTP error or "
                                       "something not in the contract: closed blocks (503 guardrail_unavailable, "
                                       "default: the guard's failureMode), open lets the exchange pass, recorded "
                                       "as bypassed."},
    },
}

SCHEMA = {
    "type": "object", "required": ["hooks"],
    "properties": {
        "hooks": {"type": "array", "items": HOOK_SCHEMA, "minItems": 1,
                  "description": "Operator endpoints called in order; the first that blocks decides."},
    },
}


@dataclass(frozen=True, slots=True)
class HookConfig:
    name: str
    # the endpoint split as a side-call target (proxy.upstream.post_json): base_url + path
    base_url: str
    path: str
    on: frozenset[str]             # the directions it is called on (policy key "when")
    timeout: float
    max_connections: int           # the concurrency cap, and the pool's connection limit
    headers: tuple[tuple[str, str], ...]
    roles: frozenset[str] | None   # None: every role
    failure_mode: str | None       # None: the guard's
    api_key = None                 # post_json's target shape: headers carry any credential

    def wants(self, role: str) -> bool:
        return self.roles is None or role in self.roles


def compile_hook(raw: Mapping[str, Any]) -> HookConfig:
    parts = urlsplit(raw["url"])
    if not parts.hostname:
        raise ValueError(f"hook {raw['name']!r}: url has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return HookConfig(
        name=raw["name"], base_url=f"{parts.scheme}://{parts.netloc}", path=path,
        on=frozenset(raw.get("when", ("request",))), timeout=parse_duration(raw.get("timeout", "2s")),
        max_connections=int(raw.get("maxConcurrency", 32)),
        headers=tuple((str(k), str(v)) for k, v in (raw.get("headers") or {}).items()),
        roles=frozenset(raw["roles"]) if "roles" in raw else None,
        failure_mode=raw.get("failureMode"))


def compile_hooks(section: Mapping[str, Any]) -> tuple[HookConfig, ...]:
    hooks = tuple(compile_hook(raw) for raw in section.get("hooks", ()))
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise ValueError("hook names must be unique")
    return hooks
