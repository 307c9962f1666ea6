"""What only matching needs, kept apart from the compiled rules: each pattern's literal prefilter
(prefilter.py) and word-list gate (lexicon.py).

Deriving them costs more than compiling the rules (~0.5 s for the shipped files: parsing every
pattern again, compiling each prefilter's fallback alternation, checking each against the rule's
cases), and `aifw policy check` needs none of it: a prefilter can only skip searches, never make
a rule file valid or invalid. So a rule's aids are built on first use, or for whole files when a
policy compiles to serve (``load_for_file``: the proxy is ready only with every aid built, and
a new process loads them from the compiled cache, proxy/precompiled.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import precompiled
from . import prefilter as _prefilter
from .lexicon import Lexicon, wordlist_phrases
from .normalize import Prepared
from .rules import VET_SECONDS, Rule


@dataclass(frozen=True, slots=True)
class RuleAids:
    # One per pattern (None: always searched); see prefilter.py. Derived from the rule data.
    prefilters: tuple[Any, ...] = ()
    # One per pattern: a Lexicon when the pattern is only a list of words (lexicon.py): word
    # lookups decide whether the regex needs to run at all; else None.
    lexicons: tuple[Any, ...] = ()
    # One per pattern: its other required literal sets (a match holds a literal of each,
    # prefilter.pattern_requirements), each as the folded strings to look for, and whether no
    # match can hold a sentence end (prefilter.within_sentences): then only the sentences
    # holding a literal of every set are searched.
    requirements: tuple[tuple[Any, ...], ...] = ()
    sentences: tuple[bool, ...] = ()
    # One per pattern: whether every match starts where an ASCII anchor of its prefilter does
    # (prefilter.leads_at_anchor_starts): on a folded ASCII view the pattern is then tried only
    # at those offsets (matcher.py), not at every one.
    starts: tuple[bool, ...] = ()


NONE = RuleAids()
# id(rule) -> (rule, aids): checked by identity, and the rule kept alive while its entry is.
_AIDS: dict[int, tuple[Rule, RuleAids]] = {}
_MAX_AIDS = 4096


def aids(rule: Rule) -> RuleAids:
    got = _AIDS.get(id(rule))
    if got is None or got[0] is not rule:
        return _remember(rule, build(rule))
    return got[1]


def _remember(rule: Rule, value: RuleAids) -> RuleAids:
    if len(_AIDS) >= _MAX_AIDS:
        _AIDS.clear()
    _AIDS[id(rule)] = (rule, value)
    return value


def build(rule: Rule) -> RuleAids:
    if not rule.regexes:
        return NONE
    spaced = all(v in _prefilter.SPACED_VIEWS for v in rule.views)
    sources = [p.pattern for p in rule.regexes]
    required = [_prefilter.pattern_requirements(src, spaced=spaced) for src in sources]
    anchors = [req[0] if req else None for req in required]
    if rule.phrases:      # the phrase list's pattern comes first (rules.compile_rule)
        anchors[0] = _prefilter.phrase_anchors(list(rule.phrases), rule.fuzzy)
        required[0] = []
    prefilters = tuple(_checked_prefilter(_prefilter.make(a), pat, rule.views, rule.match_cases)
                       for a, pat in zip(anchors, rule.regexes))
    folded = rule.folded_case and all(v in _prefilter.FOLDED_VIEWS for v in rule.views)
    lexicons = tuple(_wordlist(src) if folded else None for src in sources)
    requirements = tuple(
        tuple(r for r in (_checked_requirement(_prefilter.requirement(r), pat, rule)
                          for r in req[1:] if _useful(r)) if r is not None)
        if first is not None else ()
        for req, pat, first in zip(required, rule.regexes, prefilters))
    sentences = tuple(_prefilter.within_sentences(src) for src in sources)
    starts = tuple(_prefilter.leads_at_anchor_starts(_prefilter.pattern_leads(src, spaced), pf)
                   and _checked_starts(pf, pat, rule)
                   for src, pat, pf in zip(sources, rule.regexes, prefilters))
    return RuleAids(prefilters, lexicons, requirements, sentences, starts)


def _checked_starts(pf: Any, pattern: Any, rule: Rule) -> bool:
    """Like ``_checked_prefilter``: where the pattern matches a folded ASCII view of a match case,
    an ASCII anchor of ``pf`` must start where the match starts, or (a derivation bug) the pattern
    is searched at every offset as before."""
    for case in rule.match_cases:
        prepared = Prepared(case)
        for view in rule.views:
            text = prepared.view(view)
            if view not in _prefilter.FOLDED_VIEWS or not text.isascii():
                continue
            found = pattern.search(text, timeout=VET_SECONDS)
            if found is not None and not any(
                    found.start() in _prefilter.occurrences(a, text) for a in pf.ascii_anchors):
                return False
    return True


def _useful(required: set[str]) -> bool:
    """A required set worth looking for besides the rarest one: words, not single characters or
    spaces, which nearly every sentence holds."""
    return len(required) <= 64 and all(len(_prefilter._strip(a).strip()) >= 3 for a in required)


def _checked_requirement(anchors: tuple[str, ...] | None, pattern: Any,
                         rule: Rule) -> tuple[str, ...] | None:
    """Like ``_checked_prefilter``: a required set that a folded view of a match case lacks
    although the pattern matches it (a derivation bug) is dropped."""
    if anchors is None:
        return None
    for case in rule.match_cases:
        prepared = Prepared(case)
        for view in rule.views:
            text = prepared.view(view)
            if view in _prefilter.FOLDED_VIEWS and pattern.search(text, timeout=VET_SECONDS) \
                    is not None and not any(_prefilter.occurs(a, text) for a in anchors):
                return None
    return anchors


def load_for_file(name: str, raw: bytes, rules: tuple[Rule, ...]) -> None:
    """Build (or load from the compiled cache) the aids of every rule of one rule file: ``rules``
    is what ``rules._load_file_cached(name, raw)`` returned."""
    if all(_AIDS.get(id(r), (None,))[0] is r for r in rules):
        return                      # a reload of an unchanged file: nothing to do
    built = precompiled.load_or_build("aids", name.encode() + b"\0" + raw,
                                      lambda: tuple(build(r) for r in rules))
    for rule, value in zip(rules, built):
        _remember(rule, value)


# A word-list pattern gets a Lexicon gate when it is long enough for the regex alternation to be
# the cost (JB-2008's 400 phrases: ~0.8 ms per KB as a regex); a short list is cheaper searched
# behind its literal prefilter than scanned word by word. A phrase list is scanned per occurrence
# of its first word, so one that puts many phrases behind one first word stays a regex.
MIN_WORDLIST_PHRASES = 200
MAX_PHRASES_PER_FIRST_WORD = 64


def _wordlist(source: str) -> Any:
    phrases = wordlist_phrases(source)
    if phrases is None or len(phrases) < MIN_WORDLIST_PHRASES:
        return None
    lex = Lexicon({"hit": phrases})
    if lex.substrings or max(map(len, lex.first.values()), default=0) > MAX_PHRASES_PER_FIRST_WORD:
        return None
    return lex


def _checked_prefilter(pf: Any, pattern: Any, views: tuple[str, ...],
                       cases: tuple[str, ...]) -> Any:
    """A prefilter must pass every view of every match case its pattern matches; one that
    would not (a derivation bug) is dropped, so the pattern is always searched."""
    if pf is None:
        return None
    for case in cases:
        prepared = Prepared(case)
        for view in views:
            text = prepared.view(view)
            if (pattern.search(text, timeout=VET_SECONDS) is not None
                    and not pf.may_match(text, view in _prefilter.FOLDED_VIEWS)):
                return None
    return pf
