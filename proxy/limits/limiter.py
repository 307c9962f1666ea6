"""Reserve and settle one exchange's limits, choosing the backend and handling its outages."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .backend import Backend, BackendUnavailable, Outcome
from .charges import Charge, ChargePlanner
from .clock import Clock, system_clock
from .config import LimitsConfig
from .spend import Unpriced, actual_micro, reservation_micro
from .memory import MemoryBackend
from .tokens import TokenCounter, estimate, output_allowance, prompt_tokens

log = logging.getLogger("aifw.limits")


@dataclass(slots=True)
class Reservation:
    """What on_request reserved, kept in ``ex.state["ratelimit"]`` until on_complete."""

    charges: list[Charge]
    backend: Backend
    member: str
    prompt_tokens: int
    output_tokens: int
    fallback: bool = False
    streamed_chars: int = 0
    settled: bool = False

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


class Limiter:
    def __init__(self, config: LimitsConfig, primary: Backend, fallback: Backend | None = None,
                 counter: TokenCounter | None = None, clock: Clock = system_clock) -> None:
        self.config = config
        self.primary = primary
        self.fallback = fallback
        self.counter = counter
        self.clock = clock
        self.planner = ChargePlanner(config)

    def plan(self, ex) -> tuple[list[Charge], int, int]:
        """The charges this exchange makes, with its prompt and output token reservation.
        Raises Unpriced when a spend budget applies to a model without a price."""
        endpoint = ex.endpoint
        route = (endpoint.name if endpoint is not None else None, ex.path)
        charges = self.planner.build(ex.identity, ex.model, route, 0, self.clock())
        metered = [ch for ch in charges if ch.limit.kind in _METERED]
        if not metered or self.counter is None:
            return charges, 0, 0        # no token or spend limit applies: do not tokenize at all
        prompt = prompt_tokens(self.counter, ex, self.config.chars_per_token)
        output = output_allowance(ex.body, endpoint.kind if endpoint is not None else None,
                                  self.config.default_max_tokens)
        spend = None
        for ch in metered:
            if ch.limit.kind == "spend":
                if spend is None:
                    spend = reservation_micro(ex, prompt, output, ch.limit.name)
                ch.cost = spend
            else:
                ch.cost = prompt + output
        return charges, prompt, output

    async def reserve(self, charges: list[Charge], member: str, use_fallback: bool) -> tuple[Outcome, Backend, bool]:
        """Reserve on the primary backend; on an outage use the per-process fallback when
        allowed, else raise BackendUnavailable."""
        try:
            return await self.primary.reserve(charges, member, self.clock()), self.primary, False
        except BackendUnavailable:
            if not use_fallback or self.fallback is None:
                raise
        return await self.fallback.reserve(charges, member, self.clock()), self.fallback, True

    def reserve_now(self, charges: list[Charge], member: str) -> tuple[Outcome, Backend, bool] | None:
        """``reserve`` without a coroutine when the primary backend is the in-memory one, which
        answers at once and never fails (``MemoryBackend.reserve`` is its ``check``); None when
        the backend must be awaited."""
        primary = self.primary
        if type(primary) is MemoryBackend:
            return primary.check(charges, member, self.clock()), primary, False
        return None

    def actual_tokens(self, ex, res: Reservation) -> int:
        usage = ex.usage
        cpt = self.config.chars_per_token
        if usage.prompt_tokens is not None or usage.completion_tokens is not None:
            prompt = usage.prompt_tokens if usage.prompt_tokens is not None else res.prompt_tokens
            completion = (usage.completion_tokens if usage.completion_tokens is not None
                          else estimate(self._answer_chars(ex, res), cpt))
            return prompt + completion
        if ex.upstream_started is None or (ex.status is not None and ex.status >= 400):
            return 0        # never reached the provider, or it refused: nothing was spent
        return res.prompt_tokens + estimate(self._answer_chars(ex, res), cpt)

    @staticmethod
    def _answer_chars(ex, res: Reservation) -> int:
        chars = max(ex.usage.streamed_chars, res.streamed_chars)
        if not chars and ex.response_slots:
            chars = sum(len(s.text or "") for s in ex.response_slots)
        return chars

    async def settle(self, ex, res: Reservation) -> None:
        deltas = self._settlement(ex, res)
        if deltas is not None:
            await res.backend.settle(res.charges, deltas, res.member, self.clock())

    def settle_now(self, ex, res: Reservation) -> bool:
        """``settle`` without a coroutine when the reservation's backend is the in-memory one
        (``MemoryBackend.settle`` is its ``adjust``); False, with nothing done, when it must be
        awaited."""
        backend = res.backend
        if type(backend) is not MemoryBackend:
            return False
        deltas = self._settlement(ex, res)
        if deltas is not None:
            backend.adjust(res.charges, deltas, res.member, self.clock())
        return True

    def _settlement(self, ex, res: Reservation) -> list[int] | None:
        """The corrections ``settle`` sends to the backend, or None when it sends none; ``res``
        is settled from here on."""
        if res.settled:
            return None
        res.settled = True
        actual = self.actual_tokens(ex, res)
        spent = None
        deltas = []
        for ch in res.charges:
            kind = ch.limit.kind
            if kind == "spend":
                if spent is None:
                    spent = actual_micro(ex, res.prompt_tokens if actual else 0, max(0, actual - res.prompt_tokens))
                deltas.append(spent - ch.cost)
            else:
                deltas.append(actual - ch.cost if kind in ("tokens", "budget") else 0)
        if any(deltas) or any(ch.limit.kind == "concurrency" for ch in res.charges):
            return deltas
        # request-rate-only policies (or exact reservations) skip the second round trip
        return None


_METERED = ("tokens", "budget", "spend")


def build_limiter(config: LimitsConfig, services: Any = None, clock: Clock | None = None) -> Limiter:
    """Backends live in Services so counters and connections survive policy reloads."""
    def shared(name: str, factory):
        return services.get_or_create(name, factory) if services is not None else factory()

    if clock is None:
        clock = (services.get("ratelimit.clock") if services is not None else None) or system_clock
    counter = shared("ratelimit.tokenizer", TokenCounter) if config.counts_tokens else None
    if config.backend == "redis":
        from .redis_backend import RedisBackend   # lazily: redis is not imported without it
        settings = config.redis
        primary = shared(f"ratelimit.redis:{settings.identity}", lambda: RedisBackend(settings, services))
        fallback = shared("ratelimit.fallback", MemoryBackend)
    else:
        primary = shared("ratelimit.memory", MemoryBackend)
        fallback = None
    return Limiter(config, primary, fallback, counter, clock)
