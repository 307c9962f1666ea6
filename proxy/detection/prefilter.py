"""Literal prefilters: the cheap test that lets a rule pattern skip a text it cannot match.

For each compiled pattern we derive a small set of *anchors*: literal strings such that every
match of the pattern contains at least one of them. A pattern is then searched only in views that
contain one of its anchors, which on ordinary prose skips nearly every search (the ``regex``
engine otherwise tries each pattern at every position of every view).

Anchors are derived from the rule data, never written by hand: phrase lists give one word per
phrase (the first word of a fuzzy phrase, which is matched exactly, or its rarest intact later
words; the longest word otherwise), and hand-written patterns are parsed with the stdlib regex
parser and reduced to a required literal set (a concatenation needs any one of its parts, an
alternation needs one of each branch's, a repeat with a minimum of zero needs nothing), the
rarest such set chosen. A literal right after ``\b`` is a word-start anchor. A pattern the parser
cannot read, or that has no required literal, gets no prefilter and is always searched, so a
prefilter can only skip work, never change a result.

Matching the anchors: all views rules read (normalized, collapsed, decoded) are case-folded, so
a plain substring test of the case-folded anchors is exact; the ASCII anchors of every loaded
rule are found in one Aho-Corasick pass per view (``ahocorasick_rs``), the others tested one by one. Anchors with
characters that case-fold oddly (``substring_ok`` False) use a case-insensitive ``regex``
alternation instead.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs
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

# An anchor that the pattern requires at a word start (after \b) carries this mark in front: it
# counts only where the character before it is not a word character, so "sure" does not let a
# pattern run on every text saying "insured", nor "as a" on every "has a".
WORD_START = "\x01"
_WORD_CHAR = regex.compile(r"\w", regex.V1)       # the patterns' own engine decides what \w is
# Its answer on each ASCII character, read without a call (the anchor pass asks it per hit).
_ASCII_WORD_CHARS = frozenset(c for c in map(chr, range(128)) if _WORD_CHAR.match(c))


def _strip(anchor: str) -> str:
    return anchor[1:] if anchor.startswith(WORD_START) else anchor


def occurs(anchor: str, text: str) -> bool:
    """``anchor in text``; for a word-start anchor, an occurrence at a word start."""
    if not anchor.startswith(WORD_START):
        return anchor in text
    word = anchor[1:]
    at = text.find(word)
    while at >= 0:
        if at == 0 or _WORD_CHAR.match(text, at - 1) is None:
            return True
        at = text.find(word, at + 1)
    return False


def occurs_any(anchors, text: str) -> bool:
    """``any(occurs(a, text) for a in anchors)``, without a call per absent anchor: a word-start
    anchor is confirmed only where its word occurs at all (a substring test)."""
    for a in anchors:
        if a[0] != WORD_START:
            if a in text:
                return True
        elif a[1:] in text and occurs(a, text):
            return True
    return False


class AnchorSet(tuple):
    """A further required set of a pattern (``requirement``) as matching keeps it (``anchor_set``):
    one object per distinct set, so a view looks a set up once however many patterns share it
    (``scanviews.ViewState.has_any`` remembers answers by object), with the anchors' words."""

    words: tuple[str, ...]      # each anchor without its word-start mark

    def occurs_in(self, text: str) -> bool:
        """``occurs_any(self, text)``: an anchor occurs only where its word does, so first one C
        loop of substring tests (no slice or call per anchor); the word starts are checked, anchor
        by anchor, only when a word occurs."""
        return any(map(text.__contains__, self.words)) and occurs_any(self, text)


_ANCHOR_SETS: dict[tuple[str, ...], AnchorSet] = {}
_MAX_ANCHOR_SETS = 4096


