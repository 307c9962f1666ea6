"""Match compiled rules against a prepared text, each search bounded in time."""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import prefilter as _prefilter
from .normalize import Prepared
from .plans import candidates, order, plan, set_plan
from .rules import Rule
from .scanviews import Views, ViewState

# Per pattern search; a whole text gets a larger overall budget. Both exist so that no input,
# however crafted, can hold a worker: a timed-out search counts as "not inspected", not "clean".
SEARCH_TIMEOUT = 0.05
TEXT_BUDGET = 0.5
BUDGET_PER_KB = 0.01   # long inputs are scanned in full (in a worker thread), so the budget grows
# A pattern whose matches start where its anchors do (plans._entry's ``starts``) is tried at those
# offsets, one ``match`` each, when there is at most one more of them than a view has this many
# characters: a call costs about as much as a search over a hundred characters of an easy pattern,
# and an alternation without a common prefix (JB-2009's openers) is tried at every offset by a
# search, at ~2,500 instructions a character.
CHARS_PER_TRY = 128


@dataclass(slots=True)
class MatchResult:
    rule_ids: list[str]
    score: int
    timed_out: bool = False


def warm(rules) -> None:
    """Build every aid and plan ``rules`` need (and the anchor index over all of them), so the
    first text scanned pays for none of it."""
    for rule in rules:
        if rule.context is None and rule.signal is None:
            plan(rule)
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
    return _searched(rule, plan(rule), prepared, views, timeout)


def _searched(rule: Rule, planned: tuple, prepared: Prepared, views: Views, timeout: float) -> bool:
    """Whether a pattern of ``rule`` (its ``plans.plan``) matches a view it reads."""
    entries, pids, max_pid = planned
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
            tried = entries
            if v.folded and v.ascii and pids is not None and max_pid < v.n_hits:
                # Every pattern is behind an indexed prefilter, which passes this view exactly
                # when its pid hit (``_passes``): only those patterns are tried, in their order.
                hit = pids.intersection(v.hit_set)
                if not hit:
                    continue
                tried = tuple(e for e in entries if e[2] in hit)
            for pattern, pf, pid, lex, required, stretches, starts, on_ascii in tried:
                # The prefilters only skip searches that cannot match (a required literal absent).
                if pf is not None:
                    if tried is entries and not _passes(pf, pid, v):
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
                if v.ascii:
                    pattern = on_ascii
                if starts is not None and v.folded and v.ascii and pf.max_id < v.n_anchors:
                    offsets = _offsets(starts, v.where)
                    if (len(offsets) - 1) * CHARS_PER_TRY <= len(text):
                        if any(_tried_at(pattern, text, offsets, start, end, timeout)
                               for start, end in (spans or ((0, len(text)),))):
                            return True
                        continue
                if spans is not None:
                    if any(pattern.search(text, start, end, timeout=timeout) is not None
                           for start, end in spans):
                        return True
                elif pattern.search(text, timeout=timeout) is not None:
                    return True
    return False


def _offsets(ids: tuple[int, ...], where: dict[int, list[int]]) -> set[int]:
    """Where the anchors ``ids`` start in a view (its anchor pass's ``where``)."""
    out: set[int] = set()
    for i in ids:
        got = where.get(i)
        if got is not None:
            out.update(got)
    return out


def _tried_at(pattern, text: str, offsets, start: int, end: int, timeout: float) -> bool:
    """``pattern.search(text, start, end) is not None`` for a pattern every match of which starts
    at one of ``offsets``: a search tries ``pattern.match(text, at, end)`` at each offset from
    ``start`` on (the ``regex`` package lets \\b and look-behinds read the text before ``at``)."""
    for at in offsets:
        if start <= at < end and pattern.match(text, at, end, timeout=timeout) is not None:
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
    for rule in order(rules):
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


def match(rules: tuple[Rule, ...], prepared: Prepared, budget: float | None = None) -> MatchResult:
    ids: list[str] = []
    score = 0
    timed_out = False
    if budget is None:
        budget = TEXT_BUDGET + BUDGET_PER_KB * len(prepared.raw) / 1024
    deadline = time.monotonic() + budget
    views = Views(prepared)
    sp = set_plan(rules)
    # Only the rules that can match are tried (plans.candidates), in the set's order; the
    # deadline is looked at after each of them: a rule left out makes no search.
    left = candidates(sp, views)
    while left:
        low = left & -left
        left ^= low
        i = low.bit_length() - 1
        rule = sp.rules[i]
        if rule.requires and rule.requires.isdisjoint(ids):
            continue
        planned = sp.plans[i]
        if planned is None:
            hit = getattr(prepared, rule.signal) >= rule.min_count
        else:
            try:
                hit = _searched(rule, planned, prepared, views, SEARCH_TIMEOUT)
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
