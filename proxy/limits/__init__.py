"""Rate limits and token budgets: limit notation, token counting, in-memory and Redis backends.

The guard in proxy/guards/ratelimit.py wires this into the pipeline.
"""
from .backend import BackendUnavailable
from .clock import ManualClock, system_clock
from .config import SCHEMA, LimitsConfig, compile_limits
from .limiter import Limiter, Reservation, build_limiter
from .memory import MemoryBackend
from .workers import check_workers

__all__ = [
    "BackendUnavailable", "LimitsConfig", "Limiter", "ManualClock", "MemoryBackend",
    "RedisBackend", "Reservation", "SCHEMA", "build_limiter", "check_workers", "compile_limits",
    "system_clock",
]


def __getattr__(name: str):
    # redis.asyncio costs ~0.1 s to import: only policies with ``backend: redis`` pay for it.
    if name == "RedisBackend":
        from .redis_backend import RedisBackend
        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
