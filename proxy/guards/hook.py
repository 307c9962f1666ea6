"""Custom guard hook: an HTTP endpoint the operator runs judges the exchange's texts.

Each hook of the policy is called (proxy/hooks/contract.py: versioned JSON) before the request is
forwarded and/or before the answer reaches the client, and answers allow, block with a reason,
or modify with replacement texts, written back into the body like the PII guard's masks. A
streamed answer is held whole for an answer hook (the edge reads it to its end first), so a block
is an HTTP error and replacements go out as ordinary deltas. A call is bounded by the hook's
timeout, slot waits for its concurrency cap included; a timeout, an HTTP error or an answer outside
the contract fails closed (503 guardrail_unavailable) or, with ``failureMode: open``, lets the
exchange pass, recorded as bypassed. Texts are never logged; findings name the hook and its reason.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..exchange import Exchange
from ..hooks import contract
from ..hooks.config import SCHEMA, HookConfig, compile_hooks
from ..textslots import TextSlot
from ..verdict import Finding, Verdict
from .base import CompileContext, Guard, GuardSpec, StreamText
from ..lazyimport import lazy

# Used once serving (where aiohttp has imported it); `aifw policy check` never needs it.
asyncio = lazy("asyncio", globals(), "asyncio")

if TYPE_CHECKING:
    from ..upstream import UpstreamPool

log = logging.getLogger("aifw.hook")
NAME = "hook"
REPLACED = "hook.replaced"        # ex.state: StreamText -> replacement text of a held stream
DIRECTION = {"request": "request", "answer": "response"}


def _why(exc: BaseException) -> str:
    """What went wrong with a call, in words safe for logs and records (no texts, no headers)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, contract.HookAnswerError):
        return f"answer outside the contract: {exc}"
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    if isinstance(exc, ValueError):
        return "answer is not JSON"
    return f"unreachable ({type(exc).__name__})"


