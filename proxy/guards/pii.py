"""PII: mask personal data and secrets in prompts, restore them in answers, mask what the model
produces itself; block where the policy says so. Findings carry entity counts, never values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..exchange import Exchange
from ..pii.config import SCHEMA, PiiConfig, compile_config
from ..pii.masking import mask_spans, without_placeholders
from ..pii.operators import presidio
from ..pii.spancache import SpanMemo
from ..pii.streaming import StreamMasker, StreamSettings
from ..pii.spans import Span
from ..pii.vault import Vault
from ..verdict import Finding, Verdict
from .base import CompileContext, Guard, GuardSpec, StreamText

# Slots whose text is JSON: a restored value must be escaped to keep it valid.
JSON_KINDS = ("tool_call_arguments", "tool_input")


@dataclass(slots=True)
class PiiState:
    """ex.state["pii"]: this exchange's vault and stream buffers."""
    vault: Vault = field(default_factory=Vault)
    streams: dict[StreamText, StreamMasker] = field(default_factory=dict)
    response_masked: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)
    guard: Any = None                 # the PiiGuard that judged this exchange (for the redactor)
    # Each whole answer text the client got -> (the answer as the model wrote it, its spans), for
    # the audit log's copy (None: two readings of one text, scan it again).
    audit_views: dict[str, tuple[str, list[Span]] | None] = field(default_factory=dict)


def _state(ex: Exchange) -> PiiState:
    state = ex.state.get("pii")
    if state is None:
        state = ex.state["pii"] = PiiState()
    return state


