"""Breaker states for /readyz and /metrics, read from the current policy's breaker store."""
from __future__ import annotations

from typing import Any

from .breaker import OPEN


def breaker_states(policy: Any) -> dict[str, str]:
    """upstream name -> closed | half_open | open, for upstreams that have a breaker."""
    runtime = policy.sections.get("resilience")
    if runtime is None:
        return {}
    now = runtime.now()
    return {name: runtime.breakers.view(name, now)
            for name, up in policy.upstreams.items() if up.breaker is not None}


def any_route_serves(policy: Any, states: dict[str, str]) -> bool:
    """Ready while some route has an upstream whose breaker is not open (an elapsed cool-down
    reads half-open: a replica taken out of service could otherwise never probe its way back)."""
    routes = (*policy.routes, *policy.default_routes.values())
    return any(states.get(t.upstream.name) != OPEN for route in routes for t in route.targets)
