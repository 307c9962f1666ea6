"""Routes: model globs -> an ordered list of upstream targets (fallbacks), each optionally
renaming the model, with the retry policy of the route."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..globs import GlobSet
from .config import RETRY_SCHEMA, RetryPolicy, compile_retry

TARGET_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "description": "Upstream name."},
        {"type": "object", "additionalProperties": False, "required": ["upstream"],
         "description": "Upstream name with the model name this upstream knows the model by.",
         "properties": {
             "upstream": {"type": "string", "description": "Upstream name."},
             "model": {"type": "string", "minLength": 1,
                       "description": "Model name sent to this upstream (e.g. an Azure deployment for gpt-4o)."}}},
    ],
}

ROUTE_PROPERTIES: dict[str, Any] = {
    "upstream": {"type": "string", "description": "Upstream name (one upstream, no fallback)."},
    "upstreams": {"type": "array", "items": TARGET_SCHEMA, "minItems": 1,
                  "description": "Upstreams in order of preference: the first serves, the next ones are fallbacks. "
                                 "All speak the same dialect (OpenAI, Azure OpenAI and OpenAI-compatible back each other)."},
    "retry": {**RETRY_SCHEMA, "description": "This route's retries (over resilience.retry)."},
}


@dataclass(frozen=True, slots=True)
class Target:
    upstream: Any                   # compiled Upstream
    model: str | None = None        # name sent to this upstream; None: the requested model


@dataclass(frozen=True, slots=True)
class Route:
    models: GlobSet
    targets: tuple[Target, ...]
    retry: RetryPolicy

    @property
    def dialect(self) -> str:
        return self.targets[0].upstream.dialect


def upstream_names(raw: Mapping[str, Any]) -> set[str]:
    """The upstream names a (schema-valid) route entry refers to."""
    items = [raw["upstream"]] if "upstream" in raw else raw.get("upstreams") or []
    return {item if isinstance(item, str) else item.get("upstream") for item in items}


def compile_route(doc, index: int, raw: Mapping[str, Any], upstreams: Mapping[str, Any],
                  retry: RetryPolicy, defined: tuple[str, ...] | None = None) -> Route | None:
    """A route, or None after reporting its problems on ``doc``. ``defined``: every upstream
    name the policy has (some may have problems of their own and be missing from ``upstreams``)."""
    path = ("routes", index)
    if ("upstream" in raw) == ("upstreams" in raw):
        doc.problem(path, "a route names either upstream or upstreams")
        return None
    items = [raw["upstream"]] if "upstream" in raw else raw["upstreams"]
    targets: list[Target] = []
    for i, item in enumerate(items):
        name, model = (item, None) if isinstance(item, str) else (item["upstream"], item.get("model"))
        where = path + (("upstream",) if "upstream" in raw else ("upstreams", i))
        up = upstreams.get(name)
        if up is None:
            doc.problem(where, f"unknown upstream {name!r}; defined: {', '.join(defined or upstreams)}")
            continue
        if targets and up.dialect != targets[0].upstream.dialect:
            doc.problem(where, f"upstream {name!r} speaks {up.dialect}, the route's first upstream "
                               f"{targets[0].upstream.name!r} speaks {targets[0].upstream.dialect}")
            continue
        targets.append(Target(up, model))
    if len(targets) != len(items):
        return None
    return Route(GlobSet.of(raw["models"]), tuple(targets), compile_retry(raw.get("retry"), retry))


def single(upstream, retry: RetryPolicy) -> Route:
    return Route(GlobSet.of(("*",)), (Target(upstream),), retry)


def passthrough_route(upstream) -> Route:
    """Uninspected paths (file uploads, ...) are sent once: aifw cannot tell what repeating
    them would do. Their upstream's breaker still applies."""
    return Route(GlobSet.of(("*",)), (Target(upstream),), RetryPolicy(attempts=1))


def check_keys(doc, routes: tuple[Route, ...] | list[Route], identity_mode: str) -> None:
    """In passthrough mode the client's key goes upstream, and a key is good for one provider:
    a route that falls back to another provider needs the proxy to hold each provider's key."""
    if identity_mode == "virtualKeys":
        return
    for i, route in enumerate(routes):
        providers = {t.upstream.provider for t in route.targets}
        if len(providers) > 1:
            doc.problem(("routes", i, "upstreams"),
                        f"this route falls back across providers ({', '.join(sorted(providers))}): "
                        "that needs identity.mode virtualKeys with each upstream's apiKey, since a "
                        "client's own key is valid for one provider only")