def anchor_set(anchors: tuple[str, ...]) -> AnchorSet:
    """The one ``AnchorSet`` of these anchors."""
    got = _ANCHOR_SETS.get(anchors)
    if got is None:
        got = AnchorSet(anchors)
        got.words = tuple(map(_strip, anchors))
        if len(_ANCHOR_SETS) >= _MAX_ANCHOR_SETS:
            _ANCHOR_SETS.clear()      # only sharing is lost: a set made again answers the same
        _ANCHOR_SETS[anchors] = got
    return got


@dataclass(frozen=True, slots=True)
class Prefilter:
    anchors: tuple[str, ...]       # case-folded; a match contains at least one (as a substring)
    ascii_anchors: tuple[str, ...]   # the ASCII ones: the only ones an ASCII text can contain
    ascii_ids: tuple[int, ...]       # their ids in the global anchor registry
    max_id: int                      # largest of them (-1: none)
    pattern: Any                   # the same anchors as a case-insensitive regex alternation
    substring_ok: bool = True      # the plain substring test is exact on folded ASCII text
    pid: int = -1                  # id of its ``ascii_ids`` set (``prefilter_hits``)
    # The others, tested as substrings on folded text besides ``prefilter_hits`` (casefolding maps
    # every case variant the pattern's IGNORECASE could match to the folded anchor), by their ids
    # in the registry of non-ASCII anchors (``prefilter_hit_set`` tests each of those once).
    other_anchors: tuple[str, ...] = ()
    other_ids: frozenset[int] = frozenset()

    def may_match(self, text: str, folded: bool = True) -> bool:
        """False only if no anchor occurs in ``text`` (``folded``: the text is case-folded)."""
        if folded and self.substring_ok and text.isascii():
            return occurs_any(self.ascii_anchors, text)
        return self.pattern.search(text) is not None

    def __reduce__(self):
        # The ids index this process's registries: a prefilter loaded from a pickle (compiled
        # rule sets cached on disk, proxy/precompiled.py) registers its anchors where it lands.
        return (_assemble, (self.anchors, self.pattern, self.substring_ok))


def _assemble(kept: tuple[str, ...], pattern: Any, substring_ok: bool) -> Prefilter:
    ascii_anchors = tuple(a for a in kept if a.isascii())
    others = tuple(a for a in kept if not a.isascii())
    ids = register(ascii_anchors)
    return Prefilter(kept, ascii_anchors, ids, max(ids, default=-1), pattern, substring_ok,
                     _ID_SETS.setdefault(ids, len(_ID_SETS)), others,
                     frozenset(_OTHERS.setdefault(a, len(_OTHERS)) for a in others))


def _covers(shorter: str, anchor: str) -> bool:
    """Whether ``anchor`` occurring implies ``shorter`` occurs: "sure" covers "sure," and
    "\x01sure"; "\x01sure" covers "\x01surely" but not "insure"."""
    if not shorter.startswith(WORD_START):
        return shorter in _strip(anchor)
    return anchor.startswith(WORD_START) and anchor[1:].startswith(shorter[1:])


def make(anchors: set[str] | None) -> Prefilter | None:
    if not anchors or any(not a for a in anchors):
        return None
    folded = {a.casefold() for a in anchors}
    alternation = "|".join((r"\b" + regex.escape(a[1:])) if a.startswith(WORD_START) else regex.escape(a)
                           for a in sorted(folded | anchors, key=len, reverse=True))
    return _assemble(_kept(folded), regex.compile(alternation, regex.V1 | regex.I),
                     _substring_ok(anchors))


def requirement(anchors: set[str]) -> tuple[str, ...] | None:
    """A further required set of a pattern (``pattern_requirements``) as the case-folded strings
    to look for in a folded view (``occurs``), or None when a substring test would not be exact.
    Not registered in the anchor pass: looked up only where a pattern's prefilter lets it run."""
    if not anchors or any(not a for a in anchors) or not _substring_ok(anchors):
        return None
    return _kept({a.casefold() for a in anchors})


