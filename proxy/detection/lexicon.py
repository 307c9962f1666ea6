"""Phrase lists matched on the words of a text in one pass: the context vocabularies and the
word-list rules (``rules.py`` turns a pattern that is only a list of words into one of these)."""
from __future__ import annotations

import unicodedata
from typing import Iterable

import regex

from .normalize import normalize

_WORD = regex.compile(r"\w+")


def edge(ch: str) -> bool:
    """A word character of a script written with spaces (a word boundary can sit next to it)."""
    if not (ch.isalnum() or ch == "_"):
        return False
    name = unicodedata.name(ch, "")
    return not any(s in name for s in ("CJK", "HIRAGANA", "KATAKANA", "THAI", "IDEOGRAPH", "HANGUL"))


def hangul(ch: str) -> bool:
    return "HANGUL" in unicodedata.name(ch, "")


class Lexicon:
    """Named phrase lists matched on the words of a text in one pass (a dict lookup per word and
    per stem length), plus substring tests for scripts written without spaces. Same boundaries
    as a word-bounded regex alternation at a fraction of its cost (an alternation of hundreds of
    phrases costs milliseconds per KB).

    ``reveal*`` matches any word starting with "reveal"; Korean entries match word starts
    (particles attach on the right); Chinese, Japanese and Thai entries match anywhere.
    """

    __slots__ = ("first", "single", "pairs", "stem_pairs", "stems", "stem_lengths", "substrings",
                 "cache", "heads")

    def __init__(self, lists: dict[str, Iterable[str]]):
        self.first: dict[str, list[tuple[tuple[str, ...], bool, str]]] = {}
        self.stems: dict[str, set[str]] = {}
        self.substrings: list[tuple[str, str]] = []
        for name, words in lists.items():
            for raw in {normalize(str(w)).strip() for w in words if str(w).strip()}:
                stem = raw.endswith("*")
                w = raw.rstrip("*").strip()
                if not w:
                    continue
                if not (edge(w[0]) or hangul(w[0])):
                    self.substrings.append((w, name))      # no word boundaries in this script
                    continue
                toks = tuple(_WORD.findall(w))
                if not toks:
                    continue
                stem = stem or hangul(w[-1])
                if len(toks) == 1 and stem:
                    self.stems.setdefault(toks[0], set()).add(name)
                else:
                    self.first.setdefault(toks[0], []).append((toks, stem, name))
        # ``first`` split for the scan: single words by the word; phrases by their first two words
        # (a common first word such as "i" or "what" heads hundreds of phrases, its pairs a few);
        # two-word phrases ending in a stem by their first word.
        single: dict[str, set[str]] = {}
        self.pairs: dict[tuple[str, str], list[tuple[tuple[str, ...], bool, str]]] = {}
        self.stem_pairs: dict[str, list[tuple[tuple[str, ...], bool, str]]] = {}
        for tok, entries in self.first.items():
            for seq, stem, name in entries:
                if len(seq) == 1:
                    single.setdefault(tok, set()).add(name)
                elif stem and len(seq) == 2:
                    self.stem_pairs.setdefault(tok, []).append((seq, stem, name))
                else:
                    self.pairs.setdefault((tok, seq[1]), []).append((seq, stem, name))
        self.single = {k: frozenset(v) for k, v in single.items()}
        self.heads = frozenset(t0 for t0, _ in self.pairs)
        self.stem_lengths = sorted({len(x) for x in self.stems})
        self.cache: dict[str, frozenset[str]] = {}

    def scan(self, text: str, tokens: list[str]) -> set[str]:
        """Names of the lists with a phrase in ``text`` (``tokens``: its words)."""
        found: set[str] = set()
        if self.substrings and not text.isascii():
            found.update(name for x, name in self.substrings if name not in found and x in text)
        pairs, cache = self.pairs, self.cache
        n = len(tokens)
        for i, tok in enumerate(tokens):
            entry = cache.get(tok)
            if entry is None:
                entry = self._entry(tok)
            names, heads_pair, stem_cands = entry
            if names:
                found |= names
            if i + 1 == n:
                continue
            if heads_pair:
                cands = pairs.get((tok, tokens[i + 1]))
                if cands:
                    for seq, stem, name in cands:
                        m = len(seq)
                        if name in found or i + m > n:
                            continue
                        if all(tokens[i + j] == seq[j] for j in range(2, m - 1 if stem else m)) \
                                and (not stem or tokens[i + m - 1].startswith(seq[-1])):
                            found.add(name)
            if stem_cands:
                nxt = tokens[i + 1]
                for seq, _stem, name in stem_cands:
                    if name not in found and nxt.startswith(seq[1]):
                        found.add(name)
        return found

    def scan_reference(self, text: str, tokens: list[str]) -> set[str]:
        """``scan`` by the phrase lists of each first word (tests/detection/test_speed.py)."""
        found: set[str] = set()
        if self.substrings and not text.isascii():
            found.update(name for x, name in self.substrings if name not in found and x in text)
        n = len(tokens)
        for i, tok in enumerate(tokens):
            found |= self._stem_names(tok)
            for seq, stem, name in self.first.get(tok, ()):
                m = len(seq)
                if name in found or i + m > n:
                    continue
                if all(tokens[i + j] == seq[j] for j in range(1, m - 1 if stem else m)) and \
                        (not stem or m == 1 or tokens[i + m - 1].startswith(seq[-1])):
                    found.add(name)
        return found

    def _stem_names(self, tok: str) -> frozenset[str]:
        names: set[str] = set()
        for k in self.stem_lengths:
            if k > len(tok):
                break
            got = self.stems.get(tok[:k])
            if got:
                names |= got
        return frozenset(names)

    def _entry(self, tok: str) -> tuple:
        """What one word brings, cached: the lists it matches alone (as itself or by a stem),
        whether it starts a phrase of two or more exact words, the two-word stem phrases it
        starts."""
        if len(self.cache) >= 50_000:       # bounded: a word -> entry cache, reset when full
            self.cache.clear()
        names = self._stem_names(tok) | self.single.get(tok, frozenset())
        out = self.cache[tok] = (names, tok in self.heads, self.stem_pairs.get(tok))
        return out

    def any(self, text: str, tokens: list[str]) -> bool:
        """Whether any list has a phrase in ``text``."""
        return bool(self.scan(text, tokens))