def _add(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


class PiiGuard(Guard):
    name = "pii"

    def __init__(self, config: PiiConfig) -> None:
        self.config = config
        cfg = config
        # Spans of texts seen before come from the process's scan cache (spancache.py).
        memos: dict[int, SpanMemo] = {}
        self._request, self._response, self._redactor = (
            None if d is None else memos.setdefault(id(d), SpanMemo(d))
            for d in (cfg.request_detector, cfg.response_detector, cfg.redactor_detector))
        self._stream_settings = StreamSettings(cfg.response_detector, cfg.response_ops, cfg.keys,
                                               cfg.restore, cfg.hold_back, cfg.max_hold)
        # When the redactor looks for exactly what answers are scanned for, the answer's scan
        # also gives the audit log's view of it (see _remember_audit_views).
        self._audit_from_answer = (cfg.response_detector is not None
                                   and cfg.redactor_detector == cfg.response_detector)

    def _block(self, ex: Exchange, entities: set[str], direction: str, counts: dict) -> Verdict:
        rules = tuple(f"pii.{e}" for e in sorted(entities))
        action = "blocked" if self.mode == "enforce" else "would_block"
        ex.add_finding(Finding(self.name, rules, score=1.0, action=action, direction=direction,
                               counts={e: counts.get(e, 1) for e in sorted(entities)}))
        where = "request" if direction == "request" else "answer"
        return Verdict(self.name, f"The {where} contains data the policy does not allow to pass: "
                       f"{', '.join(sorted(entities))}.", rules)

    async def on_request(self, ex: Exchange) -> Verdict | None:
        cfg = self.config
        state = _state(ex)
        state.guard = self
        slots = ex.request_slots
        vault = state.vault
        for slot in slots:
            vault.reserve(slot.text)
        if cfg.request_detector is None:
            return None
        masked: dict[str, int] = {}
        blocked: set[str] = set()
        blocked_counts: dict[str, int] = {}
        detect, digest = self._request.detect, ex.text_digest
        # Slots come in conversation order, so placeholders number by first appearance.
        for slot in slots:
            text = slot.text
            spans = detect(text, digest)
            if not spans:
                continue
            spans = without_placeholders(text, spans)
            if not spans:
                continue
            res = mask_spans(text, spans, cfg.request_ops, vault, cfg.keys, restorable=True)
            if res.blocked:
                blocked |= res.blocked
                _add(blocked_counts, {s.entity: 1 for s in spans if s.entity in res.blocked})
            if res.text != text:
                slot.set(res.text)
                ex.body_changed = True
            _add(masked, res.counts)
        if masked:
            ex.add_finding(Finding(self.name, tuple(f"pii.{e}" for e in sorted(masked)),
                                   action="masked", direction="request", counts=masked))
        if blocked:
            return self._block(ex, blocked, "request", blocked_counts)
        return None

    async def on_response(self, ex: Exchange) -> Verdict | None:
        cfg = self.config
        state = _state(ex)
        blocked: set[str] = set()
        scanned: list[tuple[Any, str, list]] = []     # (slot, answer as the model wrote it, spans)
        vault = state.vault
        for slot in ex.response_slots:
            text = slot.text
            if cfg.response_detector is not None:
                if cfg.restore and vault.holds_restorable(text):
                    # Restored before the client sees it, the text as the model wrote it never
                    # comes back in a conversation: scanned without the cache (no digest, no
                    # entry that would never be looked up).
                    spans = self._response.detector.detect(text)
                else:
                    spans = self._response.detect(text, ex.text_digest)
                if spans:
                    spans = without_placeholders(text, spans)
                scanned.append((slot, text, spans))
                if spans:
                    res = mask_spans(text, spans, cfg.response_ops, state.vault, cfg.keys,
                                     restorable=False, keep_known=cfg.restore)
                    blocked |= res.blocked
                    _add(state.response_masked, res.counts)
                    text = res.text
            slot.set(text)
        if blocked:
            return self._block(ex, blocked, "response", {})
        # Restoration last: every guard before this one and the audit log saw masked text.
        if cfg.restore and len(state.vault):
            for slot in ex.response_slots:
                restored, counts = state.vault.restore(slot.text, slot.kind in JSON_KINDS)
                slot.set(restored)
                _add(state.restored, counts)
        if self._audit_from_answer and ex.capture_text:
            self._remember_audit_views(state, scanned)
        return None

    def _remember_audit_views(self, state: PiiState, scanned: list[tuple[Any, str, list]]) -> None:
        """Keep each answer's own scan for ``redact``, which then needs no second one: the audit
        copy is the answer as the model wrote it with those spans masked by the redactor's
        operators and this exchange's vault, nothing restored. That is ``redact`` of the text the
        model wrote (as for a streamed answer, whose audit text is the deltas as they came), and
        values the answer restored stay placeholders, whether or not a scan would find them
        again. The masking itself waits for the audit, as before, so the vault numbers nothing
        earlier than it did (an answer a guard asks to be corrected is masked again)."""
        views = state.audit_views
        for slot, raw, spans in scanned:
            reading = (raw, spans)
            views[slot.text] = reading if views.get(slot.text, reading) == reading else None

    def _masker(self, ex: Exchange, stream: StreamText) -> StreamMasker:
        state = _state(ex)
        masker = state.streams.get(stream)
        if masker is None:
            masker = state.streams[stream] = StreamMasker(
                self._stream_settings, state.vault, json_escape=stream.channel.startswith("tool"))
        return masker

    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        masker = self._masker(ex, stream)
        return self._judged(ex, masker, masker.feed(text))

    def on_end(self, ex: Exchange, stream: StreamText) -> str | Verdict:
        masker = self._masker(ex, stream)
        return self._judged(ex, masker, masker.finish())

    def _judged(self, ex: Exchange, masker: StreamMasker, out: str) -> str | Verdict:
        if not masker.blocked or masker.reported:
            return out
        if self.mode == "monitor":
            # recorded once; the text goes on as a monitored whole answer's would
            masker.reported = True
            self._block(ex, set(masker.blocked), "response", {})
            ex.mark_monitored()
            return out
        return self._block(ex, set(masker.blocked), "response", {})

    async def on_complete(self, ex: Exchange) -> None:
        state = ex.state.get("pii")
        if state is None:
            return
        masked, restored = dict(state.response_masked), dict(state.restored)
        for masker in state.streams.values():
            _add(masked, masker.masked)
            _add(restored, masker.restored)
        if masked:
            ex.add_finding(Finding(self.name, tuple(f"pii.{e}" for e in sorted(masked)),
                                   action="masked", direction="response", counts=masked))
        if restored:
            ex.add_finding(Finding(self.name, (), action="restored", direction="response",
                                   counts=restored))

    def redact(self, ex: Exchange, text: str) -> str:
        """Mask ``text`` with this exchange's vault, restoring nothing (for the audit log). An
        answer this guard scanned is masked from that scan (``_remember_audit_views``)."""
        cfg = self.config
        if cfg.redactor_detector is None or not text:
            return text
        state = _state(ex)
        reading = state.audit_views.get(text)
        if reading is not None:
            text, spans = reading
        else:
            spans = self._redactor.detect(text, ex.text_digest)
            if spans:
                spans = without_placeholders(text, spans)
        if not spans:           # what mask_spans returns for no spans, without its result
            return text
        return mask_spans(text, spans, cfg.redactor_ops, state.vault, cfg.keys, restorable=False).text


def make_redactor(fallback: PiiGuard):
    """The audit log's view of a text: redacted by the pii guard that judged the exchange (its
    scope's settings and vault), or by the latest compiled one when pii never ran on it."""
    def redact(ex: Exchange, text: str) -> str:
        state = ex.state.get("pii")
        guard = state.guard if state is not None and state.guard is not None else fallback
        return guard.redact(ex, text)
    return redact


def compile_pii(section: Mapping[str, Any], ctx: CompileContext) -> PiiGuard:
    guard = PiiGuard(compile_config(section, ctx.policy_dir, ctx.sources.read))
    if not ctx.check:
        presidio()
    ctx.services.set("pii_redactor", make_redactor(guard))
    return guard


SPEC = GuardSpec(
    name="pii",
    schema=SCHEMA,
    compile=compile_pii,
    description="Masks personal data and secrets in prompts (replace/redact/mask/hash/encrypt/block), "
                "restores masked values in answers, masks what the model produces.",
)
