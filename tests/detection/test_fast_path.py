"""The matcher's shortcuts (literal prefilters, word-list gates, views shared or skipped, sentence
windows and the further required sets looked for in them, the rule index that leaves out the rules
whose anchors a text lacks) change no finding: ``match`` gives exactly what ``match_plain`` gives (every pattern
searched in every view), on generated texts built from the rules' own words and disguises, and
on rows of the shared datasets when they are next to the repository."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from proxy.detection import matcher, plans, prefilter, scanviews
from proxy.detection.matcher import match, match_plain, rule_matches_plain
from proxy.detection.normalize import Prepared
from proxy.detection.settings import SCANNABLE_ROLES, compile_settings

# Every rule of every set, whatever paranoia level it needs.
SETTINGS = compile_settings({"paranoiaLevel": 4, "model": {"enabled": False}})
ROLE_RULES = {role: SETTINGS.rules_by_role[role] for role in ("user", "tool")}
ALL_TEXT_RULES = tuple(r for r in SETTINGS.detector.rules if r.context is None)
assert set(SETTINGS.rules_by_role) == set(SCANNABLE_ROLES)


# scanviews' thresholds: as shipped, and forced so that every text takes the long-text paths:
# searched sentence by sentence however short, the further required sets looked for only in the
# stretches holding the rarest one (joined into one string), or always in the whole view, and
# the sentence ends found by numpy.
_SHIPPED = {name: getattr(scanviews, name)
            for name in ("SENTENCES_FROM", "LONG_VIEW", "NUMPY_FROM", "WHOLE_VIEW_SHARE")}
THRESHOLDS = (_SHIPPED,
              {"SENTENCES_FROM": 0, "LONG_VIEW": 0, "NUMPY_FROM": 0, "WHOLE_VIEW_SHARE": 2.0},
              {"SENTENCES_FROM": 0, "LONG_VIEW": 0, "NUMPY_FROM": 0, "WHOLE_VIEW_SHARE": 0.0})


def _same(text: str) -> None:
    for rules in (*ROLE_RULES.values(), ALL_TEXT_RULES):
        plain = match_plain(rules, Prepared(text))
        for thresholds in THRESHOLDS:
            for name, value in thresholds.items():
                setattr(scanviews, name, value)
            try:
                fast = match(rules, Prepared(text))
            finally:
                for name, value in _SHIPPED.items():
                    setattr(scanviews, name, value)
            assert not fast.timed_out
            assert (fast.rule_ids, fast.score) == (plain.rule_ids, plain.score), (thresholds, text)


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for rule in ALL_TEXT_RULES:
        for case in rule.match_cases + rule.no_match_cases:
            words.update(case.split())
        words.update(w for p in rule.phrases for w in p.split())
    return sorted(words)


VOCAB = _vocabulary()
CASES = sorted({c for r in ALL_TEXT_RULES for c in r.match_cases + r.no_match_cases})
SEPARATORS = [" ", " ", " ", ". ", ", ", "! ", "? ", "\n", "  ", " - ", "'", ": ", "...", ";", "\t"]
LEET = str.maketrans({"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"})


def _disguise(text: str, how: int) -> str:
    if how == 1:
        return text.translate(LEET)
    if how == 2:
        return " ".join(text)                                      # spaced letters
    if how == 3:
        return "decode this: " + base64.b64encode(text.encode()).decode()
    if how == 4:
        return text.upper()
    if how == 5:
        return "\u200b".join(text.split(" "))                       # zero-width joins
    if how == 6:
        return text.replace("o", "\u043e").replace("a", "\u0430")  # Cyrillic look-alikes
    if how == 7:
        return ".".join(text)
    return text


fragments = st.one_of(
    st.sampled_from(VOCAB),
    st.sampled_from(CASES),
    st.text(alphabet="ab .!?,'\n-_é1", max_size=8),
)


@st.composite
def texts(draw) -> str:
    parts = draw(st.lists(st.tuples(fragments, st.sampled_from(SEPARATORS)), min_size=1, max_size=14))
    text = "".join(f + s for f, s in parts)
    return _disguise(text, draw(st.integers(0, 9)))


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts())
def test_generated_texts_give_the_same_findings(text):
    _same(text)


@pytest.mark.parametrize("case", CASES)
def test_rule_cases_and_their_disguises_give_the_same_findings(case):
    for how in range(8):
        _same(_disguise(case, how))
    _same("Some words first. " + case + " And a sentence after it!")


_ROOT = Path(__file__).resolve().parents[2]
DATASETS = next((d for d in (_ROOT.parent / "shared" / "datasets",
                             _ROOT.parent.parent / "shared" / "datasets") if d.is_dir()), None)
EVERY = 23          # every 23rd row of each file: ~450 rows, a few seconds


def _dataset_rows() -> list[str]:
    rows = []
    for path in sorted(DATASETS.glob("*/*.jsonl")) if DATASETS else ():
        with open(path, encoding="utf-8") as fh:
            rows += [json.loads(line)["text"] for i, line in enumerate(fh) if i % EVERY == 0]
    return rows


@pytest.mark.skipif(DATASETS is None, reason="shared/datasets is not next to the repository")
def test_dataset_rows_give_the_same_findings():
    rows = _dataset_rows()
    assert len(rows) > 300
    for text in rows:
        _same(text)


# --- The rule index (plans.candidates): only the rules that can match are tried -----------------

def _plain_hits(rules, text: str) -> set[str]:
    prepared = Prepared(text)
    return {r.id for r in rules if rule_matches_plain(r, prepared)}


def _candidate_ids(rules, text: str) -> set[str]:
    sp = plans.set_plan(rules)
    mask = plans.candidates(sp, scanviews.Views(Prepared(text)))
    return {r.id for i, r in enumerate(sp.rules) if mask >> i & 1}


@pytest.mark.parametrize("case", CASES)
def test_the_rule_index_keeps_every_rule_that_matches(case):
    for rules in (*ROLE_RULES.values(), ALL_TEXT_RULES):
        for how in (0, 1, 2, 3, 6):
            text = _disguise(case, how)
            assert _plain_hits(rules, text) <= _candidate_ids(rules, text), (case, how)


def test_the_rule_index_leaves_rules_out():
    # not a vacuous shortcut: on plain prose most rules are not tried at all
    text = "I moved on the 3rd and my partner moved in with me. Does that change the premium?"
    for rules in (*ROLE_RULES.values(), ALL_TEXT_RULES):
        sp = plans.set_plan(rules)
        assert len(_candidate_ids(rules, text)) < len(sp.rules) / 2


def _hit_state_knowing(n_pids: int):
    """prefilter_hit_state as if only the first ``n_pids`` prefilter id sets had existed when the
    anchor pass was built (rules compiled later): their rules cannot be judged by its hits."""
    real = scanviews.prefilter_hit_state

    def state(text):
        hit_set, n_hits, others, n_anchors, where = real(text)
        n = min(n_pids, n_hits)
        return frozenset(p for p in hit_set if p < n), n, others, n_anchors, where
    return state


@pytest.mark.parametrize("share", [0.0, 0.3, 0.7])
def test_rules_newer_than_the_anchor_pass_are_still_tried(monkeypatch, share):
    n_pids = int(share * prefilter.prefilter_hit_state("")[1])
    monkeypatch.setattr(scanviews, "prefilter_hit_state", _hit_state_knowing(n_pids))
    for case in CASES[::3]:
        for text in (case, _disguise(case, 1), "Some words first. " + case):
            for rules in (ROLE_RULES["user"], ALL_TEXT_RULES):
                fast, plain = match(rules, Prepared(text)), match_plain(rules, Prepared(text))
                assert (fast.rule_ids, fast.score) == (plain.rule_ids, plain.score), (share, text)


# --- Patterns tried only where their anchors start (matcher._tried_at) ------------------------

def _starting_patterns() -> list[tuple]:
    """(rule, pattern, its anchor ids) of every pattern the matcher tries at anchor offsets."""
    out = []
    for rule in ALL_TEXT_RULES:
        if rule.signal is None:
            for entry in plans.plan(rule)[0]:
                if entry[6] is not None:
                    out.append((rule, entry[0], entry[6]))
    return out


STARTING = _starting_patterns()


def _in_and_around(case: str):
    """The case under four of its disguises, and inside a sentence of other words."""
    for how in (0, 1, 4, 7):
        yield _disguise(case, how)
        yield "Some words first, then " + case + " and more after."


def test_many_patterns_are_tried_at_their_anchors_only():
    assert len(STARTING) > 50
    assert any(r.id == "JB-2009" for r, _p, _ids in STARTING)


@pytest.mark.parametrize("case", CASES)
def test_trying_a_pattern_at_its_anchors_finds_what_a_search_finds(case):
    # Each such pattern, on each folded ASCII view of the case (and of its disguises, and inside
    # other sentences): tried at the offsets where its anchors start, it matches exactly when a
    # search finds it, in the whole view and from an offset inside it.
    for text in _in_and_around(case):
        prepared = Prepared(text)
        for rule, pattern, ids in STARTING:
            for view in rule.views:
                v = scanviews.Views(prepared)(view)
                if v is None or not (v.folded and v.ascii):
                    continue
                offsets = matcher._offsets(ids, v.where)
                for start in (0, len(v.text) // 3):
                    want = pattern.search(v.text, start, len(v.text)) is not None
                    got = matcher._tried_at(pattern, v.text, offsets, start, len(v.text), 1.0)
                    assert got == want, (rule.id, pattern.pattern, v.text, start)


def test_findings_are_the_same_when_every_such_pattern_is_tried_at_its_anchors(monkeypatch):
    # the shipped threshold searches a view holding many anchor occurrences instead
    monkeypatch.setattr(matcher, "CHARS_PER_TRY", 0)
    for case in CASES:
        _same(case)
        _same("Some words first. " + case + " And a sentence after it!")


# --- Plain-word alternations factored for ASCII views (factored.py) ----------------------------

FACTORED = [(rule, entry[0], entry[7]) for rule in ALL_TEXT_RULES if rule.signal is None
            for entry in plans.plan(rule)[0] if entry[7] is not entry[0]]


def test_many_patterns_have_their_alternations_factored():
    assert len(FACTORED) > 50
    assert any(r.id == "JB-2009" for r, _p, _f in FACTORED)


@pytest.mark.parametrize("case", CASES)
def test_a_factored_pattern_finds_what_the_pattern_finds_on_ascii_text(case):
    # not only whether it matches: the same first match, its span and its groups' spans
    for text in _in_and_around(case):
        prepared = Prepared(text)
        for rule, pattern, fast in FACTORED:
            for view in rule.views:
                text = prepared.view(view)
                if not text.isascii():
                    continue
                for start in (0, len(text) // 3):
                    want, got = pattern.search(text, start), fast.search(text, start)
                    assert (want and (want.span(), want.regs)) == (got and (got.span(), got.regs)), \
                        (rule.id, fast.pattern, text, start)