def _kept(folded: set[str]) -> tuple[str, ...]:
    """Without the anchors that contain a shorter one: the shorter one is found whenever they are."""
    kept: list[str] = []
    for a in sorted(folded, key=lambda a: (len(_strip(a)), a)):
        if not any(_covers(k, a) for k in kept):
            kept.append(a)
    return tuple(kept)


def _substring_ok(anchors: set[str]) -> bool:
    """A non-ASCII letter that folds to, or matches case-insensitively, ASCII letters (Kelvin sign,
    long s, dotted capital I, sharp s...) could match ASCII text the substring test would miss:
    such prefilters always use the regex alternation."""
    return not any(
        not ch.isascii() and (ch.casefold().isascii() or _ASCII_LETTER.fullmatch(ch) is not None)
        for a in anchors for ch in a)


def phrase_anchors(phrases: list[str], fuzzy: int) -> set[str] | None:
    """Mirrors ``rules.phrase_pattern``: per phrase, words one of which every match contains.

    A fuzzy phrase matches its first word exactly and the rest with at most ``fuzzy`` edits, so
    of any ``fuzzy + 1`` words of the rest one is intact too: "do anything now" is found through
    "anything" or "now" rather than through "do", which is in almost every text."""
    out: set[str] = set()
    for phrase in {p.casefold().strip() for p in phrases}:
        words = phrase.split()
        if not words:
            return None
        if fuzzy and len(phrase) >= 10 and len(words) > 1:
            rest = sorted(set(words[1:]), key=lambda w: _cost({w}))[:fuzzy + 1]
            intact = set(rest) if len(set(words[1:])) > fuzzy else None
            # the exact first word follows \b; an intact later word may have lost its space
            head = {(WORD_START + words[0]) if _edge_char(words[0][0]) else words[0]}
            out |= min((head, intact) if intact else (head,), key=_cost)
        else:
            # every word of a phrase follows \b or white space (a word start), when its script
            # has word boundaries at all
            word = max(words, key=len)
            out.add((WORD_START + word) if _edge_char(word[0]) else word)
    return out


# Words in nearly every English text or prompt: as an anchor they let a pattern run on almost
# everything, whatever their length ("from" is rarer than "dev" by length, not in prose).
_COMMON_WORDS = frozenset("""the and you your for from with that this what are have not but can will
all any was were its into about would should could there their they them then than when which
who how why now just also only more some such like other one two new use used using make give
tell show help want need know may must said say
write answer answers reply response respond output explain question questions example code text
please list create based following provide system prompt message context rules data user""".split())


def _edge_char(ch: str) -> bool:
    return _WORD_CHAR.match(ch) is not None and ch.isascii()


def _cost(strings: set[str]) -> float:
    """Rough chance that a text contains one of ``strings``: long literals are rarer, the most
    common English words are as likely as a two-letter literal, and a phrase of several words
    ("start your response") is far rarer than its length alone says."""
    total = 0.0
    for s in strings:
        s = _strip(s).strip()
        if s in _COMMON_WORDS:
            total += 0.25
        else:
            total += (0.1 if " " in s else 1.0) / max(len(s), 1) ** 2
    return total


def _join(x: str, y: str) -> str:
    """``x + y`` keeping only a word-start mark in front (one inside means less than a start), and
    only before a word character: \b before "." means a word character comes before it."""
    if not _strip(x):
        out = (WORD_START if (x or y.startswith(WORD_START)) else "") + _strip(y)
    else:
        out = x + _strip(y)
    if len(out) > 1 and out.startswith(WORD_START) and _WORD_CHAR.match(out, 1) is None:
        out = out[1:]
    return out


def _product(a: set[str], b: set[str]) -> set[str] | None:
    if len(a) * len(b) > MAX_EXACT:
        return None
    return {_join(x, y) for x, y in itertools.product(a, b)}


