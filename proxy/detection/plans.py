"""What matching needs besides the compiled rules, built once rather than per text: per rule, its
patterns paired with their aids (ruleaids.py); per rule set, the order the rules are tried in
and an index from the anchor pass's hits to the rules that can match at all.

Why the set index: on a short text nearly every rule is skipped by one test (none of its
prefilters' anchors occurs in a view it reads), but making that test rule by rule cost more than
the few searches left. From the pids the anchor pass hit (scanviews.ViewState.hit_set), the
index gives the rules behind them in one bit mask per view; ``matcher.match`` tries only those,
the signal rules and the rules with a pattern no indexed prefilter guards.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ruleaids
from .factored import factored
from .prefilter import anchor_set
from .rules import Rule

# Per rule: (rule, (entries, pids, max pid)) with entries (pattern, prefilter, prefilter id or
# -1, lexicon, other required sets, sentence stretches, start anchors, the pattern for ASCII
# views) per pattern (``_entry``), keyed by
# id(rule) and checked by identity, so the pairing of patterns and their aids (ruleaids.py) is
# not rebuilt on every text.
_PLANS: dict[int, tuple] = {}
_MAX_PLANS = 4096


def _pid(pf) -> int:
    return pf.pid if pf is not None and pf.substring_ok else -1


def _entry(pattern, pf, lex, required, sentences: bool, starts: bool) -> tuple:
    # ``required``: the other required sets, one of each of which a folded view must hold too
    # (as prefilter.AnchorSet: the same set of any pattern is one object).
    # A pattern that cannot cross a sentence end is searched only in the sentences holding an
    # anchor of its prefilter (by id, from the anchor pass) and of each of those sets.
    required = tuple(map(anchor_set, required))
    stretches = (pf, dict(zip(pf.ascii_ids, pf.ascii_anchors)), required) \
        if sentences and pf is not None else None
    # ``starts``: every match begins where one of these ASCII anchors (by id) does
    # (ruleaids.RuleAids.starts), so on a folded ASCII view it is tried at those offsets only.
    # On an ASCII view the pattern's plain-word alternations are factored (factored.py).
    return (pattern, pf, _pid(pf), lex, required, stretches,
            pf.ascii_ids if starts and pf is not None else None, factored(pattern) or pattern)


def plan(rule: Rule) -> tuple:
    """(entries, pids, max pid) of a pattern rule: ``pids`` is the set of its patterns' prefilter
    ids when every pattern is behind an indexed prefilter (on a folded ASCII view the rule then
    cannot match unless one of them hit, and only the patterns behind a pid that hit can:
    ``matcher._searched``), else None."""
    got = _PLANS.get(id(rule))
    if got is None or got[0] is not rule:
        aid = ruleaids.aids(rule)
        n = len(rule.regexes)
        entries = tuple(_entry(*parts) for parts in zip(
            rule.regexes, aid.prefilters or (None,) * n, aid.lexicons or (None,) * n,
            aid.requirements or ((),) * n, aid.sentences or (False,) * n,
            aid.starts or (False,) * n))
        indexed = all(e[1] is not None and e[2] >= 0 for e in entries)
        pids = frozenset(e[2] for e in entries) if indexed else None
        got = (rule, (entries, pids, max(pids) if pids else -1))
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[id(rule)] = got
    return got[1]


@dataclass(frozen=True, slots=True)
class ViewIndex:
    """The indexed rules (bit i: the set's rule i) that read one view."""
    view: str
    readers: int                   # every one of them
    pids: frozenset[int]           # the pids behind which their patterns are
    by_pid: dict[int, int]         # pid -> the readers with a pattern behind it
    max_pid: int                   # the largest of ``pids``
    # (max pid, bit) of the readers, largest first: those whose pids came after the view's anchor
    # pass was built (a rule set compiled later) cannot be judged from its hits.
    newest: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class SetPlan:
    rules: tuple[Rule, ...]        # the rules tried, in order (context rules are scored apart)
    plans: tuple[tuple | None, ...]   # per rule: its ``plan``, None for a signal rule
    always: int                    # the rules tried on every text: signals, unindexed patterns
    views: tuple[ViewIndex, ...]


_SETS: dict[int, tuple] = {}


def set_plan(rules: tuple[Rule, ...]) -> SetPlan:
    got = _SETS.get(id(rules))
    if got is None or got[0] is not rules:
        got = (rules, _build(rules))
        if len(_SETS) >= _MAX_PLANS:
            _SETS.clear()
        _SETS[id(rules)] = got
    return got[1]


def order(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Rules with ``requires`` go last and are evaluated only when a rule they need has fired."""
    return tuple(r for r in rules if not r.requires) + tuple(r for r in rules if r.requires)


def _build(rules: tuple[Rule, ...]) -> SetPlan:
    kept = tuple(r for r in order(rules) if r.context is None)
    plans = tuple(None if r.signal is not None else plan(r) for r in kept)
    always = 0
    readers: dict[str, dict[int, int]] = {}      # view -> {bit: max pid}
    by_pid: dict[str, dict[int, int]] = {}
    for i, (rule, p) in enumerate(zip(kept, plans)):
        bit = 1 << i
        if p is None or p[1] is None:
            always |= bit
            continue
        for view in rule.views:
            readers.setdefault(view, {})[bit] = p[2]
            index = by_pid.setdefault(view, {})
            for pid in p[1]:
                index[pid] = index.get(pid, 0) | bit
    views = tuple(
        ViewIndex(view, sum(got), frozenset(by_pid[view]), by_pid[view], max(got.values()),
                  tuple(sorted(((m, b) for b, m in got.items()), reverse=True)))
        for view, got in readers.items())
    return SetPlan(kept, plans, always, views)


def candidates(sp: SetPlan, views) -> int:
    """The rules of ``sp`` (bit i: ``sp.rules[i]``) that can match the text ``views`` reads
    (scanviews.Views): all but the indexed rules that, in every view they read, find it empty
    or, on a folded ASCII view, none of their pids hit. Those ``matcher._matches`` would reject
    without a search: an anchor of a prefilter is in every match of its pattern."""
    mask = sp.always
    for vi in sp.views:
        v = views(vi.view)
        if v is None:
            continue
        if not (v.folded and v.ascii):
            mask |= vi.readers
            continue
        by_pid = vi.by_pid
        for pid in v.hit_set & vi.pids:
            mask |= by_pid[pid]
        if vi.max_pid >= v.n_hits:
            for max_pid, bit in vi.newest:
                if max_pid < v.n_hits:
                    break
                mask |= bit
    return mask
