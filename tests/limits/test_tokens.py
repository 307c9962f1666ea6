"""The token counter against bpe_openai itself: same encodings per model, same counts."""
import subprocess
import sys

import pytest

from proxy.limits.tokens import ENCODINGS, Encoding, TokenCounter

TEXTS = ["", "hello world", "  leading and trailing  ", "naïve café – “quotes” 漢字 😀\u200b\u0301 ß Ω",
         "<|endoftext|> is just text", "x\ud800y lone surrogate", "1234567890 " * 50,
         "def f(x):\n\treturn x ** 2  # code\r\n", "a" * 5000]


def test_models_map_to_the_encodings_bpe_openai_gives_them():
    from bpe_openai import compat
    counter = TokenCounter()
    for name, meta in compat.MODEL_REGISTRY.items():
        expected = meta.encoding if meta.encoding in ENCODINGS else None
        for spelled in (name, name.upper(), f"openai/{name}"):
            found = counter.encoding_for(spelled)
            assert (found.name if found else None) == expected, spelled


@pytest.mark.parametrize("name", ENCODINGS)
def test_counts_are_those_of_bpe_openai_encode_ordinary(name):
    import bpe_openai
    reference = bpe_openai.get_encoding(name)
    counter = TokenCounter()
    model = {"o200k_base": "gpt-4o", "cl100k_base": "gpt-4"}[name]
    for text in TEXTS:
        assert counter.count([text], model, 4) == len(reference.encode_ordinary(text)), repr(text[:40])
        assert counter.count([text], model, 4) == len(reference.encode_ordinary(text))   # remembered


def test_a_text_counted_once_is_not_counted_again():
    calls = []

    class Fake:
        def count(self, text):
            calls.append(text)
            return len(text.split())
    counter = TokenCounter()
    counter._loaded = {name: Encoding(name, Fake()) for name in ENCODINGS}
    history = ["first turn of a conversation", "the answer to it"]
    assert counter.count(history, "gpt-4o", 4) == 9
    assert counter.count([*history, "a new turn"], "gpt-4o", 4) == 12
    assert calls == [*history, "a new turn"]
    assert counter.count(history, "gpt-4", 4) == 9          # another encoding: counted anew
    assert len(calls) == 5


def test_counting_leaves_the_vocabularies_of_the_python_package_unloaded():
    # importing bpe_openai decodes every vocabulary into Python dicts; the counter does without
    script = ("import sys\nfrom proxy.limits.tokens import TokenCounter\n"
              "c = TokenCounter(); n = c.count(['hello world'], 'gpt-4o', 4)\n"
              "assert n == 2 and 'bpe_openai' not in sys.modules, sorted(m for m in sys.modules if 'bpe' in m)\n"
              "import bpe_openai\n"      # and the package still loads afterwards, sharing the module
              "assert len(bpe_openai.get_encoding('o200k_base').encode_ordinary('hello world')) == 2\n")
    subprocess.run([sys.executable, "-c", script], check=True)


def test_counts_looked_up_together_are_those_looked_up_one_at_a_time():
    """``count`` of several texts with one exchange's ``text_digest`` against the same texts
    counted one at a time, each with an exchange of its own: the same totals, every text
    counted once (repeats within one call too), the same counts remembered."""
    import random

    from proxy.exchange import Exchange

    calls = {"batch": [], "single": []}

    def fake(into):
        class Fake:
            def count(self, text):
                into.append(text)
                return len(text.split()) + 1
        return {name: Encoding(name, Fake()) for name in ENCODINGS}

    batch, single = TokenCounter(), TokenCounter()
    batch._loaded, single._loaded = fake(calls["batch"]), fake(calls["single"])
    rng = random.Random(14)
    words = ["alpha", "beta", "gamma", "delta", "", "a b", "x y z"]
    for _ in range(400):
        texts = [rng.choice(words) + " " * rng.randrange(3) for _ in range(rng.randrange(0, 6))]
        model = rng.choice(["gpt-4o", "gpt-4", "claude-3"])
        ex = Exchange("r", "POST", "/v1/chat/completions", "", {}, None, None)
        expected = 0
        for text in texts:
            expected += single.count([text], model, 4, Exchange("r", "POST", "/", "", {}, None, None).text_digest)
        assert batch.count(texts, model, 4, ex.text_digest) == expected
    assert calls["batch"] == calls["single"]
    for name in ENCODINGS:
        assert batch.memos[name].newest == single.memos[name].newest
        assert batch.memos[name].older == single.memos[name].older


def test_counts_stay_those_of_the_encoding_while_generations_turn_over(monkeypatch):
    """The remembered counts with small generations (4, so a call of up to 4 texts turns them over
    once at most): every total is the encoding's; a text is counted when it is not remembered,
    once per call, never when its count is in the newest generation (only the older one is
    dropped, at a turnover); at most two generations are kept; a call's texts are remembered."""
    import random

    from proxy.limits import tokens
    from proxy.scancache import text_digest

    monkeypatch.setattr(tokens, "COUNT_GENERATION", 4)
    calls = []

    class Fake:
        def count(self, text):
            calls.append(text)
            return len(text) % 7 + text.count("a")
    counter = TokenCounter()
    counter._loaded = {name: Encoding(name, Fake()) for name in ENCODINGS}
    rng = random.Random(16)
    pool = ["a" * k + "b" * rng.randrange(5) for k in range(14)]
    for _ in range(3_000):
        texts = [rng.choice(pool[:rng.choice([3, 6, 14])]) for _ in range(rng.randrange(0, 5))]
        model = rng.choice(["gpt-4o", "gpt-4"])
        memo = counter.memos[counter.encoding_for(model).name]
        newest, older = set(memo.newest), set(memo.older)
        del calls[:]
        assert counter.count(texts, model, 4) == sum(len(t) % 7 + t.count("a") for t in texts)
        assert len(calls) == len(set(calls))
        unknown = {t for t in texts if text_digest(t) not in newest | older}
        assert unknown <= set(calls) <= unknown | {t for t in texts if text_digest(t) in older - newest}
        assert len(memo.newest) <= 4 and len(memo.older) <= 4
        assert all(text_digest(t) in memo.newest or text_digest(t) in memo.older for t in texts)
    assert all(memo.older for memo in counter.memos.values())      # generations did turn over


def test_long_texts_are_counted_in_pieces():
    """A text up to _CHUNK characters goes to the tokenizer whole, a longer one in pieces of
    _CHUNK, the counts of the pieces added."""
    from proxy.limits.tokens import _CHUNK

    pieces = []

    class Fake:
        def count(self, text):
            pieces.append(len(text))
            return 1 + len(text) // 1000
    counter = TokenCounter()
    counter._loaded = {name: Encoding(name, Fake()) for name in ENCODINGS}
    for length, want in ((0, [0]), (_CHUNK - 1, [_CHUNK - 1]), (_CHUNK, [_CHUNK]),
                         (_CHUNK + 1, [_CHUNK, 1]), (2 * _CHUNK + 5, [_CHUNK, _CHUNK, 5])):
        del pieces[:]
        text = "ab" * (length // 2) + "c" * (length % 2)
        assert counter.count([text], "gpt-4o", 4) == sum(1 + n // 1000 for n in want)
        assert pieces == want
