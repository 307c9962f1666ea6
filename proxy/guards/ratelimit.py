"""Rate limits, token rates, token budgets and concurrency: reserve before forwarding, settle
against real usage afterwards. Counting lives in proxy/limits; this is the pipeline glue."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from ..exchange import Exchange
from ..limits.backend import BackendUnavailable
from ..limits.config import SCHEMA, compile_limits
from ..limits.limiter import Limiter, Reservation, build_limiter
from ..limits.refusals import rate_headers, refusal, unpriced
from ..limits.spend import Unpriced
from ..parsing.usage_request import ask_for_usage
from ..limits.tokens import estimate
from ..verdict import Finding, Verdict
from .base import CompileContext, Guard, GuardSpec, StreamText

log = logging.getLogger("aifw.limits")
NAME = "ratelimit"


class RateLimitGuard(Guard):
    name = NAME
    counts_traffic = True

    def __init__(self, limiter: Limiter, section: Mapping[str, Any] | None = None) -> None:
        self.limiter = limiter
        self.config = limiter.config
        self.section = dict(section or {})   # as written: proxy.runtime.check_workers reads it

    async def on_request(self, ex: Exchange) -> Verdict | None:
        try:
            charges, prompt, output = self.limiter.plan(ex)
        except Unpriced as exc:
            return unpriced(exc)
        if not charges:
            return None
        try:
            # in memory: answered at once, without a coroutine per request
            got = self.limiter.reserve_now(charges, ex.request_id)
            outcome, backend, fallback = got if got is not None else await self.limiter.reserve(
                charges, ex.request_id, use_fallback=self.failure_mode == "open")
        except BackendUnavailable:
            ex.mark_uninspected("ratelimit: limit store unreachable")
            ex.add_finding(Finding(NAME, ("ratelimit.backend_unavailable",), action="observed"))
            raise   # the core answers 503 guardrail_unavailable (failureMode closed)
        if fallback:
            ex.mark_uninspected("ratelimit: limit store unreachable, per-process fallback limits")
            ex.add_finding(Finding(NAME, ("ratelimit.fallback",), action="observed"))
        if not outcome.allowed:
            return refusal(charges, outcome.items, prompt + output)
        res = Reservation(charges, backend, ex.request_id, prompt, output, fallback=fallback)
        ex.state[NAME] = res
        ex.usage.reserved_tokens = prompt + output      # res.tokens, without the property call
        ex.response_headers.update(rate_headers(charges, outcome.items))
        if ex.stream and any(c.limit.kind in ("tokens", "budget", "spend") for c in charges):
            ask_for_usage(ex)
        return None

    async def on_complete(self, ex: Exchange) -> None:
        res: Reservation | None = ex.state.get(NAME)
        if res is None:
            return
        try:
            if not self.limiter.settle_now(ex, res):
                await self.limiter.settle(ex, res)
        except BackendUnavailable:
            # Token corrections are lost; concurrency slots expire with their lease.
            ex.mark_uninspected("ratelimit: usage not settled, limit store unreachable")


class RateLimitCutOffGuard(RateLimitGuard):
    """Variant with on_chunk: only policies with cutOffStreams pay for a per-chunk hook."""

    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        res: Reservation | None = ex.state.get(NAME)
        if res is None or res.settled:
            return text
        res.streamed_chars += len(text)
        if estimate(res.streamed_chars, self.config.chars_per_token) <= res.output_tokens:
            return text
        ex.add_finding(Finding(NAME, ("ratelimit.cutoff",), action="cut", direction="response",
                               counts={"reserved_output_tokens": res.output_tokens}))
        return Verdict(NAME, "The answer reached the output tokens reserved for it.",
                       rule_ids=("ratelimit.cutoff",), status=429, code="rate_limit_exceeded",
                       type="rate_limit_error", finish_reason="length")


def compile_guard(section: Mapping[str, Any], ctx: CompileContext) -> Guard:
    config = compile_limits(section, ctx.policy_dir)
    limiter = build_limiter(config, ctx.services)
    cls = RateLimitCutOffGuard if config.cut_off_streams else RateLimitGuard
    return cls(limiter, section)


SPEC = GuardSpec(
    name=NAME,
    schema=SCHEMA,
    compile=compile_guard,
    description="Request rates, token rates, token budgets and concurrency per user, key, group or globally.",
)
