"""Shortcuts on a request's new turn change no value: the suffix signals reading one ``LastLine``
(JB-2007 and JB-2010 share its odd-symbol and glue counts) against their definitions written out
plainly, and a required set's ``occurs_in`` against ``occurs_any``; on generated texts, the
rules' cases and, when they are next to the repository, rows of the shared datasets. (The
matcher's shortcuts, the patterns tried behind a hit pid only among them, are compared with
``match_plain`` in test_fast_path.py.)"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from proxy.detection import charclass, charlm, normalize, plans, prefilter, ruleaids
from proxy.detection.normalize import Prepared
from proxy.detection.rules import load_rules

RULES = [r for rs in load_rules().values() for r in rs if r.context is None]
CASES = sorted({c for r in RULES for c in r.match_cases + r.no_match_cases})


def adversarial_plain(text: str) -> int:
    """``normalize.adversarial_suffix`` as it read before the counts were shared."""
    last = text.rstrip().rsplit("\n", 1)[-1][-160:]
    if len(last) < 40:
        return 0
    return int(len(charclass.ODD.findall(last)) >= 5 and len(charclass.GLUE.findall(last)) >= 3
               and sum(map(str.isalpha, last)) / len(last) > 0.45
               and len(normalize._PLAIN_WORD.findall(text[:300])) >= 4)


def gibberish_plain(text: str) -> int:
    """``normalize.gibberish_suffix`` with every count and test made on its own, by the patterns."""
    last = text.rstrip().rsplit("\n", 1)[-1][-normalize.SUFFIX_CHARS:]
    if len(last) < 100 or adversarial_plain(text):
        return 0
    if charclass.B64_TAIL.search(last) is not None or normalize._HEX.search(last[-80:]) is not None:
        return 0
    end = last[-charlm.TAIL:]
    if normalize._PROSE_TAIL.fullmatch(end.split(" ", 1)[-1]) is not None \
            and charclass.GLUE.search(end) is None:
        return 0
    tail = last[-160:]
    score = (charlm._tail_contrast(last) + 0.08 * min(len(charclass.ODD.findall(tail)), 10)
             + 0.08 * min(len(charclass.GLUE.findall(tail)), 10))
    return max(int(score * 100), 0)


def _same_signals(text: str) -> None:
    adversarial, gibberish = adversarial_plain(text), gibberish_plain(text)
    assert normalize.adversarial_suffix(text) == adversarial, text
    assert normalize.gibberish_suffix(text) == gibberish, text
    shared = normalize.LastLine(text)          # counts left behind by the other signal
    assert normalize.gibberish_suffix(text, None, shared) == gibberish, text
    assert normalize.adversarial_suffix(text, shared) == adversarial, text
    first = Prepared(text)                     # either signal asked first
    assert (first.gibberish_suffix, first.adversarial_suffix) == (gibberish, adversarial), text
    first = Prepared(text)
    assert (first.adversarial_suffix, first.gibberish_suffix) == (adversarial, gibberish), text


# Adversarial tails: the rules' own suffix cases cut into tokens, symbols, case flips, the PII
# guard's placeholders, base64 and hex runs, sentence ends.
_SUFFIX_CASES = [c for r in RULES if r.id in ("JB-2007", "JB-2010", "JB-2013") for c in r.match_cases]
_TOKENS = sorted({t for c in _SUFFIX_CASES + CASES for t in c.split()}) + [
    "<PHONE_NUMBER_1>", "<EMAIL_ADDRESS_2>", "{[", "]}", "\\\\", "camelCase", "xY", "a{b", "$(", "=~",
    "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", "0x41 0x42 0x43 0x44 0x45 0x46 0x47 0x48", "!", "!!", ".", "?",
    "é", "漢字", "\u200b", "48213)", "(reference", "\t", "\x1c"]
_SEPARATORS = [" ", " ", " ", "", "\n", ". ", ", "]


@st.composite
def suffix_texts(draw) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(_TOKENS), st.sampled_from(_SEPARATORS)),
                          min_size=1, max_size=60))
    return "".join(t + s for t, s in parts)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suffix_texts())
def test_suffix_signals_equal_their_plain_definitions_on_generated_texts(text):
    _same_signals(text)


def test_suffix_signals_equal_their_plain_definitions_on_rule_cases():
    rnd = random.Random(5)
    texts = list(CASES)
    # long lines ending in each case, and the cases glued to random tokens: both signals past
    # their length gates, and each count on either side of its threshold
    texts += [rnd.choice(CASES) + " " + case for case in CASES]
    texts += [" ".join(rnd.choice(_TOKENS) for _ in range(rnd.randint(10, 50))) for _ in range(1500)]
    assert sum(adversarial_plain(t) for t in texts) > 5
    assert sum(gibberish_plain(t) >= 95 for t in texts) > 5
    assert sum(0 < gibberish_plain(t) < 95 for t in texts) > 100
    for text in texts:
        _same_signals(text)


_ROOT = Path(__file__).resolve().parents[2]
DATASETS = next((d for d in (_ROOT.parent / "shared" / "datasets",
                             _ROOT.parent.parent / "shared" / "datasets") if d.is_dir()), None)


@pytest.mark.skipif(DATASETS is None, reason="shared/datasets is not next to the repository")
def test_suffix_signals_equal_their_plain_definitions_on_dataset_rows():
    rows = []
    for path in sorted(DATASETS.glob("*/*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            rows += [json.loads(line)["text"] for i, line in enumerate(fh) if i % 7 == 0]
    assert len(rows) > 1000
    for text in rows:
        _same_signals(text)


# --- Required sets: prefilter.AnchorSet ----------------------------------------------------------

def _required_sets() -> list[prefilter.AnchorSet]:
    """Every further required set of every rule, as the plans keep them."""
    out = []
    for rule in RULES:
        if rule.regexes:
            for entry in plans.plan(rule)[0]:
                out.extend(entry[4])
    return out


def test_required_sets_are_shared_anchor_sets():
    sets = _required_sets()
    assert sets and all(isinstance(s, prefilter.AnchorSet) for s in sets)
    by_content: dict[tuple, prefilter.AnchorSet] = {}
    for s in sets:
        assert by_content.setdefault(tuple(s), s) is s       # one object per distinct set
    assert len(by_content) < len(sets)                       # some patterns share a set
    raw = {tuple(r) for rule in RULES for req in ruleaids.aids(rule).requirements for r in req}
    assert set(by_content) == raw


def test_occurs_in_equals_occurs_any():
    sets = _required_sets()
    assert any(a.startswith(prefilter.WORD_START) for s in sets for a in s)
    assert any(not a.startswith(prefilter.WORD_START) for s in sets for a in s)
    rnd = random.Random(3)
    texts = [normalize.normalize(c) for c in CASES]
    # each anchor's word at a word start, inside a word, at the very start and end, non-ASCII around
    for s in sets[::3]:
        word = prefilter._strip(rnd.choice(s))
        texts += [word, "x" + word, word + "x", "a " + word + " b", "é" + word, "_" + word, "'" + word]
    for anchors in sets:
        for text in texts[::11] + texts[-60:] + rnd.sample(texts, 40):
            assert anchors.occurs_in(text) == prefilter.occurs_any(anchors, text), (anchors, text)
