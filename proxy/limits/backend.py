"""What a limiter backend answers, shared by the in-memory and the Redis backend."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from ..errors import ReportedOutage
from .charges import Charge

NEVER = math.inf     # retry_after when waiting cannot help (the request exceeds the limit itself)


class BackendUnavailable(ReportedOutage, RuntimeError):
    """The shared backend cannot be reached; the guard applies the failure mode. The backend
    logs the outage when it starts and when it ends, not per request."""


@dataclass(slots=True)
class ItemResult:
    allowed: bool
    remaining: int        # units left after this request (or before it, when refused)
    reset: float          # seconds until the counter is back to full (budgets: window end)
    retry_after: float    # seconds until this request could pass (0 when allowed; NEVER)


@dataclass(slots=True)
class Outcome:
    allowed: bool
    items: list[ItemResult] = field(default_factory=list)


class Backend(Protocol):
    name: str

    async def reserve(self, charges: Sequence[Charge], member: str, now: float) -> Outcome:
        """Check every charge; apply all of them only when all pass (atomically)."""

    async def settle(self, charges: Sequence[Charge], deltas: Sequence[int], member: str,
                     now: float) -> None:
        """Correct token charges by ``deltas`` (actual - reserved) and free concurrency slots."""

    async def close(self) -> None: ...
