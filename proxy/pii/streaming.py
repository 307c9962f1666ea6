"""Masking and restoring a streamed answer through a bounded hold-back window.

Each delta is appended to a buffer; only the part that can no longer change is passed on:
- the last ``hold_back`` characters stay (an entity up to that long, say a spaced IBAN or a
  phone number, may still be arriving), and so does the whitespace-free run that crosses that
  point (an email, key or placeholder is one run, and is held until it ends);
- a detected entity that crosses the cut moves the cut before it;
- when the answer is only restored, not scanned, just a trailing partial ``<PLACEHOLDER`` stays.
The buffer is bounded by ``max_hold``: past it the text is cut regardless of runs (never inside
a detected entity), and an unterminated private key is replaced and the rest of it swallowed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import regex

from .detector import Detector
from .masking import mask_spans, without_placeholders
from .operators import Keys
from .spans import Span
from .vault import PARTIAL_PLACEHOLDER, Vault

_LAST_SPACE = regex.compile(r"\s(?=\S*\Z)")
_PEM_END = regex.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# Already-emitted text kept as left context for detection ("Phone: " before a number).
CONTEXT_CHARS = 48


@dataclass(frozen=True, slots=True)
class StreamSettings:
    detector: Detector | None          # None: the answer is restored only, not scanned
    ops: Mapping[str, str]
    keys: Keys
    restore: bool
    hold_back: int = 32
    max_hold: int = 8192


@dataclass(slots=True)
class StreamMasker:
    settings: StreamSettings
    vault: Vault
    json_escape: bool = False           # a tool-call arguments stream: restored values go in JSON
    buf: str = ""
    tail: str = ""
    swallowing: bool = False
    masked: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)

    def feed(self, text: str) -> str:
        if self.swallowing:
            end = _PEM_END.search(text)
            if end is None:
                return ""
            self.swallowing = False
            text = text[end.end():]
        self.buf += text
        if self.settings.detector is None:
            return self._emit(self._placeholder_cut(), [])
        spans = self._spans()
        cut = self._cut(spans)
        if cut == 0 and len(self.buf) > self.settings.max_hold:
            # Bounded: cut regardless of whitespace runs, but never inside a detected entity.
            cut = len(self.buf) - self.settings.hold_back
            for s in spans:
                if s.start < cut < s.end:
                    cut = s.start
            if cut == 0 and spans and spans[0].start == 0:
                # One entity longer than the whole window: replace it now, even if unfinished,
                # and drop the rest of an unterminated private key as it arrives.
                first = spans[0]
                cut = first.end
                self.swallowing = (first.entity == "PRIVATE_KEY" and first.end == len(self.buf)
                                   and not _PEM_END.search(self.buf, first.start, first.end))
        if self.settings.restore:
            cut = min(cut, self._placeholder_cut())
        return self._emit(cut, spans)

    def finish(self) -> str:
        if self.swallowing:
            self.buf = ""
        spans = self._spans() if self.settings.detector is not None else []
        return self._emit(len(self.buf), spans)

    def _spans(self) -> list[Span]:
        work = self.tail + self.buf
        off = len(self.tail)
        spans = without_placeholders(work, self.settings.detector.detect(work))
        out = []
        for s in spans:
            if s.end <= off:
                continue
            # An entity begun in already-sent text: mask at least the part not yet sent.
            out.append(Span(max(s.start, off) - off, s.end - off, s.entity, s.score))
        blocked = {s.entity for s in out if self.settings.ops.get(s.entity) == "block"}
        self.blocked |= blocked
        return out

    def _cut(self, spans: list[Span]) -> int:
        cut = max(0, len(self.buf) - self.settings.hold_back)
        if 0 < cut < len(self.buf) and not self.buf[cut].isspace() and not self.buf[cut - 1].isspace():
            space = _LAST_SPACE.search(self.buf, 0, cut)
            cut = space.end() if space else 0
        for s in spans:
            if s.start < cut < s.end:
                cut = s.start
        return cut

    def _placeholder_cut(self) -> int:
        if "<" not in self.buf[-48:]:
            return len(self.buf)
        partial = PARTIAL_PLACEHOLDER.search(self.buf, max(0, len(self.buf) - 48))
        return partial.start() if partial else len(self.buf)

    def _emit(self, cut: int, spans: list[Span]) -> str:
        if cut <= 0:
            return ""
        out, self.buf = self.buf[:cut], self.buf[cut:]
        self.tail = (self.tail + out)[-CONTEXT_CHARS:]
        spans = [s for s in spans if s.end <= cut]
        if spans:
            res = mask_spans(out, spans, self.settings.ops, self.vault, self.settings.keys,
                             restorable=False, keep_known=self.settings.restore)
            out = res.text
            for k, v in res.counts.items():
                self.masked[k] = self.masked.get(k, 0) + v
        if self.settings.restore:
            out, counts = self.vault.restore(out, self.json_escape)
            for k, v in counts.items():
                self.restored[k] = self.restored.get(k, 0) + v
        return out