def _seq(items: list, spaced: bool = False, lead: bool = False) -> tuple[set[str] | None, set[str] | None]:
    """(exact, required) for a sequence of parsed items.

    exact: the full finite set of strings the sequence matches, or None.
    required: a set of non-empty strings one of which every match contains, or None.
    lead: the sequence starts at a word start (a \b just before it, outside).
    """
    exact_all, good = _seq_all(items, spaced, lead)
    return exact_all, (min(good, key=_cost) if good else None)


def _seq_all(items: list, spaced: bool = False, lead: bool = False) -> tuple[set[str] | None, list[set[str]]]:
    """``_seq``'s exact set, and every required set it found (each one alone holds for every
    match: a run of exactly known items, or what one item of the sequence requires)."""
    candidates: list[set[str]] = []
    run: set[str] = {WORD_START} if lead else {""}   # the current run of exactly known items
    exact_all: set[str] | None = {""}
    for op, av in items:
        at_start = not any(map(_strip, run))
        if op is _c.AT and av is _c.AT_BOUNDARY and at_start:
            run = {WORD_START}
            continue
        # a group right after \b (the parser moves a \b shared by every alternative out front)
        ex, req = _item(op, av, spaced, at_start and WORD_START in run)
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
    return exact_all, [c for c in candidates if c and all(map(_strip, c))]


def _item(op, av, spaced: bool = False, lead: bool = False) -> tuple[set[str] | None, set[str] | None]:
    if op is _c.LITERAL:
        s = {chr(av)}
        return s, s
    if op is _c.AT or op in (_c.ASSERT, _c.ASSERT_NOT):
        return {""}, None
    if op is _c.IN:
        if spaced and av == [(_c.CATEGORY, _c.CATEGORY_SPACE)]:
            return {" "}, {" "}
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
        return _seq(list(sub), spaced, lead)
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _seq(list(av), spaced, lead)
    if op is _c.BRANCH:
        exacts: set[str] | None = set()
        reqs: set[str] | None = set()
        for alt in av[1]:
            ex, req = _seq(list(alt), spaced, lead)
            if exacts is not None and ex is not None and len(exacts) + len(ex) <= MAX_EXACT:
                exacts |= ex
            else:
                exacts = None
            r = req if req else (ex if ex and all(map(_strip, ex)) else None)
            if reqs is not None and r:
                reqs |= r
            else:
                reqs = None
        return exacts, (reqs or None)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
        lo, hi, sub = av
        sub = list(sub)
        # In a view whose every run of white space is one space, \s+ is exactly " ".
        if spaced and lo >= 1 and len(sub) == 1 and sub[0][0] is _c.IN \
                and sub[0][1] == [(_c.CATEGORY, _c.CATEGORY_SPACE)]:
            return {" "}, {" "}
        ex, req = _seq(sub, spaced)
        if lo == 0:
            return ((ex | {""}) if ex is not None and hi == 1 else None), None
        exact = None
        if ex is not None and lo == hi and lo <= 4:
            exact = {""}
            for _ in range(lo):
                exact = _product(exact, ex) if exact is not None else None
        r = req if req else (ex if ex and all(map(_strip, ex)) else None)
        return exact, r
    return None, None


# Syntax the stdlib parser would read differently from the regex package: fuzzy or other
# non-numeric braces ("{e<=1}" is a literal to the stdlib), nested/operator character sets.
_FOREIGN = regex.compile(r"\{(?!\d*,?\d*\})|\[\[|--|&&|~~|\|\|")


# Views in which every run of white space is a single space (normalize.squeeze; the decoded view
# joins its segments with ". "): there a pattern's \s or \s+ matches exactly " ".
SPACED_VIEWS = frozenset({"normalized", "collapsed", "decoded"})


def pattern_anchors(source: str, spaced: bool = False) -> set[str] | None:
    """A required literal set for a hand-written pattern, or None (no safe prefilter).
    ``spaced``: the pattern is only searched in ``SPACED_VIEWS``."""
    if _FOREIGN.search(source):
        return None
    try:
        parsed = _p.parse(source)
    except Exception:     # regex-only syntax (fuzzy, \p{..}, ...): no prefilter, always searched
        return None
    _exact, req = _seq(list(parsed), spaced)
    return req


