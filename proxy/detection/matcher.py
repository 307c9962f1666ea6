"""Match compiled rules against a prepared text, each search bounded in time."""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import prefilter as _prefilter, ruleaids
from .normalize import Prepared
from .rules import Rule
from .scanviews import Views, ViewState

# Per pattern search; a whole text gets a larger overall budget. Both exist so that no input,
# however crafted, can hold a worker: a timed-out search counts as "not inspected", not "clean".
SEARCH_TIMEOUT = 0.05
TEXT_BUDGET = 0.5
BUDGET_PER_KB = 0.01   # long inputs are scanned in full (in a worker thread), so the budget grows


@dataclass(slots=True)
class MatchResult:
    rule_ids: list[str]
    score: int
    timed_out: bool = False


# Per rule: (rule, (entries, pids, max pid)) with entries (pattern, prefilter, prefilter id or
# -1, lexicon, other required sets, sentence stretches) per pattern (``_entry``), keyed by
# id(rule) and checked by identity, so the pairing of patterns and their aids (ruleaids.py) is
# not rebuilt on every text.
_PLANS: dict[int, tuple] = {}
_MAX_PLANS = 4096


def _pid(pf) -> int:
    return pf.pid if pf is not None and pf.substring_ok else -1


def _entry(pattern, pf, lex, required, sentences: bool) -> tuple:
    # ``required``: the other required sets, one of each of which a folded view must hold too.
    # A pattern that cannot cross a sentence end is searched only in the sentences holding an
    # anchor of its prefilter (by id, from the anchor pass) and of each of those sets.
    stretches = (pf, dict(zip(pf.ascii_ids, pf.ascii_anchors)), required) \
        if sentences and pf is not None else None
    return (pattern, pf, _pid(pf), lex, required, stretches)


def _plan(rule: Rule) -> tuple:
    got = _PLANS.get(id(rule))
    if got is None or got[0] is not rule:
        aid = ruleaids.aids(rule)
        n = len(rule.regexes)
        entries = tuple(_entry(*parts) for parts in zip(
            rule.regexes, aid.prefilters or (None,) * n, aid.lexicons or (None,) * n,
            aid.requirements or ((),) * n, aid.sentences or (False,) * n))
        # Every pattern behind an indexed prefilter: on a folded ASCII view the rule is skipped
        # when none of its pids hit (one set test instead of a test per pattern).
        indexed = all(e[1] is not None and e[2] >= 0 for e in entries)
        pids = frozenset(e[2] for e in entries) if indexed else None
        got = (rule, (entries, pids, max(pids) if pids else -1))
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[id(rule)] = got
    return got[1]


def warm(rules) -> None:
    """Build every aid and plan ``rules`` need (and the anchor index over all of them), so the
    first text scanned pays for none of it."""
    for rule in rules:
        if rule.context is None and rule.signal is None:
            _plan(rule)
    _prefilter.prefilter_hits("")


def rule_matches(rule: Rule, prepared: Prepared, timeout: float = SEARCH_TIMEOUT) -> bool:
    return _matches(rule, prepared, Views(prepared), timeout)


def _passes(pf, pid: int, v: ViewState) -> bool:
    """Whether a prefilter lets a pattern run on a view (an anchor of it occurs there): its ASCII
    anchors from the view's anchor pass, with the non-ASCII ones tested as substrings, the same
    answer as ``pf.may_match``."""
    if 0 <= pid < v.n_hits:
        return pid in v.hit_set or (not v.ascii and not pf.other_ids.isdisjoint(v.other_set))
    return pf.may_match(v.text, v.folded)


