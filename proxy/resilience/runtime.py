"""The ``resilience`` section at run time: the breaker store and the retry budget, both kept in
Services so that their state survives policy reloads."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..limits.config import compile_redis
from .breaker import MemoryBreakers
from .config import SECTION_SCHEMA
from .retry import RetryBudget

SCHEMA = SECTION_SCHEMA


@dataclass(frozen=True, slots=True)
class Resilience:
    breakers: Any                   # MemoryBreakers or RedisBreakers
    budget: RetryBudget
    # Breakers count in wall-clock time: replicas sharing Redis share no monotonic clock.
    now: Callable[[], float] = field(default=time.time)


def compile_section(section: Mapping[str, Any], ctx: Any) -> Resilience:
    services = getattr(ctx, "services", None)

    def shared(name: str, factory):
        return services.get_or_create(name, factory) if services is not None else factory()

    budget = shared("resilience.budget", RetryBudget)
    local = shared("resilience.breakers", MemoryBreakers)
    clock = (services.get("resilience.clock") if services is not None else None) or time.time
    if section.get("store", "memory") == "redis":
        from .redis_breaker import RedisBreakers
        settings = compile_redis(section.get("redis") or {}, getattr(ctx, "policy_dir", "."))
        breakers = shared(f"resilience.redis:{settings.identity}",
                          lambda: RedisBreakers(settings, local, services))
        return Resilience(breakers, budget, clock)
    return Resilience(local, budget, clock)