MAX_REQUIREMENTS = 4     # required sets kept per pattern: the rarest, and up to three more


def pattern_requirements(source: str, spaced: bool = False) -> list[set[str]]:
    """Required literal sets of a hand-written pattern, rarest first (the first is
    ``pattern_anchors``): every match contains a string of *each* of them, so a text (or a
    sentence of it) lacking one cannot match. Empty: no safe prefilter."""
    if _FOREIGN.search(source):
        return []
    try:
        parsed = _p.parse(source)
    except Exception:     # regex-only syntax (fuzzy, \p{..}, ...): no prefilter, always searched
        return []
    _exact, good = _seq_all(list(parsed), spaced)
    out: list[set[str]] = []
    for req in sorted(good, key=_cost):       # stable: the first is min(good, key=_cost)
        if req not in out:
            out.append(req)
    return out[:MAX_REQUIREMENTS]


def pattern_leads(source: str, spaced: bool = False) -> set[str] | None:
    """Literals one of which every match of a hand-written pattern *starts* with (a word-start
    mark in front where a \\b precedes it), or None. The exactly known items from the pattern's
    start, then the leads of the first item that is not (a group, an alternation or a repeat of
    at least one): an alternation whose branches all begin with a literal has no prefix the
    ``regex`` engine can skip to, and is tried at every position of a text; the anchor pass
    already knows where its literals are (``starts_at``)."""
    items = _parsed_items(source)
    return None if items is None else _leads(items, spaced)


def _parsed_items(source: str) -> list | None:
    """The top-level items of ``source`` as Python's ``re`` parser reads them; None where it could
    read the pattern otherwise than the ``regex`` package (syntax only ``regex`` knows) or
    refuses it, and the analyses that use it then answer "unsure"."""
    if _FOREIGN.search(source):
        return None
    try:
        return list(_p.parse(source))
    except Exception:
        return None


def _leads(items: list, spaced: bool = False, lead: bool = False) -> set[str] | None:
    run: set[str] = {WORD_START} if lead else {""}
    for op, av in items:
        at_start = not any(map(_strip, run))
        if op is _c.AT and av is _c.AT_BOUNDARY and at_start:
            run = {WORD_START}
            continue
        word_start = at_start and WORD_START in run
        ex, _req = _item(op, av, spaced, word_start)
        if ex is not None:
            nxt = _product(run, ex)
            if nxt is None:
                break
            run = nxt
            continue
        sub = _item_leads(op, av, spaced, word_start)
        nxt = _product(run, sub) if sub is not None else None
        if nxt is not None:
            run = nxt
        break
    return run if run and all(map(_strip, run)) else None


def _item_leads(op, av, spaced: bool, lead: bool) -> set[str] | None:
    if op is _c.SUBPATTERN:
        return _leads(list(av[3]), spaced, lead)
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _leads(list(av), spaced, lead)
    if op is _c.BRANCH:
        out: set[str] = set()
        for alt in av[1]:
            got = _leads(list(alt), spaced, lead)
            if got is None or len(out) + len(got) > MAX_EXACT:
                return None
            out |= got
        return out
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
        return _leads(list(av[2]), spaced, lead)
    return None


def leads_at_anchor_starts(leads: set[str] | None, pf: Prefilter | None) -> bool:
    """Whether every match of a pattern whose ``leads`` these are starts where an ASCII anchor
    of its prefilter ``pf`` starts, on a folded ASCII view: each lead, case-folded, begins with
    one of ``pf``'s anchors (a word-start one only if the lead is at a word start too)."""
    if not leads or pf is None or not pf.substring_ok:
        return False
    kept = pf.ascii_anchors
    for lead in {a.casefold() for a in leads}:
        if not any(_strip(lead).startswith(_strip(k))
                   and (not k.startswith(WORD_START) or lead.startswith(WORD_START))
                   for k in kept):
            return False
    return True


