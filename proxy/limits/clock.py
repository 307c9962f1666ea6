"""Injectable wall clock: limits use epoch seconds (budgets follow UTC calendar windows, and
replicas sharing Redis must agree on time), so tests move a ManualClock instead of sleeping."""
from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]

system_clock: Clock = time.time


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, now: float) -> None:
        self.now = float(now)
