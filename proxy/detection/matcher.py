"""Match compiled rules against a prepared text, each search bounded in time."""
from __future__ import annotations

import time
from dataclasses import dataclass

from .normalize import Prepared
from .prefilter import FOLDED_VIEWS, anchors_present
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


def rule_matches(rule: Rule, prepared: Prepared, timeout: float = SEARCH_TIMEOUT) -> bool:
    if rule.context is not None:      # needs the system prompt: scored in context.py
        return False
    if rule.signal is not None:
        return getattr(prepared, rule.signal) >= rule.min_count
    prefilters = rule.prefilters or (None,) * len(rule.regexes)
    seen: list[str] = []
    for view in rule.views:
        text = prepared.view(view)
        if not text or any(text is s for s in seen):    # empty, or the very view just searched
            continue
        seen.append(text)
        folded = view in FOLDED_VIEWS
        present = None
        for pattern, pf in zip(rule.regexes, prefilters):
            # The prefilter only skips searches that cannot match (no trigger literal present).
            if pf is not None:
                if present is None and folded and text.isascii():
                    present = prepared.anchor_hits(view, anchors_present)
                if not pf.may_match_indexed(text, folded, present):
                    continue
            if pattern.search(text, timeout=timeout) is not None:
                return True
    return False


def match(rules: tuple[Rule, ...], prepared: Prepared, budget: float | None = None) -> MatchResult:
    ids: list[str] = []
    score = 0
    timed_out = False
    if budget is None:
        budget = TEXT_BUDGET + BUDGET_PER_KB * len(prepared.raw) / 1024
    deadline = time.monotonic() + budget
    for rule in rules:
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