# Sentence ends of a folded view: a pattern that can match none of these characters matches
# within one stretch between two of them (``within_sentences``), so it is searched only in the
# stretches holding a literal of each of its required sets.
SENTENCE_ENDS = ".!?"
_CATEGORY_HAS_END = {_c.CATEGORY_DIGIT: False, _c.CATEGORY_NOT_DIGIT: True,
                     _c.CATEGORY_SPACE: False, _c.CATEGORY_NOT_SPACE: True,
                     _c.CATEGORY_WORD: False, _c.CATEGORY_NOT_WORD: True,
                     _c.CATEGORY_LINEBREAK: False, _c.CATEGORY_NOT_LINEBREAK: True}


def within_sentences(source: str) -> bool:
    """Whether no match of ``source`` (compiled by the ``regex`` package) holds a character of
    ``SENTENCE_ENDS``, and its only zero-width tests are word boundaries and look-behinds. Then
    ``pattern.search(text, start, end)`` over a stretch of a text between two sentence ends (or
    its ends) finds exactly the matches of the whole text that start in that stretch: a match
    cannot cross a sentence end, the character past ``end`` is one (or the text ends there) so a
    boundary test sees a non-word character either way, and the ``regex`` package lets a
    look-behind or a boundary test at ``start`` read the text before it. False when unsure."""
    items = _parsed_items(source)
    return items is not None and _no_end(items)


def _no_end(items: list) -> bool:
    for op, av in items:
        if op is _c.LITERAL:
            if chr(av) in SENTENCE_ENDS:
                return False
        elif op is _c.IN:
            if any(_in_set(av, ch) for ch in SENTENCE_ENDS):
                return False
        elif op is _c.AT:
            if av not in (_c.AT_BOUNDARY, _c.AT_NON_BOUNDARY):
                return False
        elif op is _c.ASSERT or op is _c.ASSERT_NOT:
            if av[0] >= 0:            # a look-ahead could read past the stretch
                return False
        elif op is _c.SUBPATTERN:
            if not _no_end(list(av[3])):
                return False
        elif op is _c.BRANCH:
            if not all(_no_end(list(alt)) for alt in av[1]):
                return False
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            if not _no_end(list(av[2])):
                return False
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            if not _no_end(list(av)):
                return False
        else:                          # ANY, NOT_LITERAL, back references, ...: may match one
            return False
    return True


def _in_set(items: list, ch: str) -> bool:
    """Whether the parsed character set ``items`` matches ``ch`` (a character without case
    variants, so case-insensitivity changes nothing); True when unsure."""
    negate = False
    found = False
    for kind, val in items:
        if kind is _c.NEGATE:
            negate = True
        elif kind is _c.LITERAL:
            found |= chr(val) == ch
        elif kind is _c.RANGE:
            found |= val[0] <= ord(ch) <= val[1]
        elif kind is _c.CATEGORY and val in _CATEGORY_HAS_END:
            found |= _CATEGORY_HAS_END[val]
        else:
            return True
    return found != negate


# --- One pass over a view for every anchor of every loaded rule ------------------------------
# Testing ~1,500 anchors one substring search at a time costs more than the searches it saves.
# Instead the ASCII anchors of all loaded rules go into one Aho-Corasick automaton
# (ahocorasick_rs, overlapping search: every occurrence of every key, as an end-ordered list of
# (key, start, end)), which reports every occurrence of every anchor in one pass over the view; a
# word-start anchor counts only where the character before its occurrence is not a word
# character. The answer per anchor is exact (``occurs``).

