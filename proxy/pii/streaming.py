"""Masking and restoring a streamed answer through a bounded hold-back window.

Each delta is appended to a buffer; only the part that can no longer change is passed on:
- the whitespace-free run at the end stays until white space ends it (an email, key or
  placeholder is one run), and so do the words before it, within ``hold_back`` characters, that
  could belong to an entity spanning white space (a spaced IBAN, a phone number, a date: words
  with digits, symbols or two capitals, month names); prose words before them go out at once;
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

# A word that may be part of an entity spanning white space (phone, card, IBAN, date, key):
# it has a digit, a capital or a symbol, or is a word that sits inside such an entity.
_ENTITY_WORD = regex.compile(
    r"[\d@<>#+=:/_\\(\-]|\p{Lu}\S*\p{Lu}"
    r"|(?i:\A(?:x|ext\.?|of|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?)\Z)")
_LAST_RUN = regex.compile(r"\S+\Z")
_WORDS_BACK = regex.compile(r"\S+\s*\Z|\s+\Z")
_PEM_END = regex.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# Already-emitted text kept as left context for detection ("Phone: " before a number).
CONTEXT_CHARS = 48


def candidate_start(buf: str, span: int) -> int:
    """Where the part of ``buf`` that could still be the beginning of an entity starts: the
    last whitespace-free run when nothing follows it (an email, a key, a placeholder is one
    run), and before it the words, within ``span`` characters of the end, that could belong
    to an entity spanning white space."""
    run = _LAST_RUN.search(buf)
    cut = run.start() if run else len(buf)
    floor = len(buf) - span
    while cut > 0 and cut > floor:
        word = _WORDS_BACK.search(buf, 0, cut)
        if word is None or not _ENTITY_WORD.search(word.group().strip()) or word.start() < floor:
            break
        cut = word.start()
    return cut


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
    reported: bool = False              # a monitored block was recorded already

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
        cut = candidate_start(self.buf, self.settings.hold_back)
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
