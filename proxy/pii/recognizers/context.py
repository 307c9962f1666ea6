"""Context words: a weak pattern counts only when a telling word stands close to it."""
from __future__ import annotations

from dataclasses import dataclass, field

import ahocorasick
import regex

# Word characters for which "matches case-insensitively" implies "case-folds to the same single
# character" (tests/pii/test_pii_context.py checks every cased code point; an upper-case "I"
# is not one: it also matches a dotless "ı"). For words of these characters, a window whose
# case-folded form keeps its length holds a word's folded form wherever the pattern can match
# it. Other words are searched by the pattern alone.
_FOLD_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789 .#-_'éèêàâçôûüöäñ")
# Windows shorter than this are searched by the pattern directly: there it is as quick.
_SHORT = 24


@dataclass(frozen=True, slots=True)
class Context:
    pattern: "regex.Pattern[str]"
    before: int = 40
    after: int = 20
    # The words case-folded: a pattern search over a short window costs ~3 µs in the regex
    # module, a scan of the folded window ~0.5 µs, and the pattern is then tried only where a
    # word was seen. None: the words hold characters outside _FOLD_SAFE.
    words: "ahocorasick.Automaton | None" = field(default=None, compare=False)

    @classmethod
    def of(cls, words: tuple[str, ...] | list[str], before: int = 40, after: int = 20) -> "Context":
        alternation = "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))
        pattern = regex.compile(rf"(?<![\p{{L}}\p{{N}}_<])(?:{alternation})(?![\p{{L}}_])", regex.I)
        folded = {w.casefold() for w in words}
        automaton = None
        if words and all(w and set(w) <= _FOLD_SAFE for w in words):
            automaton = ahocorasick.Automaton()
            for w in sorted(folded):
                automaton.add_word(w, len(w))
            automaton.make_automaton()
        return cls(pattern, before, after, automaton)

    def near(self, text: str, start: int, end: int) -> bool:
        if self.any_in(text, max(0, start - self.before), start):
            return True
        return self.after > 0 and self.any_in(text, end, end + self.after)

    def any_in(self, text: str, lo: int, hi: int) -> bool:
        """Whether ``pattern`` matches in ``text[lo:hi]``."""
        if self.words is None or hi - lo < _SHORT:
            return self.pattern.search(text, lo, hi) is not None
        window = text[lo:hi]
        folded = window.casefold()
        if len(folded) != len(window):
            return self.pattern.search(text, lo, hi) is not None
        match = self.pattern.match
        for end, n in self.words.iter(folded):
            if match(text, lo + end - n + 1, hi):
                return True
        return False

    def last(self, text: str, lo: int, hi: int) -> "regex.Match[str] | None":
        """The last match of ``pattern`` in ``text[lo:hi]`` (matches are whole words: they never
        overlap)."""
        found = self._matches(text, lo, hi)
        return found[-1] if found else None

    def _matches(self, text: str, lo: int, hi: int) -> list["regex.Match[str]"]:
        """``pattern.finditer(text, lo, hi)``, tried only where a folded word begins."""
        window = text[lo:hi]
        folded = window.casefold()
        if self.words is None or len(folded) != len(window):
            return list(self.pattern.finditer(text, lo, hi))
        out = []
        done = lo
        for begin in sorted({lo + end - n + 1 for end, n in self.words.iter(folded)}):
            if begin < done:
                continue
            m = self.pattern.match(text, begin, hi)
            if m is not None:
                out.append(m)
                done = m.end()
        return out
