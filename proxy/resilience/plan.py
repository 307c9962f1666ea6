"""The attempts of one exchange: which upstream next, after how long, and what the breakers and
the audit record learn from each answer. The edge (proxy/app.py) sends; this decides."""
from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from ..errors import ProxyError
from .attempts import Attempt
from .breaker import Decision
from .retry import Failure, backoff
from .routes import Route, Target


_ALLOWED = Decision(True)     # an upstream without a breaker: every attempt (frozen, shared)


class AttemptPlan:
    def __init__(self, ex: Any, route: Route, runtime: Any, clock=time.monotonic, sleep=asyncio.sleep) -> None:
        self.ex = ex
        self.route = route
        self.retry = route.retry
        self.runtime = runtime
        self.clock = clock
        self.sleep = sleep
        targets = route.targets
        self.limit = self.retry.attempts or len(targets)
        self.started = clock()
        self.deadline = self.started + self.retry.deadline if self.retry.deadline else None
        self._pos = 0
        self._made = 0
        self._retries = 0
        self._failures: dict[str, Failure] = {}     # upstream name -> its last failure here
        self._open_wait: float | None = None        # shortest wait among open breakers met
        self._probe = False
        self._skipped: set[str] = set()

    # -- choosing ---------------------------------------------------------------------------
    async def first(self) -> Target:
        target = await self.next()
        if target is None:
            wait = self._open_wait or 1.0
            raise ProxyError(503, "upstream_unavailable",
                             "Every upstream for this request is failing and temporarily skipped "
                             f"(circuit breaker open); try again in {math.ceil(wait)}s.",
                             headers={"retry-after": str(max(1, math.ceil(wait)))}, type="server_error")
        return target

    def first_at_once(self) -> Target | None:
        """The first target when nothing can hold it back or skip it (it has no circuit breaker,
        so no wait and no refusal): what ``first()`` returns, without its chain of coroutines,
        for the usual exchange. None: ask ``first()``."""
        targets = self.route.targets
        if self._made or self._pos or not self.limit or not targets:
            return None
        target = targets[0]
        if target.upstream.breaker is not None:
            return None
        self._pos = 1
        self._probe = False
        self.runtime.budget.count(target.upstream.name, False, self.clock())
        return target

    async def next(self) -> Target | None:
        """The next target to try, after any backoff; None when no attempt is left."""
        targets = self.route.targets
        if self._made >= self.limit:
            return None
        for _ in range(len(targets)):      # each target considered at most once per call
            target = targets[self._pos % len(targets)]
            self._pos += 1
            if await self._consider(target):
                return target
        return None

    async def _consider(self, target: Target) -> bool:
        name = target.upstream.name
        prior = self._failures.get(name)
        now = self.clock()
        wait = 0.0
        if prior is not None:
            if prior.final or not prior.same_ok:
                return False
            if not self.runtime.budget.allows(name, self.retry, now):
                return False
            wait = max(backoff(self.retry, self._retries), prior.retry_after or 0.0)
            if (prior.retry_after or 0.0) > self.retry.max_retry_after:
                return False
            if self.deadline is not None and now + wait >= self.deadline:
                return False
        elif self.deadline is not None and self._made and now >= self.deadline:
            return False
        if wait:
            await self.sleep(wait)
        decision = await self._allow(target)
        if not decision.allowed:
            self._open_wait = decision.retry_after if self._open_wait is None else min(self._open_wait, decision.retry_after)
            if name not in self._skipped:       # one record per upstream, however often it is met
                self._skipped.add(name)
                self.ex.attempts.append(Attempt(name, self._model(target), self.clock(), self.clock(),
                                                error="breaker_open"))
            return False
        self._probe = decision.probe
        if prior is not None:
            self._retries += 1
        self.runtime.budget.count(name, prior is not None, self.clock())
        return True

    async def _allow(self, target: Target) -> Decision:
        policy = target.upstream.breaker
        if policy is None:
            return _ALLOWED
        return await self.runtime.breakers.allow(target.upstream.name, policy, self.runtime.now())

    def _model(self, target: Target) -> str | None:
        return target.model or self.ex.model

    # -- one attempt --------------------------------------------------------------------------
    def start(self, target: Target) -> Attempt:
        """Aim the exchange at ``target`` and open its attempt record."""
        self._made += 1
        ex = self.ex
        ex.upstream = target.upstream
        ex.upstream_model = self._model(target)
        attempt = Attempt(target.upstream.name, ex.upstream_model, self.clock())
        attempt.probe = self._probe
        ex.attempts.append(attempt)
        return attempt

    def timeout(self, up: Any) -> float:
        """Time the attempt may take until its answer's headers: the upstream's connect and
        first-byte timeouts, cut to what the deadline leaves."""
        budget = up.timeouts.connect + up.timeouts.first_byte
        if self.deadline is not None:
            budget = min(budget, max(0.0, self.deadline - self.clock()))
        return budget

    def rebody(self, target: Target) -> bool:
        """True when this target needs the body with another model name."""
        return target.model is not None and isinstance(self.ex.body, dict) and \
            self.ex.body.get("model") not in (None, target.model)

    async def failed(self, attempt: Attempt, target: Target, failure: Failure) -> Target | None:
        """Record a failed attempt; the next target to try, or None (the failure stands)."""
        attempt.ended = self.clock()
        attempt.status = failure.status
        attempt.error = failure.kind
        self._failures[target.upstream.name] = failure
        if failure.counts_against_upstream:
            await self._record(attempt, target, ok=False)
        else:
            await self._record(attempt, target, ok=True)
        if failure.final:
            return None
        return await self.next()

    def served_at_once(self, attempt: Attempt, target: Target, status: int) -> bool:
        """``served()`` for a target without a circuit breaker (nothing to record, nothing to
        wait for); False when the target has one: ask ``served()``."""
        if target.upstream.breaker is not None:
            return False
        self._mark_served(attempt, status)
        return True

    def _mark_served(self, attempt: Attempt, status: int) -> bool:
        """The attempt's answer goes to the client; False when the attempt was recorded as
        failed already (a 5xx/429 that was the last chance), so nothing is left to record."""
        attempt.served = True
        attempt.status = status
        if attempt.error is not None:
            return False
        attempt.ended = self.clock()
        return True

    async def served(self, attempt: Attempt, target: Target, status: int) -> None:
        """The attempt's answer goes to the client. A 5xx/429 that was the last chance was
        recorded as failed already; a slow success counts as a failure for the breaker."""
        if not self._mark_served(attempt, status):
            return
        policy = target.upstream.breaker
        slow = policy is not None and policy.slow_call is not None and \
            attempt.ended - attempt.started > policy.slow_call
        if slow:
            attempt.error = "slow"
        await self._record(attempt, target, ok=not slow)

    async def _record(self, attempt: Attempt, target: Target, ok: bool) -> None:
        policy = target.upstream.breaker
        if policy is not None:
            await self.runtime.breakers.record(target.upstream.name, policy, ok, attempt.probe, self.runtime.now())
