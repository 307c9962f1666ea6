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
from typing import Callable, Mapping

import regex

from .detector import BUILTIN_ENTITIES, Detector
from .masking import mask_spans, without_placeholders
from .operators import Keys
from .recognizers.birthdate import BIRTH_STEMS
from .spans import Span
from .vault import PARTIAL_PLACEHOLDER, Vault

# A word that may be part of an entity spanning white space (phone, card, IBAN, date, key):
# it has a digit, a capital or a symbol, or is a word that sits inside such an entity.
_ENTITY_WORD = regex.compile(r"[\d@<>#+=:/_\\(\-]|\p{Lu}\S*\p{Lu}|(?i:\A(?:x|ext\.?|extension)\Z)")
# ... and words of a date ("3rd of March"), which count only near a birth word when the policy
# says which entities the answer is scanned for.
_DATE_WORD = regex.compile(r"(?i:\A(?:of|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?)\Z)")
_LAST_RUN = regex.compile(r"\S+\Z")
_WORDS_BACK = regex.compile(r"\S+\s*\Z|\s+\Z")
_PEM_END = regex.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# Already-emitted text kept as left context for detection ("Phone: " before a number).
CONTEXT_CHARS = 48


# Beginnings of entities that start with letters, casefolded: a plain word at the end of the
# buffer is held while it could still grow into one of these, or already starts with one
# ("xoxb" goes on as "-1234..."; "mayo" could be a month followed by a date).
_LETTER_LED: Mapping[str, tuple[str, ...]] = {
    "AWS_ACCESS_KEY": ("akia", "asia", "abia", "acca", "a3t"),
    "OPENAI_API_KEY": ("sk-",), "ANTHROPIC_API_KEY": ("sk-ant-",),
    "GITHUB_TOKEN": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "SLACK_TOKEN": ("xox", "https://hooks.slack.com/"),
    "STRIPE_KEY": ("sk_", "rk_", "pk_", "whsec_"), "GOOGLE_API_KEY": ("aiza",), "JWT": ("eyj",),
    "PHONE_NUMBER": ("x", "extension"),     # "555-0132 ext. 12": an extension runs on
}
# A date of birth may begin with a word that starts with a month's stem ("march", "mayo"), but
# only within a few words of a birth word ("born", "DOB"), as its recogniser requires.
_DATE_WORDS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "of")
_PLAIN_RUN = regex.compile(r"(\p{Lu}?\p{Ll}*(?:'\p{Ll}+)?)[,.;!?)\]'\"]*")
# A value after "password:", "token =", "aws secret:" is a secret whatever its letters are.
_AFTER_ASSIGNMENT = regex.compile(r"(?i)(?:pass\w*|pwd|secret|key|token)[\"']?[ \t]*[=:][ \t]*[\"']?[ \t]*\Z")
_ASSIGNED = frozenset({"PASSWORD", "AWS_SECRET_KEY"})


@dataclass(frozen=True, slots=True)
class RunPolicy:
    """Which whitespace-free run at the end of the buffer may go out before white space ends
    it: a plain word may, unless it could still grow into an entity the answer is scanned for.
    With e-mail or a custom entity scanned any run could, so every run waits (docs/pii.md)."""
    hold_every_run: bool
    prefixes: tuple[str, ...] = ()
    iban_countries: frozenset[str] = frozenset()   # an IBAN opens with one of these codes
    short_hex: int = 0          # IPv6: up to four hex digits, then a colon
    assigned: bool = False      # a value after "password:" may be a secret
    birth: bool = False         # a month after a birth word may begin a date of birth

    @classmethod
    def of(cls, entities: frozenset[str]) -> "RunPolicy":
        if "EMAIL_ADDRESS" in entities or not entities <= frozenset(BUILTIN_ENTITIES):
            return HOLD_EVERY_RUN
        return cls(False, tuple(p for e in sorted(entities) for p in _LETTER_LED.get(e, ())),
                   _iban_countries() if "IBAN_CODE" in entities else frozenset(),
                   4 if "IP_ADDRESS" in entities else 0,
                   bool(entities & _ASSIGNED), "DATE_OF_BIRTH" in entities)

    def must_hold(self, before: str, run: str) -> bool:
        if self.hold_every_run:
            return True
        plain = _PLAIN_RUN.fullmatch(run)
        if plain is None or (self.assigned and _AFTER_ASSIGNMENT.search(before)):
            return True
        word = plain.group(1).casefold()
        if not word:
            return False
        return (word in self.iban_countries
                or (len(word) == 1 and any(c.startswith(word) for c in self.iban_countries))
                or (len(word) <= self.short_hex and word.strip("abcdef") == "")
                or any(p.startswith(word) or word.startswith(p) for p in self.prefixes)
                or (self.birth and any(m.startswith(word) or word.startswith(m) for m in _DATE_WORDS)
                    and _near_birth_word(before)))


    def continues_entity(self, word: str, left: Callable[[], str]) -> bool:
        """Whether ``word``, followed by white space, may belong to an entity that spans it.
        ``left`` gives the text before it, needed only for a date word."""
        if _ENTITY_WORD.search(word):
            return True
        return bool(_DATE_WORD.search(word)) and (self.hold_every_run or (self.birth and _near_birth_word(left())))


HOLD_EVERY_RUN = RunPolicy(True)


def _near_birth_word(before: str) -> bool:
    folded = before.casefold()
    return any(stem in folded for stem in BIRTH_STEMS)


def _iban_countries() -> frozenset[str]:
    from stdnum import numdb
    return frozenset(p[1].casefold() for p in numdb.get("iban").prefixes)


def _left_of(buf: str, start: int, before: str) -> str:
    """The 40 characters before ``buf[start]``, reaching back into text already sent."""
    return (before + buf[max(0, start - 40):start])[-40:]


def candidate_start(buf: str, span: int, runs: RunPolicy, before: str) -> int:
    """Where the part of ``buf`` that could still be the beginning of an entity starts: the
    last whitespace-free run when nothing follows it (an email, a key, a placeholder is one
    run) unless ``runs`` knows it cannot begin one, and before it the words, within ``span``
    characters of the end, that could belong to an entity spanning white space."""
    run = _LAST_RUN.search(buf)
    if run is None:
        cut = len(buf)
    else:
        start, word = run.start(), run.group()
        if start == 0 and before[-1:].strip():
            # The word began in text already sent: judge the whole word.
            head = _LAST_RUN.search(before)
            word, left = head.group() + word, before[:head.start()]
        else:
            left = _left_of(buf, start, before)
        cut = start if runs.must_hold(left[-40:], word) else len(buf)
    floor = len(buf) - span
    while cut > 0 and cut > floor:
        word = _WORDS_BACK.search(buf, 0, cut)
        if word is None or word.start() < floor or not runs.continues_entity(
                word.group().strip(), lambda at=word.start(): _left_of(buf, at, before)):
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
    runs: RunPolicy | None = None   # derived from the detector's entities

    def __post_init__(self) -> None:
        if self.runs is None:
            entities = self.detector.entities if self.detector is not None else frozenset()
            object.__setattr__(self, "runs", RunPolicy.of(entities))


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
        cut = candidate_start(self.buf, self.settings.hold_back, self.settings.runs, self.tail)
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
