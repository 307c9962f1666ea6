"""Match compiled rules against a prepared text, each search bounded in time."""
from __future__ import annotations

import time
from dataclasses import dataclass

from .normalize import Prepared
from .prefilter import FOLDED_VIEWS, prefilter_hit_set
from .rules import Rule

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


# Per rule: (rule, ((pattern, prefilter, prefilter id or -1), ...)), keyed by id(rule) and checked
# by identity, so the pairing of patterns and prefilters is not rebuilt on every text.
_PLANS: dict[int, tuple] = {}
_MAX_PLANS = 4096


def _plan(rule: Rule) -> tuple:
    got = _PLANS.get(id(rule))
    if got is None or got[0] is not rule:
        prefilters = rule.prefilters or (None,) * len(rule.regexes)
        lexicons = rule.lexicons or (None,) * len(rule.regexes)
        entries = tuple((pattern, pf, pf.pid if pf is not None and pf.substring_ok else -1, lex)
                        for pattern, pf, lex in zip(rule.regexes, prefilters, lexicons))
        # Every pattern behind an indexed prefilter: on a folded ASCII view the rule is skipped
        # when none of its pids hit (one set test instead of a test per pattern).
        indexed = all(pf is not None and pid >= 0 for _, pf, pid, _ in entries)
        pids = frozenset(pid for _, _, pid, _ in entries) if indexed else None
        got = (rule, (entries, pids, max(pids) if pids else -1))
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[id(rule)] = got
    return got[1]


def rule_matches(rule: Rule, prepared: Prepared, timeout: float = SEARCH_TIMEOUT) -> bool:
    if rule.context is not None:      # needs the system prompt: scored in context.py
        return False
    if rule.signal is not None:
        return getattr(prepared, rule.signal) >= rule.min_count
    plan, pids, max_pid = _plan(rule)
    seen: list[str] = []
    for view in rule.views:
        text = prepared.view(view)
        if not text:
            continue
        for s in seen:                # the very view just searched (same object)
            if s is text:
                break
        else:
            seen.append(text)
            folded = view in FOLDED_VIEWS
            ascii_text = text.isascii()
            # Every prefilter's ASCII anchors on a folded view at once (with the non-ASCII ones,
            # tested as substrings, the same answer as ``pf.may_match``).
            if folded:
                hits, hit_set, other_set = prepared.anchor_hits(view, prefilter_hit_set)
                n_hits = len(hits)
                if ascii_text and pids is not None and max_pid < n_hits and pids.isdisjoint(hit_set):
                    continue
            else:
                hits, n_hits, other_set = None, 0, frozenset()
            for pattern, pf, pid, lex in plan:
                # The prefilter only skips searches that cannot match (no trigger literal present).
                if pf is not None:
                    if 0 <= pid < n_hits:
                        if not hits[pid] and (ascii_text or pf.other_ids.isdisjoint(other_set)):
                            continue
                    elif not pf.may_match(text, folded):
                        continue
                # A word list: word lookups find every text the regex can match (and a few more,
                # words split by punctuation), so only those few are searched.
                if lex is not None and not lex.any(text, prepared.words(view)):
                    continue
                if pattern.search(text, timeout=timeout) is not None:
                    return True
    return False


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
    # Rules with ``requires`` go last and are evaluated only when a rule they need has fired.
    later = [r for r in rules if r.requires]
    for rule in ([r for r in rules if not r.requires] + later) if later else rules:
        if rule.requires and rule.requires.isdisjoint(ids):
            continue
        try:
            hit = rule_matches(rule, prepared)
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
