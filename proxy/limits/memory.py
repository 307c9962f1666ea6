"""In-memory limiter backend for one process.

Rates use GCRA (a token bucket kept as one "theoretical arrival time" per counter): exact,
O(1) per counter and able to say exactly when a refused request would pass. Budgets are
counters per UTC calendar window. Reserve runs without an ``await`` inside, so it is atomic
on the event loop.
"""
from __future__ import annotations

import math
from typing import Sequence

from .backend import NEVER, ItemResult, Outcome
from .charges import Charge
from .config import CALENDAR_KINDS

CONCURRENCY_RETRY = 1.0   # nobody knows when a slot frees up: suggest a short wait
_PRUNE_EVERY = 4096
# Counts come from float clocks near 1.7e9 s: forgive rounding dust below 1% of a unit.
_DUST = 0.01


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self.tat: dict[str, float] = {}                    # rate key -> theoretical arrival time
        self.used: dict[str, list[float]] = {}             # budget key -> [used, window end]
        self.slots: dict[str, dict[str, float]] = {}      # concurrency key -> member -> lease end
        self._ops = 0

    # -- reserve ------------------------------------------------------------------------
    def check(self, charges: Sequence[Charge], member: str, now: float) -> Outcome:
        """Every charge is judged against the counters as they were before this request (two
        charges may share a counter: a limit with two equal windows), then, when all pass, all
        are applied. Runs on every request: kinds are tested by equality, the apply step gets
        (key, value) per counter of each kind from the first pass instead of working each kind
        out again, and the holders of a slot are walked only when a lease ran out.
        tests/limits/test_memory_check.py holds a plain spelling and compares the two over
        generated traffic."""
        self._ops += 1
        if self._ops % _PRUNE_EVERY == 0:
            self.prune(now)
        items: list[ItemResult] = []
        rates: list[tuple[str, float]] = []           # key -> new theoretical arrival time
        budgets: list[tuple[str, float, float]] = []  # key, cost, window end
        leases: list[tuple[str, float]] = []          # key -> this member's lease end
        ok = True
        for ch in charges:
            limit = ch.limit
            kind = limit.kind
            amount = limit.amount
            cost = ch.cost
            if kind == "concurrency":
                holders = self.slots.get(ch.key)
                if not holders:
                    count = 0
                elif min(holders.values()) > now:     # no lease ran out: nothing to drop
                    count = len(holders)
                else:
                    count = self._live(holders, now)
                if count >= amount:
                    items.append(ItemResult(False, 0, 0.0, CONCURRENCY_RETRY))
                    ok = False
                else:
                    items.append(ItemResult(True, amount - count - 1, 0.0, 0.0))
                    leases.append((ch.key, now + ch.param))
            elif kind == "budget" or kind == "spend":       # CALENDAR_KINDS
                used = self._budget_used(ch.key, now)
                left = amount - used
                reset = ch.param - now
                if cost > left:
                    items.append(ItemResult(False, max(0, int(left)), reset, NEVER if cost > amount else reset))
                    ok = False
                else:
                    items.append(ItemResult(True, int(left - cost), reset, 0.0))
                    budgets.append((ch.key, float(cost), ch.param))
            else:
                window = ch.param
                interval = window / amount
                tat = self.tat.get(ch.key, now)
                if tat < now:
                    tat = now
                new_tat = tat + cost * interval
                if cost > amount or new_tat - window > now:
                    retry = NEVER if cost > amount else new_tat - window - now
                    left = math.floor((window - (tat - now)) / interval + _DUST)
                    items.append(ItemResult(False, max(0, left), tat - now, retry))
                    ok = False
                else:
                    left = math.floor((window - (new_tat - now)) / interval + _DUST)
                    items.append(ItemResult(True, left if left > 0 else 0, new_tat - now, 0.0))
                    rates.append((ch.key, new_tat))
        if ok:
            tats = self.tat
            for key, new_tat in rates:
                tats[key] = new_tat
            if budgets:
                used_by = self.used
                for key, cost, end in budgets:
                    entry = used_by.get(key)
                    if entry is None:
                        used_by[key] = [cost, end]
                    else:
                        entry[0] += cost
            for key, end in leases:
                self.slots.setdefault(key, {})[member] = end
        return Outcome(ok, items)

    async def reserve(self, charges: Sequence[Charge], member: str, now: float) -> Outcome:
        return self.check(charges, member, now)

    # -- settle ---------------------------------------------------------------------------
    def adjust(self, charges: Sequence[Charge], deltas: Sequence[int], member: str, now: float) -> None:
        for ch, delta in zip(charges, deltas):
            kind = ch.limit.kind
            if kind == "concurrency":
                holders = self.slots.get(ch.key)
                if holders is not None:
                    holders.pop(member, None)
                    if not holders:
                        del self.slots[ch.key]
            elif not delta:
                continue
            elif kind in CALENDAR_KINDS:
                entry = self.used.get(ch.key)
                if entry is None:
                    if delta > 0:
                        self.used[ch.key] = [float(delta), ch.param]
                else:
                    entry[0] = max(0.0, entry[0] + delta)
            else:
                interval = ch.param / ch.limit.amount
                tat = self.tat.get(ch.key)
                if delta > 0:
                    self.tat[ch.key] = max(tat or now, now) + delta * interval
                elif tat is not None and tat > now:
                    # A refund cannot make the bucket fuller than full.
                    self.tat[ch.key] = max(now, tat + delta * interval)

    async def settle(self, charges: Sequence[Charge], deltas: Sequence[int], member: str,
                     now: float) -> None:
        self.adjust(charges, deltas, member, now)

    # -- housekeeping -------------------------------------------------------------------
    def _budget_used(self, key: str, now: float) -> float:
        entry = self.used.get(key)
        if entry is None:
            return 0.0
        if entry[1] <= now:
            del self.used[key]
            return 0.0
        return entry[0]

    @staticmethod
    def _live(holders: dict[str, float], now: float) -> int:
        expired = [m for m, end in holders.items() if end <= now]
        for m in expired:
            del holders[m]
        return len(holders)

    def prune(self, now: float) -> None:
        """Drop counters that are back to their initial state, so memory stays bounded."""
        for key in [k for k, tat in self.tat.items() if tat <= now]:
            del self.tat[key]
        for key in [k for k, (_, end) in self.used.items() if end <= now]:
            del self.used[key]
        for key in [k for k, h in self.slots.items() if not self._live(h, now)]:
            del self.slots[key]

    def size(self) -> int:
        return len(self.tat) + len(self.used) + len(self.slots)

    async def close(self) -> None:
        return None
