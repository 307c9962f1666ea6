"""One cheap look at a text that all recognisers share, so most of them can tell in a few
string operations that they have nothing to find.

Every numeric entity (card, IBAN, SSN, IPv4, phone, date) starts at or near a run of digits, so
the runs are found once (a single C-speed scan) and those recognisers try their patterns only
there instead of at every character. The others need a literal their pattern cannot match
without ("sk-", "PRIVATE KEY", a birth word): all such needles are found in one Aho-Corasick pass
over the case-folded text.
"""
from __future__ import annotations

import ahocorasick
import ahocorasick_rs
import regex

_DIGIT_RUN = regex.compile(r"\d+")
# In ASCII text \d is [0-9], which the regex module scans ~1.4x faster (no Unicode lookups).
_ASCII_DIGIT_RUN = regex.compile(r"[0-9]+")
_ASCII_DIGITS = "0123456789"
_NEEDLES: set[str] = set()
_automaton: "ahocorasick.Automaton | None" = None
# The ASCII needles as a DFA over bytes (ahocorasick_rs) and the needle each key index stands
# for: ASCII text (where casefold is lower) is walked at a third of pyahocorasick's instructions.
_ascii_automaton: "tuple[ahocorasick_rs.BytesAhoCorasick, tuple[str, ...]] | None" = None


def needles(*words: str) -> frozenset[str]:
    """Register ``words`` (at import time) as needles a recogniser tests with ``Probe.has_any``.
    They are case-folded: a test is then true for every casing, a superset of what a
    case-sensitive pattern needs, so a recogniser never misses what it would have found."""
    global _automaton, _ascii_automaton
    folded = frozenset(w.casefold() for w in words)
    if not folded <= _NEEDLES:
        _NEEDLES.update(folded)
        _automaton = _ascii_automaton = None
    return folded


def _needle_automaton() -> "ahocorasick.Automaton":
    global _automaton
    automaton = _automaton
    if automaton is None:
        automaton = ahocorasick.Automaton()
        for word in _NEEDLES:
            automaton.add_word(word, word)
        automaton.make_automaton()
        _automaton = automaton
    return automaton


def _needle_dfa() -> "tuple[ahocorasick_rs.BytesAhoCorasick, tuple[str, ...]]":
    global _ascii_automaton
    built = _ascii_automaton
    if built is None:
        words = tuple(sorted(w for w in _NEEDLES if w.isascii()))
        built = _ascii_automaton = (ahocorasick_rs.BytesAhoCorasick(
            [w.encode("ascii") for w in words], matchkind=ahocorasick_rs.MatchKind.Standard,
            implementation=ahocorasick_rs.Implementation.DFA), words)
    return built


def needles_found(text: str) -> set[str]:
    """The registered needles ``text.casefold()`` holds (overlapping ones too)."""
    if text.isascii():
        dfa, words = _needle_dfa()
        matches = dfa.find_matches_as_indexes(text.lower().encode("ascii"), overlapping=True)
        # most texts hold no needle: an empty set without the comprehension's frame
        return {words[i] for i, _, _ in matches} if matches else set()
    return {w for _, w in _needle_automaton().iter(text.casefold())}


class Probe:
    """``runs``: (start, end) of every maximal run of (Unicode) digits, in text order, and
    ``digits``, the digits they hold, computed when the probe is built: the numeric recognisers
    read them a dozen times per text, and as properties each read cost ~1 k instructions. The
    needles (``found``) are looked for on first use."""
    __slots__ = ("text", "runs", "digits", "_found")

    def __init__(self, text: str) -> None:
        self.text = text
        runs: list[tuple[int, int]] = []
        if not text.isascii():
            runs += [m.span() for m in _DIGIT_RUN.finditer(text)]
        else:
            for d in _ASCII_DIGITS:     # str's search beats any regex scan
                if d in text:
                    runs += [m.span() for m in _ASCII_DIGIT_RUN.finditer(text)]
                    break
        self.runs = runs
        self.digits = sum(b - a for a, b in runs)
        self._found: set[str] | None = None

    @property
    def found(self) -> set[str]:
        """The registered needles the case-folded text holds. Case-folding maps at least every
        character that case-insensitive matching equates."""
        if self._found is None:
            self._found = needles_found(self.text)
        return self._found

    def has_any(self, words: frozenset[str]) -> bool:
        """Whether the text holds one of ``words`` (a ``needles(...)`` result), in any case."""
        return not self.found.isdisjoint(words)


def probe_of(text: str, probe: Probe | None) -> Probe:
    return probe if probe is not None and probe.text is text else Probe(text)