_REGISTRY: dict[str, int] = {}          # ASCII anchor -> global id
_OTHERS: dict[str, int] = {}            # non-ASCII anchor -> id (``prefilter_hit_set``)
# Distinct anchor-id sets of the prefilters made -> ``pid``: a prefilter's answer on an ASCII
# text depends on its set only, and rule reloads add no new entry for an unchanged rule.
_ID_SETS: dict[tuple[int, ...], int] = {}
_INDEX: tuple = (None, None)            # (registry and id-set counts it covers, arrays)


def register(anchors: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(_REGISTRY.setdefault(a, len(_REGISTRY)) for a in anchors)


@dataclass(frozen=True, slots=True)
class _Automaton:
    """One automaton over some keys, and per key (by its index) the anchor ids it stands for."""
    search: Any                       # ahocorasick_rs.AhoCorasick or BytesAhoCorasick
    ids: tuple[tuple[tuple[int, bool], ...], ...]    # per key: (anchor id, word-start) pairs
    # A character no key holds: stands in for lone surrogates, which ahocorasick_rs cannot
    # encode (one character for one, so the offsets stay those of the text).
    filler: str = ""


def _build() -> tuple:
    names = list(_REGISTRY)
    # One automaton key per distinct string; a word "x" and its word-start form "\x01x" share it.
    # The non-ASCII anchors (``_OTHERS``) are keys too, with ids -1, -2, ...: the same pass finds
    # them on non-ASCII text instead of one substring search per anchor.
    keys: dict[str, list[tuple[int, bool]]] = {}
    for i, a in enumerate(names):
        keys.setdefault(_strip(a), []).append((i, a.startswith(WORD_START)))
    for a, j in list(_OTHERS.items()):
        keys.setdefault(_strip(a), []).append((-1 - j, a.startswith(WORD_START)))
    # ASCII text (nearly every view) is walked as bytes by a DFA of the ASCII keys only (where the
    # others cannot occur): one table lookup a byte, ~4x fewer instructions than pyahocorasick's
    # child search, for ~20 ms and ~8 MB once per rule set. A DFA of every key would be ~40 MB, so
    # other text is walked as ``str`` (offsets in characters) by a contiguous NFA.
    ascii_keys = {k: v for k, v in keys.items() if k.isascii()}
    automata = (_automaton(keys, False), _automaton(ascii_keys, True))
    # Per anchor id, the pids of the id sets holding it: the pids a text hits are those of the few
    # anchors it holds.
    pids_of: list[list[int]] = [[] for _ in names]
    for ids, pid in list(_ID_SETS.items()):
        for i in ids:
            pids_of[i].append(pid)
    return (names, automata[0], tuple(map(tuple, pids_of)), len(_ID_SETS), automata[1])


def _automaton(keys: dict[str, list[tuple[int, bool]]], ascii_only: bool) -> _Automaton | None:
    if not keys:
        return None
    ids = tuple(tuple(v) for v in keys.values())
    if ascii_only:
        search = ahocorasick_rs.BytesAhoCorasick([k.encode("ascii") for k in keys],
                                                 implementation=ahocorasick_rs.Implementation.DFA)
        return _Automaton(search, ids)
    search = ahocorasick_rs.AhoCorasick(list(keys),
                                        implementation=ahocorasick_rs.Implementation.ContiguousNFA)
    used = set().union(*keys)
    return _Automaton(search, ids, next(c for c in map(chr, range(0xE000, 0x110000)) if c not in used))


_SURROGATE = regex.compile(r"[\ud800-\udfff]")


def _matches(automaton: _Automaton, text: str, ascii: bool) -> list[tuple[int, int, int]]:
    """(key index, start, end) of every occurrence of every key in ``text``, in end order;
    offsets in characters."""
    if ascii:
        return automaton.search.find_matches_as_indexes(text.encode("ascii"), overlapping=True)
    try:
        return automaton.search.find_matches_as_indexes(text, overlapping=True)
    except UnicodeEncodeError:        # lone surrogates: no key holds one, nor the filler
        return automaton.search.find_matches_as_indexes(_SURROGATE.sub(automaton.filler, text),
                                                        overlapping=True)


def _index() -> tuple:
    global _INDEX
    index = _INDEX
    key = (len(_REGISTRY), len(_ID_SETS), len(_OTHERS))
    if index[0] != key:
        index = _INDEX = (key, _build())
    return index[1]


def _present(text: str, built: tuple) -> tuple[dict[int, list[int]], frozenset[int]]:
    """Where the registered ASCII anchors that occur in ``text`` occur (id -> start offsets), and
    the ids of the non-ASCII ones that occur, each as ``occurs`` and ``occurrences`` count it."""
    ascii = text.isascii()
    automaton = built[4] if ascii else built[1]
    where: dict[int, list[int]] = {}
    if automaton is None or not text:
        return where, frozenset()
    others: set[int] = set()
    ids_of = automaton.ids
    for key, start, _end in _matches(automaton, text, ascii):
        at_word_start = None
        for i, word_start in ids_of[key]:
            if word_start:
                if at_word_start is None:
                    before = text[start - 1] if start else " "
                    at_word_start = before not in _ASCII_WORD_CHARS if before < "\x80" \
                        else _WORD_CHAR.match(before) is None
                if not at_word_start:
                    continue
            if i >= 0:
                got = where.get(i)
                if got is None:
                    where[i] = [start]
                else:
                    got.append(start)
            else:
                others.add(-1 - i)
    return where, frozenset(others)


def anchors_present(text: str) -> list[bool]:
    """``[occurs(a, text) for a in registered ASCII anchors]`` for an ASCII ``text``."""
    built = _index()
    present = _present(text, built)[0]
    return [i in present for i in range(len(built[0]))]


def prefilter_hits(text: str) -> list[bool]:
    """For a case-folded ``text``: per ``pid``, whether any ASCII anchor of that id set occurs in
    it. On ASCII text that is ``pf.may_match(text)`` for every prefilter with ``substring_ok`` made
    so far; on other text, together with the prefilter's non-ASCII anchors (``prefilter_hit_set``).
    The list covers the id sets known when it was built; later ones and the others use
    ``may_match``."""
    hit_set, n_pids = prefilter_hit_state(text)[:2]
    return [pid in hit_set for pid in range(n_pids)]


def prefilter_hit_set(text: str) -> tuple[list[bool], frozenset[int], frozenset[int]]:
    """``prefilter_hits(text)``, the set of the pids that hit (most rules' pids are not in it, and
    one set test then skips the rule), and on other than ASCII text the ids of the non-ASCII
    anchors that occur in it (found in the same pass, not once per prefilter)."""
    hit_set, n_pids, others = prefilter_hit_state(text)[:3]
    return [pid in hit_set for pid in range(n_pids)], hit_set, others


def prefilter_hit_state(text: str) -> tuple[frozenset[int], int, frozenset[int], int,
                                           dict[int, list[int]]]:
    """For a case-folded ``text``: the pids that hit, how many pids the answer covers (later ones
    use ``may_match``), the ids of the non-ASCII anchors that occur, how many ASCII anchors the
    answer covers, and where each ASCII anchor that occurs is found (id -> start offsets, as
    ``occurrences`` finds them; its keys are the ASCII anchors present)."""
    built = _index()
    where, others = _present(text, built)
    pids_of = built[2]
    hit_set = frozenset(pid for i in where for pid in pids_of[i])
    return hit_set, built[3], others, len(built[0]), where


def occurrences(anchor: str, text: str):
    """Where ``anchor`` occurs in ``text`` (start offsets), as ``occurs`` counts them."""
    word_start = anchor.startswith(WORD_START)
    word = anchor[1:] if word_start else anchor
    at = text.find(word)
    while at >= 0:
        if not word_start or at == 0 or _WORD_CHAR.match(text, at - 1) is None:
            yield at
        at = text.find(word, at + 1)
