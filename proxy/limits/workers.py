"""Refuse several worker processes with the in-memory backend: each would count on its own and
every limit would silently multiply by the number of workers."""
from __future__ import annotations

from typing import Any, Mapping


def _sections(policy_or_section: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    if "guards" not in policy_or_section and "scopes" not in policy_or_section:
        return [("ratelimit", policy_or_section)]
    base = (policy_or_section.get("guards") or {}).get("ratelimit")
    out = []
    if isinstance(base, Mapping):
        out.append(("guards.ratelimit", base))
    for scope in policy_or_section.get("scopes") or ():
        over = ((scope or {}).get("guards") or {}).get("ratelimit")
        if isinstance(over, Mapping):
            merged = {**(base or {}), **over}
            out.append((f"scope {scope.get('name', '?')}", merged))
    return out


def _compiled(policy: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """A compiled Policy: read the limits its ratelimit guards were compiled with."""
    out = []
    for scope in (getattr(policy, "base", None), *(getattr(policy, "scopes", ()) or ())):
        for guard in getattr(scope, "guards", ()) or ():
            config = getattr(guard, "config", None)
            if getattr(guard, "name", None) == "ratelimit" and config is not None:
                out.append((f"scope {scope.name}", {"backend": config.backend, "limits": config.limits}))
    return out


def check_workers(policy_section: Any, workers: int) -> str | None:
    """An error message when ``workers`` processes cannot share these limits, else None.

    Accepts the ``ratelimit`` guard section, the whole policy document (scopes included) or a
    compiled Policy.
    """
    if workers <= 1 or not policy_section:
        return None
    found = _sections(policy_section) if isinstance(policy_section, Mapping) else _compiled(policy_section)
    for where, section in found:
        if section.get("enabled") is False or not section.get("limits"):
            continue
        if section.get("backend", "memory") == "memory":
            return (f"{where}: the in-memory rate-limit backend counts per process, so {workers} "
                    f"workers would allow {workers} times every limit. Set ratelimit.backend: redis "
                    f"(with redis.url or AIFW_REDIS_URL), or run a single worker.")
    return None
