"""Match compiled rules against a prepared text, each search bounded in time."""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import prefilter as _prefilter, ruleaids
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


# Per rule: (rule, (entries, pids, max pid)) with entries ((pattern, prefilter, prefilter id or
# -1, lexicon), ...), keyed by id(rule) and checked by identity, so the pairing of patterns and
# their aids (ruleaids.py) is not rebuilt on every text.
_PLANS: dict[int, tuple] = {}
_MAX_PLANS = 4096


def _plan(rule: Rule) -> tuple:
    got = _PLANS.get(id(rule))
    if got is None or got[0] is not rule:
        aid = ruleaids.aids(rule)
        prefilters = aid.prefilters or (None,) * len(rule.regexes)
        lexicons = aid.lexicons or (None,) * len(rule.regexes)
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


def warm(rules) -> None:
    """Build every aid and plan ``rules`` need (and the anchor index over all of them), so the
    first text scanned pays for none of it."""
    for rule in rules:
        if rule.context is None and rule.signal is None:
            _plan(rule)
    _prefilter.prefilter_hits("")


class _Views:
    """The views of one text as the rules read them, each looked up (and its anchor hits
    computed) once per ``match`` instead of once per rule."""

    __slots__ = ("prepared", "got")

    def __init__(self, prepared: Prepared):
        self.prepared = prepared
        self.got: dict[str, tuple] = {}

    def __call__(self, view: str) -> tuple:
        got = self.got.get(view)
        if got is None:
            prepared = self.prepared
            text = prepared.view(view)
            if not text:
                got = (text,)
            elif view in FOLDED_VIEWS:
                hits, hit_set, other_set = prepared.anchor_hits(view, prefilter_hit_set)
                got = (text, True, text.isascii(), hits, len(hits), hit_set, other_set)
            else:
                got = (text, False, text.isascii(), None, 0, frozenset(), frozenset())
            self.got[view] = got
        return got


def rule_matches(rule: Rule, prepared: Prepared, timeout: float = SEARCH_TIMEOUT) -> bool:
    return _matches(rule, prepared, _Views(prepared), timeout)


def _matches(rule: Rule, prepared: Prepared, views: _Views, timeout: float = SEARCH_TIMEOUT) -> bool:
    if rule.context is not None:      # needs the system prompt: scored in context.py
        return False
    if rule.signal is not None:
        return getattr(prepared, rule.signal) >= rule.min_count
    plan, pids, max_pid = _plan(rule)
    seen: list[str] = []
    for view in rule.views:
        got = views(view)
        text = got[0]
        if not text:
            continue
        for s in seen:                # the very view just searched (same object)
            if s is text:
                break
        else:
            seen.append(text)
            _, folded, ascii_text, hits, n_hits, hit_set, other_set = got
            # Every prefilter's ASCII anchors on a folded view at once (with the non-ASCII ones,
            # tested as substrings, the same answer as ``pf.may_match``).
            if folded and ascii_text and pids is not None and max_pid < n_hits \
                    and pids.isdisjoint(hit_set):
                continue
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
    views = _Views(prepared)
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
