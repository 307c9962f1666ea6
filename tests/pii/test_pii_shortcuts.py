"""Each per-request shortcut of the PII scan against the plain path it replaces, on the corpus
of tests/pii/corpus.py (the PII evaluation set, the other shared datasets, the benchmark bodies
and their echoed answers, seeded random texts of entity fragments)."""
from __future__ import annotations

import pytest

from proxy.pii.detector import default_detector
from proxy.pii.recognizers.phone import PhoneRecognizer
from proxy.pii.recognizers.probe import Probe, _needle_automaton
from proxy.pii.recognizers.secrets import _JWT, _RULES, SecretRecognizer, _assignments, _jwt_header_ok
from proxy.pii.spans import Span

from .corpus import corpus, random_texts


def _texts() -> tuple[str, ...]:
    return corpus()


def plain_secrets(text: str) -> list[Span]:
    """Every credential rule run on every text, with no needle test."""
    out: list[Span] = []
    for rule in _RULES:
        if rule.entity == "PASSWORD" and rule.group == 0:
            out += _assignments(rule.pattern, text)
            continue
        out += [Span(m.start(rule.group), m.end(rule.group), rule.entity, 0.97)
                for m in rule.pattern.finditer(text)]
    out += [Span(m.start(), m.end(), "JWT", 0.97) for m in _JWT.finditer(text) if _jwt_header_ok(m.group())]
    return out


def test_secret_needles_skip_only_texts_without_a_credential():
    rec = SecretRecognizer()
    texts = _texts()
    found = 0
    for text in texts:
        got = list(rec.find(text, Probe(text)))
        assert got == plain_secrets(text), text
        found += bool(got)
    assert found > 50     # the corpus holds credentials of many kinds, JWTs too


class PlainPhone(PhoneRecognizer):
    """The phone recogniser without its shortcuts: candidates sought even where no cluster of
    seven digits is, and every judged core's digits counted and its date shape tested."""

    def find(self, text, probe=None, taken=(), contested=None):
        probe = Probe(text)
        if probe.digits < 7:
            return
        from proxy.pii.recognizers.phone import _clustered_runs
        pos = 0
        runs = probe.runs
        clustered = _clustered_runs(text, runs)
        for a, b in sorted(taken) + [(len(text), len(text))]:
            if a > pos:
                yield from self._find_in(text, pos, a, runs, clustered, contested)
            pos = max(pos, b)

    def _judge(self, text, start, end, contested, core, validated=False, digits=None):
        return super()._judge(text, start, end, contested, core, validated)


@pytest.mark.parametrize("contested", [None, []])
def test_phone_shortcuts_find_what_the_plain_recogniser_finds(contested):
    fast, plain = PhoneRecognizer(), PlainPhone()
    found = 0
    for text in _texts():
        got = list(fast.find(text, Probe(text), [], contested))
        assert got == list(plain.find(text, None, [], contested)), text
        found += bool(got)
    assert found > 300


def test_the_detector_on_generated_conversations_equals_its_plain_recognisers():
    """The whole detector with the shortcut recognisers swapped for the plain ones."""
    fast = default_detector()
    swap = {PhoneRecognizer: PlainPhone}
    plain_recs = tuple(swap.get(type(r), type(r))(r.regions) if isinstance(r, PhoneRecognizer) else r
                       for r in fast.recognizers)
    plain = type(fast)(plain_recs, fast.entities)
    for text in random_texts(3000, seed=41):
        assert fast.detect(text) == plain.detect(text), text


def test_probe_needles_equal_the_plain_walk():
    """The needles of ASCII text (a DFA over its lower-cased bytes) against pyahocorasick's walk
    of the case-folded text, on the corpus and on needle-dense texts."""
    import random
    from proxy.pii.recognizers.probe import _NEEDLES
    rnd = random.Random(5)
    words = sorted(_NEEDLES) + ["PASS", "Sk-Ant-", "D.O.B", "x", " ", "_", "-", "\u017f", "K"]
    dense = ["".join(rnd.choice(words) for _ in range(rnd.randint(0, 8))) for _ in range(3000)]
    texts = _texts() + tuple(dense)
    assert sum(t.isascii() for t in texts) > 9_000 and sum(not t.isascii() for t in texts) > 100
    found = 0
    for text in texts:
        plain = {w for _, w in _needle_automaton().iter(text.casefold())}
        assert Probe(text).found == plain, text
        found += len(plain) > 1
    assert found > 1000        # texts holding several needles, overlapping ones too
