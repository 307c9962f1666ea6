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
from proxy.pii.vault import Vault

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
    # ~5,600 ASCII texts without shared/datasets next to the repository (a fresh clone), ~9,000 with
    assert sum(t.isascii() for t in texts) > 5_000 and sum(not t.isascii() for t in texts) > 100
    found = 0
    for text in texts:
        plain = {w for _, w in _needle_automaton().iter(text.casefold())}
        assert Probe(text).found == plain, text
        found += len(plain) > 1
    assert found > 1000        # texts holding several needles, overlapping ones too


def _clustered_runs_plain(text, runs):
    """phone._clustered_runs as it was written first: the cluster breaks, then each cluster's
    digits summed."""
    from proxy.pii.recognizers.phone import _EXT_GAP
    if not runs:
        return []
    breaks = [i for i in range(1, len(runs)) if runs[i][0] - runs[i - 1][1] > 3
              and (runs[i][0] - runs[i - 1][1] > 11 or not _EXT_GAP.fullmatch(text, runs[i - 1][1], runs[i][0]))]
    out = []
    first = 0
    for b in breaks + [len(runs)]:
        if sum(e - s for s, e in runs[first:b]) >= 7:
            out.extend(range(first, b))
        first = b
    return out


def test_phone_prechecks_equal_their_patterns():
    """The phone recogniser's one-pass clusters, its date-shape test behind a separator test and
    its currency test behind the two characters before a number, against the plain forms, at
    every digit-run start (and every position of short texts) of the corpus."""
    import random
    from proxy.pii.recognizers import phone
    rnd = random.Random(8)
    dense = ["".join(rnd.choice(["12", "3", "4567", " ", "-", ".", "/", " x", " ext. ", "$", "€ ",
                                 "USD ", "EUR", "D ", "(", ")", "+", "ab", "JPY ", "CHF", "INR ", "GBP",
                                 "CAD ", "AUD", "£", "¥ ", "₹", "Y", "xUSD"]) for _ in range(rnd.randint(0, 14)))
             for _ in range(4000)]
    clustered = currency = dated = 0
    for text in _texts() + tuple(dense):
        runs = Probe(text).runs
        got = phone._clustered_runs(text, runs)
        assert got == _clustered_runs_plain(text, runs), text
        clustered += bool(got)
        where = range(len(text) + 1) if len(text) < 60 else sorted({a for a, _ in runs} | {len(text)})
        for start in where:
            plain = phone._CURRENCY.search(text, max(0, start - 5), start) is not None
            assert phone._after_currency(text, start) == plain, (text, start)
            currency += plain
        for a, b in runs:
            for piece in (text[a:], text[max(0, a - 2):b + 12], text[a:b]):
                plain = phone._DATE_SHAPE.match(piece) is not None
                assert phone._date_shaped(piece) == plain, piece
                dated += plain
    assert clustered > 1000 and currency > 300 and dated > 100


@pytest.mark.parametrize("few", [16, 10**9])
def test_vault_restore_equals_the_pattern_substitution(few, monkeypatch):
    """Vault.restore (a search per "<", for texts with few of them) against restore_plain (one
    PLACEHOLDER substitution): the same text and the same counts in the same order, for vaults
    holding restorable and other placeholders, entities the pattern cannot match and numbers
    past six digits, in texts of placeholders, their fragments and brackets."""
    import random
    from proxy.pii import vault as vault_module
    monkeypatch.setattr(vault_module, "_FEW_BRACKETS", few)   # 10**9: the search path for every text
    rnd = random.Random(3)
    entities = ("PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN", "X_2", "X_", "A", "lower", "A-B", "É")
    restored = 0
    for round_ in range(300):
        vault = Vault()
        vault.reserve("<PHONE_NUMBER_2> and <A_1>" if round_ % 3 == 0 else "")
        if round_ % 5 == 0:
            vault._next["US_SSN"] = 999_998          # the next ones: 999999, then seven digits
        pieces = ["<", ">", "_", "1", " ", "<<", "x", "\"", "\\", "\n", "é"]
        for _ in range(rnd.randint(1, 8)):
            entity = rnd.choice(entities)
            ph = vault.placeholder(entity, f"v{rnd.randint(0, 5)}\"é\\", rnd.random() < 0.8)
            pieces += [ph, ph[:-1], ph[1:], "<" + ph, ph + ">"]
        for _ in range(20):
            text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30)))
            for escape in (False, True):
                got = vault.restore(text, escape)
                plain = vault.restore_plain(text, escape)
                assert got[0] == plain[0] and list(got[1].items()) == list(plain[1].items()), text
                assert vault.holds_restorable(text) == bool(plain[1]), text
                restored += got[0] != text
    assert restored > 1000


async def test_answers_scanned_without_the_cache_judge_as_through_it(monkeypatch):
    """An answer holding a restorable placeholder is scanned without the scan cache: the same
    answer text, findings and audit copy as through the cache, over exchanges whose answers hold
    the caller's placeholders, values of their own, both and neither; only answers restoration
    leaves alone get a cache entry."""
    import asyncio
    import random
    from proxy.scancache import ScanCache, text_digest
    from .helpers import chat_exchange, make_guard, set_answer
    rnd = random.Random(21)
    texts = [t for t in _texts() if len(t) < 400][::7]
    runs = []
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(Vault, "holds_restorable", lambda self, text: False)
        guard, services = make_guard({"restore": True})
        cache = guard._response.memo.cache = guard._request.memo.cache = ScanCache()
        rnd.seed(21)
        out = []
        used = 0
        for i, text in enumerate(texts):
            ex = chat_exchange(("user", text))
            ex.capture_text = True
            await guard.on_request(ex)
            sent = ex.body["messages"][0]["content"]
            answer = rnd.choice([sent, "You said: " + sent, texts[i - 1], sent + " " + texts[i - 2]])
            set_answer(ex, answer)
            key = guard._response.memo.key(text_digest(answer))
            known = key in cache._items
            skipped = shortcut and ex.state["pii"].vault.holds_restorable(answer)
            used += skipped
            await guard.on_response(ex)
            await guard.on_complete(ex)
            shown = ex.response_body["choices"][0]["message"]["content"]
            assert (key in cache._items) == (known or not skipped), answer
            out.append((shown, [(f.action, f.rule_ids, f.counts) for f in ex.findings],
                        services.get("pii_redactor")(ex, shown)))
        runs.append(out)
        if shortcut:
            assert used > 100
    assert runs[0] == runs[1]
