"""Literal prefilters: the cheap test that lets a rule pattern skip a text it cannot match.

For each compiled pattern we derive a small set of *anchors*: literal strings such that every
match of the pattern contains at least one of them. A pattern is then searched only in views that
contain one of its anchors, which on ordinary prose skips nearly every search (the ``regex``
engine otherwise tries each pattern at every position of every view).

Anchors are derived from the rule data, never written by hand: phrase lists give one word per
phrase (the first word of a fuzzy phrase, which is matched exactly; the longest word otherwise),
and hand-written patterns are parsed with the stdlib regex parser and reduced to a required
literal set (a concatenation needs any one of its parts, an alternation needs one of each
branch's, a repeat with a minimum of zero needs nothing). A pattern the parser cannot read, or
that has no required literal, gets no prefilter and is always searched, so a prefilter can only
skip work, never change a result.

Matching the anchors: all views rules read (normalized, collapsed, decoded) are case-folded, so
on an ASCII view a plain substring test of the case-folded anchors is exact; on other text the
anchors are searched as one case-insensitive ``regex`` alternation, which matches whatever the
literal inside the pattern could match.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import regex

try:                                   # Python >= 3.11
    from re import _constants as _c, _parser as _p
except ImportError:                    # pragma: no cover
    import sre_constants as _c         # type: ignore[no-redef]
    import sre_parse as _p             # type: ignore[no-redef]

MAX_EXACT = 64          # largest set of exact strings tracked for a sub-pattern
MAX_CLASS = 4           # character classes up to this size are expanded into literals
FOLDED_VIEWS = frozenset({"normalized", "collapsed", "decoded"})


_ASCII_LETTER = regex.compile(r"[a-z]", regex.V1 | regex.I)


@dataclass(frozen=True, slots=True)
class Prefilter:
    anchors: tuple[str, ...]       # case-folded; a match contains at least one (as a substring)
    ascii_anchors: tuple[str, ...]   # the ASCII ones: the only ones an ASCII text can contain
    ascii_ids: tuple[int, ...]       # their ids in the global anchor registry
    max_id: int                      # largest of them (-1: none)
    pattern: Any                   # the same anchors as a case-insensitive regex alternation
    substring_ok: bool = True      # the plain substring test is exact on folded ASCII text

    def may_match(self, text: str, folded: bool = True) -> bool:
        """False only if no anchor occurs in ``text`` (``folded``: the text is case-folded)."""
        if folded and self.substring_ok and text.isascii():
            for a in self.ascii_anchors:
                if a in text:
                    return True
            return False
        return self.pattern.search(text) is not None

    def may_match_indexed(self, text: str, folded: bool, present: list[bool] | None) -> bool:
        """Same answer as ``may_match``; ``present``: ``anchors_present(text)`` when ASCII."""
        if (present is not None and folded and self.substring_ok
                and self.max_id < len(present)):
            for i in self.ascii_ids:
                if present[i]:
                    return True
            return False
        return self.may_match(text, folded)


def make(anchors: set[str] | None) -> Prefilter | None:
    if not anchors or any(not a for a in anchors):
        return None
    folded = {a.casefold() for a in anchors}
    # Drop anchors that contain a shorter one: the shorter one is found whenever they are.
    kept: list[str] = []
    for a in sorted(folded, key=lambda a: (len(a), a)):
        if not any(k in a for k in kept):
            kept.append(a)
    alternation = "|".join(regex.escape(a) for a in sorted(folded | anchors, key=len, reverse=True))
    # A non-ASCII letter that folds to, or matches case-insensitively, ASCII letters (Kelvin
    # sign, long s, dotted capital I, sharp s...) could match ASCII text the substring test
    # would miss: such prefilters always use the regex alternation.
    substring_ok = not any(
        not ch.isascii() and (ch.casefold().isascii() or _ASCII_LETTER.fullmatch(ch) is not None)
        for a in anchors for ch in a)
    ascii_anchors = tuple(a for a in kept if a.isascii())
    ids = register(ascii_anchors)
    return Prefilter(tuple(kept), ascii_anchors, ids, max(ids, default=-1),
                     regex.compile(alternation, regex.V1 | regex.I), substring_ok)


def phrase_anchors(phrases: list[str], fuzzy: int) -> set[str] | None:
    """Mirrors ``rules.phrase_pattern``: one exactly matched word per phrase."""
    out: set[str] = set()
    for phrase in {p.casefold().strip() for p in phrases}:
        words = phrase.split()
        if not words:
            return None
        if fuzzy and len(phrase) >= 10 and len(words) > 1:
            out.add(words[0])
        else:
            out.add(max(words, key=len))
    return out


def _cost(strings: set[str]) -> float:
    """Rough chance that a text contains one of ``strings``: long literals are rarer."""
    return sum(1.0 / max(len(s.strip()), 1) ** 2 for s in strings)


def _product(a: set[str], b: set[str]) -> set[str] | None:
    if len(a) * len(b) > MAX_EXACT:
        return None
    return {x + y for x, y in itertools.product(a, b)}


def _seq(items: list) -> tuple[set[str] | None, set[str] | None]:
    """(exact, required) for a sequence of parsed items.

    exact: the full finite set of strings the sequence matches, or None.
    required: a set of non-empty strings one of which every match contains, or None.
    """
    candidates: list[set[str]] = []
    run: set[str] = {""}        # strings matched by the current run of exactly known items
    exact_all: set[str] | None = {""}
    for op, av in items:
        ex, req = _item(op, av)
        exact_all = _product(exact_all, ex) if exact_all is not None and ex is not None else None
        if ex is not None:
            nxt = _product(run, ex)
            if nxt is None:
                candidates.append(run)
                nxt = set(ex)
            run = nxt
        else:
            candidates.append(run)
            run = {""}
        if req:
            candidates.append(req)
    candidates.append(run)
    good = [c for c in candidates if c and all(c)]
    return exact_all, (min(good, key=_cost) if good else None)


def _item(op, av) -> tuple[set[str] | None, set[str] | None]:
    if op is _c.LITERAL:
        s = {chr(av)}
        return s, s
    if op is _c.AT or op in (_c.ASSERT, _c.ASSERT_NOT):
        return {""}, None
    if op is _c.IN:
        chars: set[str] = set()
        for kind, val in av:
            if kind is _c.LITERAL:
                chars.add(chr(val))
            elif kind is _c.RANGE and val[1] - val[0] < MAX_CLASS:
                chars.update(chr(c) for c in range(val[0], val[1] + 1))
            else:
                return None, None
        if not chars or len(chars) > MAX_CLASS:
            return None, None
        return chars, chars
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return _seq(list(sub))
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _seq(list(av))
    if op is _c.BRANCH:
        exacts: set[str] | None = set()
        reqs: set[str] | None = set()
        for alt in av[1]:
            ex, req = _seq(list(alt))
            if exacts is not None and ex is not None and len(exacts) + len(ex) <= MAX_EXACT:
                exacts |= ex
            else:
                exacts = None
            r = req if req else (ex if ex and all(ex) else None)
            if reqs is not None and r:
                reqs |= r
            else:
                reqs = None
        return exacts, (reqs or None)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        lo, hi, sub = av
        ex, req = _seq(list(sub))
        if lo == 0:
            return ((ex | {""}) if ex is not None and hi == 1 else None), None
        exact = None
        if ex is not None and lo == hi and lo <= 4:
            exact = {""}
            for _ in range(lo):
                exact = _product(exact, ex) if exact is not None else None
        r = req if req else (ex if ex and all(ex) else None)
        return exact, r
    return None, None


# Syntax the stdlib parser would read differently from the regex package: fuzzy or other
# non-numeric braces ("{e<=1}" is a literal to the stdlib), nested/operator character sets.
_FOREIGN = regex.compile(r"\{(?!\d*,?\d*\})|\[\[|--|&&|~~|\|\|")


def pattern_anchors(source: str) -> set[str] | None:
    """A required literal set for a hand-written pattern, or None (no safe prefilter)."""
    if _FOREIGN.search(source):
        return None
    try:
        parsed = _p.parse(source)
    except Exception:     # regex-only syntax (fuzzy, \p{..}, ...): no prefilter, always searched
        return None
    _exact, req = _seq(list(parsed))
    return req


# --- One pass over a view for every anchor of every loaded rule ------------------------------
# Testing ~400 anchors one substring search at a time costs more than the searches it saves.
# Instead, per ASCII view: hash each character trigram of the text into a bitmap (numpy), keep the
# anchors whose trigrams are all present (a superset of the anchors that occur), and confirm only
# those, plus the anchors shorter than three characters, with a substring test. The answer per
# anchor is exact (same as ``anchor in text``); the bitmap only decides which tests to skip.

_REGISTRY: dict[str, int] = {}          # ASCII anchor -> global id
_INDEX: tuple = (-1, None)              # (registry size it covers, built arrays), replaced whole


def register(anchors: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(_REGISTRY.setdefault(a, len(_REGISTRY)) for a in anchors)


def _build() -> tuple:
    names = list(_REGISTRY)
    codes, owner, short = [], [], []
    for i, a in enumerate(names):
        b = a.encode("ascii")
        if len(b) < 3:
            short.append(i)
            continue
        for j in range(len(b) - 2):
            codes.append(b[j] | b[j + 1] << 7 | b[j + 2] << 14)
            owner.append(i)
    codes_arr = np.array(codes, dtype=np.uint64)
    owner_arr = np.array(owner, dtype=np.int64)
    long_ids = np.unique(owner_arr)
    starts = np.searchsorted(owner_arr, long_ids)
    return names, codes_arr, starts, long_ids, short, {}


def _hash(codes: np.ndarray, bits: int) -> np.ndarray:
    return ((codes * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - bits)


def anchors_present(text: str) -> list[bool]:
    """``[a in text for a in registered ASCII anchors]`` for an ASCII ``text``."""
    global _INDEX
    index = _INDEX
    if index[0] != len(_REGISTRY):
        built = _build()
        index = _INDEX = (len(built[0]), built)
    names, codes, starts, long_ids, short, hashed = index[1]
    out = [False] * len(names)
    for i in short:
        out[i] = names[i] in text
    if len(codes) == 0 or len(text) < 3:
        return out
    b = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.uint64)
    grams = b[:-2] | (b[1:-1] << np.uint64(7)) | (b[2:] << np.uint64(14))
    bits = min(max(int(len(grams) * 32).bit_length(), 12), 24)
    seen = np.zeros(1 << bits, dtype=bool)
    seen[_hash(grams, bits)] = True
    anchor_hashes = hashed.get(bits)
    if anchor_hashes is None:
        anchor_hashes = hashed[bits] = _hash(codes, bits)
    hit = seen[anchor_hashes]
    candidates = np.logical_and.reduceat(hit, starts)
    for i in long_ids[candidates].tolist():
        out[i] = names[i] in text
    return out