def _matches(rule: Rule, prepared: Prepared, views: Views, timeout: float = SEARCH_TIMEOUT) -> bool:
    if rule.context is not None:      # needs the system prompt: scored in context.py
        return False
    if rule.signal is not None:
        return getattr(prepared, rule.signal) >= rule.min_count
    plan, pids, max_pid = _plan(rule)
    seen: list[str] = []
    for view in rule.views:
        v = views(view)
        if v is None:
            continue
        text = v.text
        for s in seen:                # the very view just searched (same object)
            if s is text:
                break
        else:
            seen.append(text)
            if v.folded and v.ascii and pids is not None and max_pid < v.n_hits \
                    and pids.isdisjoint(v.hit_set):
                continue
            for pattern, pf, pid, lex, required, stretches in plan:
                # The prefilters only skip searches that cannot match (a required literal absent).
                if pf is not None:
                    if not _passes(pf, pid, v):
                        continue
                    # On a long view ``spans`` (below) answers ``has_any`` too, at less cost: it
                    # looks for the further sets only in the stretches holding the rarest one.
                    if not (stretches is not None and v.long and v.sentence_ends()) \
                            and not all(map(v.has_any, required)):
                        continue
                # A pattern that cannot cross a sentence end: only the stretches holding all its
                # required sets are searched (none: it cannot match).
                spans = v.spans(*stretches) if stretches is not None and v.sentence_ends() else None
                if spans is not None and not spans:
                    continue
                # A word list: word lookups find every text the regex can match (and a few more,
                # words split by punctuation), so only those few are searched.
                if lex is not None and not lex.any(text, prepared.words(view)):
                    continue
                if spans is not None:
                    if any(pattern.search(text, start, end, timeout=timeout) is not None
                           for start, end in spans):
                        return True
                elif pattern.search(text, timeout=timeout) is not None:
                    return True
    return False


def rule_matches_plain(rule: Rule, prepared: Prepared, timeout: float = SEARCH_TIMEOUT) -> bool:
    """``rule_matches`` the straightforward way: every pattern searched in every view, no
    prefilter, word list or shared view skipped. The yardstick of the tests that prove the
    shortcuts change no answer."""
    if rule.context is not None:
        return False
    if rule.signal is not None:
        return getattr(prepared, rule.signal) >= rule.min_count
    return any(pattern.search(prepared.view(view), timeout=timeout) is not None
               for view in rule.views for pattern in rule.regexes)


def match_plain(rules: tuple[Rule, ...], prepared: Prepared) -> MatchResult:
    """``match`` by ``rule_matches_plain``, without a time budget."""
    ids: list[str] = []
    score = 0
    for rule in _order(rules):
        if not (rule.requires and rule.requires.isdisjoint(ids)) and rule_matches_plain(rule, prepared):
            ids.append(rule.id)
            score += rule.score
    return MatchResult(ids, score)


def locate(rule: Rule, prepared: Prepared) -> tuple[str, str, int, int] | None:
    """Where a rule matches, to show it (``aifw scan``): (view, that view's text, start, end) of
    its first match, or None for a signal or context rule (no span) or no match. Not used to
    decide: ``rule_matches`` does that, with its prefilters."""
    if rule.context is not None or rule.signal is not None:
        return None
    for view in rule.views:
        text = prepared.view(view)
        for pattern in rule.regexes if text else ():
            try:
                found = pattern.search(text, timeout=SEARCH_TIMEOUT)
            except TimeoutError:
                continue
            if found is not None:
                return view, text, found.start(), found.end()
    return None


_ORDERS: dict[int, tuple] = {}


def _order(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Rules with ``requires`` go last and are evaluated only when a rule they need has fired."""
    got = _ORDERS.get(id(rules))
    if got is None or got[0] is not rules:
        later = tuple(r for r in rules if r.requires)
        got = (rules, (tuple(r for r in rules if not r.requires) + later) if later else tuple(rules))
        if len(_ORDERS) >= _MAX_PLANS:
            _ORDERS.clear()
        _ORDERS[id(rules)] = got
    return got[1]


def match(rules: tuple[Rule, ...], prepared: Prepared, budget: float | None = None) -> MatchResult:
    ids: list[str] = []
    score = 0
    timed_out = False
    if budget is None:
        budget = TEXT_BUDGET + BUDGET_PER_KB * len(prepared.raw) / 1024
    deadline = time.monotonic() + budget
    views = Views(prepared)
    for rule in _order(rules):
        if rule.requires and rule.requires.isdisjoint(ids):
            continue
        try:
            hit = _matches(rule, prepared, views)
        except TimeoutError:
            timed_out = True
            continue
        if hit:
            ids.append(rule.id)
            score += rule.score
        if time.monotonic() > deadline:
            timed_out = True
            break
    return MatchResult(ids, score, timed_out)
