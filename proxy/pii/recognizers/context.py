"""Context words: a weak pattern counts only when a telling word stands close to it."""
from __future__ import annotations

import string
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


# ASCII characters the pattern's look-behind (``[\p{L}\p{N}_<]``) and look-ahead (``[\p{L}_]``)
# refuse next to a word.
_NOT_BEFORE = frozenset(string.ascii_letters + string.digits + "_<")
_NOT_AFTER = frozenset(string.ascii_letters + "_")


def _bounded(text: str, begin: int, stop: int, hi: int) -> bool | None:
    """``pattern.match(text, begin, hi) is not None`` for a word of an ASCII window found at
    ``text[begin:stop]``: in ASCII text a case-insensitive match of an ASCII word is its
    lower-cased form, so only the look-arounds are left to test, and every word found at
    ``begin`` is tried (the automaton reports each, longer ones too). None when a character
    next to the word is not ASCII: the pattern then decides. Saves a ``regex`` call (~6 k
    instructions) per word found."""
    if begin > 0:
        before = text[begin - 1]
        if before in _NOT_BEFORE:
            return False
        if not before.isascii():
            return None
    if stop < hi:
        after = text[stop:stop + 1]     # "" at the end of the text (hi may lie past it)
        if after in _NOT_AFTER:
            return False
        if not after.isascii():
            return None
    return True


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
        plain = window.isascii()
        for end, n in self.words.iter(folded):
            begin = lo + end - n + 1
            found = _bounded(text, begin, begin + n, hi) if plain else None
            if found is None:
                found = match(text, begin, hi) is not None
            if found:
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
        hits = list(self.words.iter(folded))
        if not hits:                # most windows: no word, so no sorting, no pattern call
            return []
        out = []
        done = lo
        for begin in sorted({lo + end - n + 1 for end, n in hits}):
            if begin < done:
                continue
            m = self.pattern.match(text, begin, hi)
            if m is not None:
                out.append(m)
                done = m.end()
        return out
