"""Prompt-injection and jailbreak guard: rules + model on requests, leak checks on answers.

Request: every text slot whose role the policy scans is scored (rules + model, see
proxy/detection/). Large bodies are scanned in a worker thread so the event loop never stalls.
Response: canaries and exfiltration markup, whole answers and streams (only a suffix that could
still become a finding is held back, bounded by ``response.holdBack``).
Findings carry rule ids and scores only, never the matched text.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..detection.assess import Assessment, assess
from ..detection.escalation import (EscalationError, EscalationSettings, VerdictCache,
                                    apply_verdicts, compile_escalation, parse_verdicts,
                                    request_body, text_key)
from ..detection.context import CONTEXT_ROLES
from ..detection.response import StreamWindow, check
from ..detection.settings import SCHEMA, InjectionSettings, compile_settings
from ..detection.slotcache import cached_scorer, memo_for
from ..exchange import Exchange
# The classifier side call goes through the edge's HTTP client (pooled sessions, bounded time).
from ..verdict import Finding, Verdict
from .base import CompileContext, Guard, GuardSpec, StreamText
from ..lazyimport import lazy

# Used once serving (where aiohttp has imported it); `aifw policy check` never needs it.
asyncio = lazy("asyncio", globals(), "asyncio")

if TYPE_CHECKING:
    # The edge's client module imports aiohttp (~0.2 s): only a policy with escalation needs it,
    # so `aifw policy check` and guards without escalation never load it.
    from ..upstream import UpstreamPool

NAME = "injection"
# Above this many characters the scan runs in a thread: at roughly 0.2-0.5 ms per KB inline
# scanning would otherwise approach the 50 ms event-loop budget.
INLINE_CHARS = 16_000


class InjectionGuard(Guard):
    name = NAME

    def __init__(self, settings: InjectionSettings, escalation: EscalationSettings | None = None,
                 pool: UpstreamPool | None = None, cache: VerdictCache | None = None):
        self.settings = settings
        self.memo = memo_for(settings)     # slots judged before are not scanned again
        self.escalation, self.pool, self.cache = escalation, pool, cache

    def _action(self) -> str:
        return "would_block" if self.mode == "monitor" else "blocked"

    async def on_request(self, ex: Exchange) -> Verdict | None:
        # System/developer slots travel along even when not scanned: the context rules judge the
        # scanned slots against them (analysed once per request inside assess).
        slots = [(s.role, s.text) for s in ex.request_slots
                 if s.text and (s.role in self.settings.roles or s.role in CONTEXT_ROLES)]
        if not any(r in self.settings.roles for r, _ in slots):
            return None
        score = cached_scorer(self.memo, slots, ex.text_digest)
        if ex.trace is not None:     # judged offline (aifw scan): keep every slot's score
            score = ex.trace.scorer(self.settings, score)
        if sum(len(t) for _, t in slots) > INLINE_CHARS:
            result = await asyncio.to_thread(assess, self.settings, slots, score)
        else:
            result = assess(self.settings, slots, score)
        if result.timed_out:
            ex.mark_uninspected("injection: scan time bound reached")
        escalated = await self._escalate(ex, result) if self.escalation is not None else None
        if not result.rule_ids and not result.attack:
            return None
        finding = self._finding(result)
        if escalated:
            finding.counts["escalation"] = escalated
        ex.add_finding(finding)
        if not result.attack:
            return None
        # the edge names the rules (proxy.app._verdict_response), once for every guard
        return Verdict(guard=NAME, rule_ids=result.rule_ids,
                       message="Request blocked by the prompt-injection policy.")

    async def _escalate(self, ex: Exchange, result: Assessment) -> dict | None:
        """Slots in the policy's band go to the operator's classifier (cached by text hash, one
        batched call, bounded by the timeout); its verdicts decide them. A failure follows the
        guard's failure mode: closed raises (503), open keeps the local verdict, marked."""
        esc = self.escalation
        texts = list(dict.fromkeys(t for _, t, score in result.slot_scores if esc.in_band(score)))
        if not texts:
            return None
        prefix = f"{esc.upstream.base_url}{esc.path}|{esc.kind}|{esc.model}|"
        verdicts = {t: self.cache.get(text_key(prefix + t)) for t in texts}
        todo = [t for t, v in verdicts.items() if v is None]
        info = {"slots": len(texts), "cached": len(texts) - len(todo)}
        if todo:
            try:
                fresh = await asyncio.wait_for(self._classify(todo), esc.timeout)
            except Exception as exc:       # timeout, connection, HTTP status, unreadable answer
                if self.failure_mode != "open":
                    raise EscalationError(f"injection escalation to {esc.upstream.name} failed: "
                                          f"{type(exc).__name__}") from exc
                ex.mark_uninspected("injection: model escalation failed")
                return {**info, "failed": True}
            for t, v in zip(todo, fresh):
                verdicts[t] = v
                self.cache.put(text_key(prefix + t), v)
        info["attacks"] = apply_verdicts(result, esc, self.settings.detector.threshold, verdicts)
        return info

    async def _classify(self, texts: list[str]) -> list[bool]:
        from ..upstream import post_json
        esc = self.escalation
        answers = await asyncio.gather(*(post_json(self.pool, esc.upstream, esc.path, body, esc.timeout)
                                         for body in request_body(esc, texts)))
        return parse_verdicts(esc, list(answers), len(texts))

    def _finding(self, result: Assessment) -> Finding:
        return Finding(
            guard=NAME, rule_ids=result.rule_ids, score=result.score,
            action=self._action() if result.attack else "observed", direction="request",
            counts={"slots": result.slots_scanned, "chars": result.chars_scanned,
                    "flagged_roles": dict(result.roles_flagged),
                    **({} if result.max_model_probability is None else
                       {"model_probability": round(result.max_model_probability, 3)})},
        )

    def _response_block(self, ex: Exchange, rule_ids: tuple[str, ...]) -> Verdict:
        ex.add_finding(Finding(guard=NAME, rule_ids=rule_ids, score=float(len(rule_ids)),
                               action=self._action(), direction="response"))
        return Verdict(guard=NAME, rule_ids=rule_ids,
                       message="Response blocked by the prompt-injection policy.")

    async def on_response(self, ex: Exchange) -> Verdict | None:
        if not self.settings.response.active:
            return None
        hits: tuple[str, ...] = ()
        for slot in ex.response_slots:
            hits += tuple(h for h in check(slot.text, self.settings.response) if h not in hits)
        return self._response_block(ex, hits) if hits else None

    def _window(self, ex: Exchange, stream: StreamText) -> StreamWindow:
        windows = ex.state.setdefault(NAME, {})
        win = windows.get(stream)
        if win is None:
            win = windows[stream] = StreamWindow(self.settings.response.hold_back)
        return win

    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        if not self.settings.response.active:
            return text
        win = self._window(ex, stream)
        release, hits = win.push(text, self.settings.response)
        return self._stream_hits(ex, win, hits, release)

    def on_end(self, ex: Exchange, stream: StreamText) -> str | Verdict:
        win = (ex.state.get(NAME) or {}).get(stream)
        if win is None:
            return ""
        release, hits = win.finish(self.settings.response)
        return self._stream_hits(ex, win, hits, release)

    def _stream_hits(self, ex: Exchange, win: StreamWindow, hits: tuple[str, ...],
                     release: str) -> str | Verdict:
        if not hits:
            return release
        if self.mode == "monitor":
            # Monitor lets the answer through; release what was held so nothing is lost.
            ex.add_finding(Finding(guard=NAME, rule_ids=hits, score=float(len(hits)),
                                   action="would_block", direction="response"))
            ex.mark_monitored()
            return release + win.flush()
        win.flush()       # dropped: nothing more of this answer may reach the client
        return self._response_block(ex, hits)


def compile_guard(section: Mapping[str, Any], ctx: CompileContext) -> InjectionGuard:
    body = {k: v for k, v in section.items()
            if k not in ("enabled", "mode", "failureMode", "escalation")}
    escalation = compile_escalation(section.get("escalation"), ctx.upstreams)
    settings = compile_settings(body, ctx.policy_dir, ctx.sources, serve=not ctx.check)
    if escalation is None:
        return InjectionGuard(settings)
    from ..upstream import UpstreamPool
    # Pool and verdicts live in the process's services: a policy reload keeps both.
    pool = ctx.services.get_or_create("injection.escalation.pool", UpstreamPool)
    cache = ctx.services.get_or_create("injection.escalation.cache",
                                       lambda: VerdictCache(escalation.cache_size))
    return InjectionGuard(settings, escalation, pool, cache)


SPEC = GuardSpec(
    name=NAME, schema=SCHEMA, compile=compile_guard,
    description="Prompt-injection and jailbreak detection (rules as data + n-gram model), "
                "canary and exfiltration checks on answers.",
)
