"""Each per-request shortcut of the PII scan against the plain path it replaces, on the corpus
of tests/pii/corpus.py (the PII evaluation set, the other shared datasets, the benchmark bodies
and their echoed answers, seeded random texts of entity fragments)."""
from __future__ import annotations

import pytest

from proxy.pii.detector import default_detector
from proxy.pii.recognizers.financial import CardRecognizer, IbanRecognizer
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

    @staticmethod
    def _candidates(text, lo, hi, runs, clustered):
        """Every position from two characters before each clustered run's start tried."""
        from bisect import bisect_left
        from proxy.pii.recognizers.phone import _CANDIDATE
        out = []
        pos = lo
        for k in range(bisect_left(clustered, bisect_left(runs, (lo, -1))), len(clustered)):
            start = runs[clustered[k]][0]
            if start >= hi:
                break
            for at in range(max(pos, start - 2), start + 1):
                ch = text[at]
                if not (ch == "+" or ch == "(" or ch.isdigit() or ch == " " and text[at + 1] == "("):
                    continue
                m = _CANDIDATE.match(text, at, hi)
                if m is not None:
                    out.append(m)
                    pos = m.end()
                    break
        return out


class PlainCard(CardRecognizer):
    """The card recogniser with its pattern tried on every chain of digit groups, however few
    digits the chain holds."""

    def find(self, text, probe=None):
        from proxy.pii.recognizers import financial
        with_chain = financial._chain
        financial._chain = lambda text, runs, i: (runs[i][1], 99)
        try:
            return super().find(text, Probe(text))
        finally:
            financial._chain = with_chain


class PlainIban(IbanRecognizer):
    """The IBAN recogniser with the two characters before every digit run sliced and tested."""

    def find(self, text, probe=None):
        from stdnum import iban as stdnum_iban
        from proxy.pii.recognizers.financial import iban_checksum_ok
        out = []
        pos = 0
        for run_start, _ in Probe(text).runs:
            start = run_start - 2
            if start < pos or not text[start:run_start].isascii() or not text[start:run_start].isalpha():
                continue
            m = self._pattern.match(text, start)
            if m is None:
                continue
            raw = m.group()
            pos = m.start() + 1
            cut = len(raw)
            while cut >= 15:
                candidate = raw[:cut]
                compact = candidate.replace(" ", "").upper()
                if iban_checksum_ok(compact) and stdnum_iban.is_valid(compact):
                    out.append(Span(m.start(), m.start() + cut, "IBAN_CODE", 0.95))
                    pos = m.start() + cut
                    break
                cut = candidate.rfind(" ")
        return out


def _numeric_texts() -> tuple[str, ...]:
    """Digit groups joined by spaces, dashes and dots, next to letters, IBAN-like heads and phone
    prefixes: chains of runs just under and over a card's twelve digits, runs after letters."""
    import random
    rnd = random.Random(17)
    pieces = ["4111", "1111", "4111111111111111", "378282246310005", "5000 0000 0009", "6759-0000-0018",
              "0000", "12", "123", "1", "07700",
              "900461", " ", " ", "-", "-", ".", "  ", "GB82", "WEST", "DE89", "gb", "DE", "370400440532013000",
              "a", "X", "é", "\u0663", "+", "+44", "(", "(0)", ")", " (", "/", "ext. ", "call ", "card "]
    return tuple("".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 16))) for _ in range(6000))


@pytest.mark.parametrize("fast, plain", [(CardRecognizer, PlainCard), (IbanRecognizer, PlainIban)],
                         ids=["card", "iban"])
def test_card_and_iban_prechecks_find_what_the_plain_recognisers_find(fast, plain):
    """The card recogniser's chain test (fewer than twelve digits in a chain of runs: no pattern
    call) and the IBAN recogniser's one-character test before its two-letter test."""
    fast, plain = fast(), plain()
    found = 0
    for text in _texts() + _numeric_texts():
        got = fast.find(text, Probe(text))
        assert got == plain.find(text), text
        found += bool(got)
    assert found > 200


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
    swap = {CardRecognizer: PlainCard, IbanRecognizer: PlainIban}
    plain_recs = tuple(PlainPhone(r.regions) if isinstance(r, PhoneRecognizer)
                       else swap[type(r)]() if type(r) in swap else r for r in fast.recognizers)
    assert {type(r) for r in plain_recs} >= {PlainPhone, PlainCard, PlainIban}
    plain = type(fast)(plain_recs, fast.entities)
    for text in random_texts(3000, seed=41) + list(_numeric_texts()[::3]):
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


def test_context_words_in_ascii_windows_are_the_pattern_matches():
    """Context.any_in settles a word found in an ASCII window by its neighbours (no pattern call)
    and falls back to the pattern next to other characters: against the pattern's search, on
    windows before and after every digit run of the corpus and of texts dense in context words,
    their casings and the characters the look-arounds refuse."""
    import random
    from proxy.pii.recognizers import birthdate
    from proxy.pii.recognizers.context import Context
    from proxy.pii.recognizers.financial import _SSN_CONTEXT
    from proxy.pii.recognizers.phone import NOT_PHONE_WORDS, PHONE_CONTEXT_WORDS
    rnd = random.Random(23)
    words = ["call", "CALL", "Cell", "cellphone", "tel", "Tel.", "mob", "mobile", "ring", "text", "id",
             "ID", "order", "ssn", "SS#", "ss no", "born", "d.o.b", "dob", "phone"]
    edges = [" ", "_", "<", ">", "1", "a", "Z", ".", ":", "-", "é", "\u0663", "\u212a", "\n", "(", "#"]
    dense = ["".join(rnd.choice(words if rnd.random() < 0.5 else edges) for _ in range(rnd.randint(1, 24)))
             for _ in range(4000)]
    contexts = (Context.of(PHONE_CONTEXT_WORDS, 40, 12), Context.of(NOT_PHONE_WORDS, 30, 0), _SSN_CONTEXT,
                birthdate._BIRTH)
    assert all(c.words is not None for c in contexts)
    found = 0
    for text in _texts() + tuple(dense):
        runs = Probe(text).runs or [(len(text) // 2, len(text) // 2)]
        for a, b in runs[:6]:
            for lo, hi in ((max(0, a - 40), a), (max(0, a - 30), a), (b, b + 40), (0, len(text))):
                for context in contexts:
                    plain = context.pattern.search(text, lo, hi) is not None
                    assert context.any_in(text, lo, hi) == plain, (text, lo, hi, context.pattern.pattern)
                    found += plain
    assert found > 5000