class HookGuard(Guard):
    """Hooks on requests only: answers (and streams) pass untouched."""

    name = NAME

    def __init__(self, hooks: tuple[HookConfig, ...], services: Any) -> None:
        self.hooks = hooks
        self.request_hooks = tuple(h for h in hooks if "request" in h.on)
        self.answer_hooks = tuple(h for h in hooks if "answer" in h.on)
        self._services = services
        self._pool: UpstreamPool | None = None
        self._gates: dict[str, asyncio.Semaphore] = {}

    async def on_request(self, ex: Exchange) -> Verdict | None:
        verdict = await self._judge(ex, self.request_hooks, "request", ex.request_slots)
        if any(s.changed for s in ex.request_slots):
            ex.body_changed = True
        return verdict

    # --- one direction, every hook in order ------------------------------------------------
    async def _judge(self, ex: Exchange, hooks: Sequence[HookConfig], direction: str,
                     slots: Sequence[TextSlot]) -> Verdict | None:
        for hook in hooks:
            # ids are positions in the direction's slot list: stable across hooks, and a later
            # hook sees what an earlier one replaced
            sent = [(i, s) for i, s in enumerate(slots) if s.text and hook.wants(s.role)]
            if not sent:
                continue
            decision = await self._call(ex, hook, direction, sent)
            if isinstance(decision, Verdict):
                return decision
            if decision is not None:
                verdict = self._apply(ex, hook, direction, decision, slots)
                if verdict is not None:
                    return verdict
        return None

    async def _call(self, ex: Exchange, hook: HookConfig, direction: str,
                    sent: list[tuple[int, TextSlot]]) -> contract.Decision | Verdict | None:
        """The hook's decision; on a failure, the fail-closed verdict or None (failed open)."""
        from ..upstream import post_json
        body = contract.request_body(ex, hook.name, direction, sent)
        start = time.monotonic()
        try:
            # the timeout bounds the wait for a slot under the concurrency cap too
            async with asyncio.timeout(hook.timeout):
                async with self._gate(hook):
                    answer = await post_json(self._client(), hook, hook.path, body, hook.timeout,
                                             dict(hook.headers))
            decision = contract.parse_answer(answer, {i for i, _ in sent})
        except Exception as exc:  # noqa: BLE001 - timeout, connection, HTTP status, garbage
            ex.hook_calls += ((hook.name, direction, "failed", time.monotonic() - start),)
            return self._failed(ex, hook, direction, _why(exc))
        ex.hook_calls += ((hook.name, direction, decision.action, time.monotonic() - start),)
        return decision

    def _client(self) -> UpstreamPool:
        if self._pool is None:
            # the edge's client (aiohttp) is imported by the first call, not by `policy check`;
            # one pool per process, kept across reloads
            from ..upstream import UpstreamPool
            self._pool = self._services.get_or_create("hook.pool", UpstreamPool)
        return self._pool

    def _gate(self, hook: HookConfig) -> asyncio.Semaphore:
        gate = self._gates.get(hook.name)
        if gate is None:
            # per process and endpoint, kept across reloads: a reload must not double the cap
            key = f"hook.gate.{hook.name}|{hook.base_url}{hook.path}|{hook.max_connections}"
            gate = self._gates[hook.name] = self._services.get_or_create(
                key, lambda: asyncio.Semaphore(hook.max_connections))
        return gate

    # --- decisions -------------------------------------------------------------------------
    def _record(self, ex: Exchange, hook: HookConfig, direction: str, rules: tuple[str, ...],
                action: str, counts: dict, reason: str = "") -> None:
        detail = {"hook": hook.name, "reason": reason} if reason else {"hook": hook.name}
        ex.add_finding(Finding(self.name, rules, action=action, direction=DIRECTION[direction],
                               counts=counts, detail=detail))

    def _apply(self, ex: Exchange, hook: HookConfig, direction: str, decision: contract.Decision,
               slots: Sequence[TextSlot]) -> Verdict | None:
        monitor = self.mode == "monitor"
        if decision.action == "allow":
            self._record(ex, hook, direction, (), "allowed", {})
            return None
        if decision.action == "modify":
            if not monitor:
                for sid, text in decision.texts.items():
                    slots[sid].set(text)
            self._record(ex, hook, direction, (f"hook.{hook.name}",),
                         "would_modify" if monitor else "modified", {"slots": len(decision.texts)})
            return None
        rule = f"hook.{hook.name}" + (f".{decision.rule}" if decision.rule else "")
        self._record(ex, hook, direction, (rule,), "would_block" if monitor else "blocked", {},
                     decision.reason)
        if monitor:
            ex.mark_monitored()
            return None
        what = "request" if direction == "request" else "answer"
        because = f": {decision.reason}" if decision.reason else "."
        return Verdict(self.name, f"The {what} was blocked by guard hook {hook.name!r}{because}", (rule,))

    def _failed(self, ex: Exchange, hook: HookConfig, direction: str, why: str) -> Verdict | None:
        log.warning("guard hook %s failed on the %s: %s", hook.name, direction, why)
        ex.mark_uninspected(f"hook {hook.name} ({direction}): {why}")
        rule = f"hook.{hook.name}.unavailable"
        # a fault either way (as the pipeline records a guard's exception, and aifw_guard_faults
        # counts); open or closed is in the outcome: bypassed (uninspected) or the 503 verdict
        self._record(ex, hook, direction, (rule,), "fault", {}, why)
        if (hook.failure_mode or self.failure_mode) == "open":
            return None
        return Verdict(self.name, f"Guard hook {hook.name!r} is unavailable ({why}); the "
                       f"{'request was not forwarded' if direction == 'request' else 'answer was withheld'}.",
                       (rule,), status=503, code="guardrail_unavailable", type="server_error")


class AnswerHookGuard(HookGuard):
    """Hooks on answers too: whole answers, and streams held whole (on_stream_answer)."""

    async def on_response(self, ex: Exchange) -> Verdict | None:
        return await self._judge(ex, self.answer_hooks, "answer", ex.response_slots)

    async def on_stream_answer(self, ex: Exchange, data: bytes) -> Verdict | None:
        from ..hooks.streams import answer_slots
        held = answer_slots(ex, data)
        verdict = await self._judge(ex, self.answer_hooks, "answer", [h.slot for h in held])
        replaced = {h.key: h.slot.text for h in held if h.slot.changed}
        if verdict is None and replaced:
            ex.state[REPLACED] = replaced
        return verdict

    # The held events are replayed through the stream guards: a replaced channel's deltas are
    # dropped and its replacement goes out as one delta where the channel ends.
    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        replaced = ex.state.get(REPLACED)
        return "" if replaced is not None and stream in replaced else text

    def on_end(self, ex: Exchange, stream: StreamText) -> str | Verdict:
        replaced = ex.state.get(REPLACED)
        return replaced.pop(stream, "") if replaced else ""


def compile_hook_guard(section: Mapping[str, Any], ctx: CompileContext) -> HookGuard:
    hooks = compile_hooks(section)
    cls = AnswerHookGuard if any("answer" in h.on for h in hooks) else HookGuard
    return cls(hooks, ctx.services)


SPEC = GuardSpec(NAME, SCHEMA, compile_hook_guard,
                 "Custom guard hooks: HTTP endpoints the operator runs allow, block or modify the "
                 "exchange's texts before the request is forwarded and/or before the answer is delivered.")