# --- Word-list patterns ---------------------------------------------------------------------
# A hand-written pattern that is only a word-bounded list of words and phrases
# (``\b(?:bombs?|kill\w*|drug (?:dealer|trafficking))\b``) matches only texts in which a Lexicon
# over its expansion finds a phrase (the Lexicon also accepts words split by punctuation rather
# than spaces), at a fraction of the cost: the regex engine tries every alternative at every
# position of the text, the Lexicon does a dict lookup per word. So the regex runs only where the
# Lexicon found something. ``wordlist_phrases`` expands such a pattern, or returns None for
# anything else (gaps, lookarounds, classes of more than a few characters, a stem that is not at
# the end), which is always searched.

try:                                   # Python >= 3.11
    from re import _constants as _c, _parser as _p
except ImportError:                    # pragma: no cover
    import sre_constants as _c         # type: ignore[no-redef]
    import sre_parse as _p             # type: ignore[no-redef]

MAX_PHRASES = 4000
_STEM = "\x00"                         # marks "any word ending" while expanding


def _is_class(av, category) -> bool:
    return len(av) == 1 and av[0][0] is _c.CATEGORY and av[0][1] is category


def _expand(items) -> list[str] | None:
    out = [""]
    for op, av in items:
        if op is _c.LITERAL:
            part = [chr(av)]
        elif op is _c.IN:
            if _is_class(av, _c.CATEGORY_SPACE):
                part = [" "]
            else:
                chars = []
                for kind, val in av:
                    if kind is _c.LITERAL:
                        chars.append(chr(val))
                    elif kind is _c.RANGE and val[1] - val[0] < 4:
                        chars.extend(chr(c) for c in range(val[0], val[1] + 1))
                    else:
                        return None
                part = chars
        elif op is _c.SUBPATTERN:
            part = _expand(av[3])
        elif op is _c.BRANCH:
            part = []
            for alt in av[1]:
                got = _expand(alt)
                if got is None:
                    return None
                part += got
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, sub = av
            sub = list(sub)
            if len(sub) == 1 and sub[0][0] is _c.IN and _is_class(sub[0][1], _c.CATEGORY_WORD) \
                    and lo == 0 and hi == _c.MAXREPEAT:
                part = [_STEM]
            elif len(sub) == 1 and sub[0][0] is _c.IN and _is_class(sub[0][1], _c.CATEGORY_SPACE) \
                    and lo == 1:
                part = [" "]
            elif lo == 0 and hi == 1:
                got = _expand(sub)
                if got is None:
                    return None
                part = [""] + got
            else:
                return None
        else:
            return None
        if part is None or len(out) * len(part) > MAX_PHRASES:
            return None
        if any(s.endswith(_STEM) for s in out) and any(part):
            return None                # text after a stem: not a word list
        out = [a + b for a in out for b in part]
    return out


def wordlist_phrases(source: str) -> list[str] | None:
    """The phrases of a word-bounded word-list pattern (``kill*`` for ``kill\\w*``), or None."""
    try:
        items = list(_p.parse(source))
    except Exception:
        return None
    bound = (_c.AT, _c.AT_BOUNDARY)
    if len(items) < 3 or items[0] != bound or items[-1] != bound:
        return None
    got = _expand(items[1:-1])
    if not got:
        return None
    phrases = []
    for s in got:
        stem = s.endswith(_STEM)
        s = s.rstrip(_STEM)
        words = _WORD.findall(s)
        # both ends must be word characters for \b to mean "a whole word" there
        if not words or _STEM in s or not (s[0].isalnum() and (stem or s[-1].isalnum())):
            return None
        phrases.append(s + ("*" if stem else ""))
    return phrases
