"""Circuit breakers per upstream: closed -> open -> half-open -> closed.

closed: requests pass; N consecutive failures, or an error rate over a (tumbling) window, open it.
open: requests skip the upstream until the cool-down ends.
half-open: up to ``probes`` real requests go through; as many successes close it, one failure
opens it again. A probe whose answer never came back (a cancelled exchange) frees its slot
after a cool-down, so the breaker cannot stick half-open.

This is the per-process store; redis_breaker.py runs the same machine in Redis (one Lua
script) so that replicas share it. Both answer with :class:`Decision`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import BreakerPolicy

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_CODES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}   # the /metrics gauge value


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    probe: bool = False
    retry_after: float = 0.0       # refused: seconds until it may let a request through
    state: str = CLOSED


@dataclass(slots=True)
class BreakerState:
    state: str = CLOSED
    failures: int = 0              # consecutive
    window_start: float = 0.0
    window_total: int = 0
    window_failed: int = 0
    open_until: float = 0.0
    probes: int = 0                # in flight while half-open
    probe_lease_end: float = 0.0   # probes in flight are forgotten after this
    successes: int = 0             # probe successes while half-open

    def view(self, now: float) -> str:
        """The state a request arriving now would meet (an elapsed cool-down reads half-open)."""
        if self.state == OPEN and now >= self.open_until:
            return HALF_OPEN
        return self.state


def allow(st: BreakerState, policy: BreakerPolicy, now: float) -> Decision:
    if st.state == OPEN:
        if now < st.open_until:
            return Decision(False, retry_after=st.open_until - now, state=OPEN)
        st.state, st.probes, st.successes = HALF_OPEN, 0, 0
    if st.state == HALF_OPEN:
        if now >= st.probe_lease_end:
            st.probes = 0
        if st.probes >= policy.probes:
            return Decision(False, retry_after=max(0.0, min(1.0, st.probe_lease_end - now)), state=HALF_OPEN)
        st.probes += 1
        st.probe_lease_end = now + policy.cool_down
        return Decision(True, probe=True, state=HALF_OPEN)
    return Decision(True, state=CLOSED)


def _trip(st: BreakerState, policy: BreakerPolicy, now: float) -> None:
    st.state, st.open_until = OPEN, now + policy.cool_down
    st.failures = st.window_total = st.window_failed = st.probes = st.successes = 0
    st.window_start = now


def record(st: BreakerState, policy: BreakerPolicy, ok: bool, probe: bool, now: float) -> str:
    """Count one answer; returns the state after it."""
    if probe:
        if st.state != HALF_OPEN:
            return st.state            # another probe already decided
        st.probes = max(0, st.probes - 1)
        if not ok:
            _trip(st, policy, now)
        else:
            st.successes += 1
            if st.successes >= policy.probes:
                st.state, st.failures, st.successes = CLOSED, 0, 0
                st.window_start, st.window_total, st.window_failed = now, 0, 0
        return st.state
    if st.state != CLOSED:
        return st.state                # an answer from before it opened
    if now - st.window_start >= policy.window:
        st.window_start, st.window_total, st.window_failed = now, 0, 0
    st.window_total += 1
    if ok:
        st.failures = 0
        return st.state
    st.failures += 1
    st.window_failed += 1
    rate = policy.error_rate
    if st.failures >= policy.failures or (
            rate is not None and st.window_total >= policy.min_requests
            and st.window_failed >= rate * st.window_total):
        _trip(st, policy, now)
    return st.state


class MemoryBreakers:
    """Breaker state of every upstream, for this process."""

    name = "memory"

    def __init__(self) -> None:
        self.states: dict[str, BreakerState] = {}

    def _state(self, upstream: str) -> BreakerState:
        st = self.states.get(upstream)
        if st is None:
            st = self.states[upstream] = BreakerState()
        return st

    async def allow(self, upstream: str, policy: BreakerPolicy, now: float) -> Decision:
        return allow(self._state(upstream), policy, now)

    async def record(self, upstream: str, policy: BreakerPolicy, ok: bool, probe: bool, now: float) -> str:
        return record(self._state(upstream), policy, ok, probe, now)

    def view(self, upstream: str, now: float) -> str:
        st = self.states.get(upstream)
        return st.view(now) if st is not None else CLOSED

    async def close(self) -> None:
        return None
