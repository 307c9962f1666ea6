"""Token counting for reservations: prompt tokens with OpenAI's real tokenizers (bpe_openai,
offline), a character estimate for other models, plus the output tokens a request may cost."""
from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import math
import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..scancache import text_digest

# Newer OpenAI models the tokenizer package does not list by name, mapped by prefix.
_O200K = re.compile(r"^(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4|gpt-oss|omni-moderation)")
_CL100K = re.compile(r"^(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-)")
_CHUNK = 100_000            # bpe_openai refuses very long inputs in one piece
_CHUNK_TOKENS = 200_000     # and encodings with more tokens than this per piece (kept: same outcome)
_CACHE_MAX = 512
# counts remembered per text and encoding: a generation holds this many (a 32-byte digest and an
# int each, ~150 bytes with the dict's slot), at most two generations are kept
COUNT_GENERATION = 4096
# OpenAI chat framing: every message costs ~3 tokens, every answer is primed with 3.
PER_MESSAGE = 3
PER_REQUEST = 3
NO_OUTPUT = ("embeddings", "models", "passthrough")
OUTPUT_FIELDS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


ENCODINGS = ("o200k_base", "cl100k_base")
# The model names bpe_openai maps to these two encodings (its compat.MODEL_REGISTRY; the test
# beside this module compares the two). Any other name it knows maps to an encoding aifw does not
# count with, and none of those match the prefixes above: they, and unknown names, go by prefix.
MODEL_ENCODINGS = {
    "o200k_base": "o200k_base", "gpt-4o": "o200k_base", "gpt-4o-mini": "o200k_base",
    "gpt-4.1": "o200k_base", "gpt-4.1-mini": "o200k_base", "gpt-4o-128k": "o200k_base",
    "gpt-4.1-128k": "o200k_base",
    "cl100k_base": "cl100k_base", "gpt-3.5": "cl100k_base", "gpt-3.5-turbo": "cl100k_base",
    "gpt-3.5-turbo-0301": "cl100k_base", "gpt-3.5-turbo-0401": "cl100k_base",
    "gpt-3.5-turbo-0125": "cl100k_base", "gpt-35-turbo": "cl100k_base", "gpt-4": "cl100k_base",
    "gpt-4-0314": "cl100k_base", "gpt-4-0613": "cl100k_base", "gpt-4-32k": "cl100k_base",
    "text-embedding-ada-002": "cl100k_base", "text-embedding-3-small": "cl100k_base",
    "text-embedding-3-large": "cl100k_base",
}


def _bindings():
    """bpe_openai's compiled tokenizers without the Python package around them: importing
    ``bpe_openai`` decodes every vocabulary it ships into Python dicts (~0.6 s and ~65 MiB that
    stay resident), which counting never uses; the compiled module holds its own tables.
    Registered under its own name, so a later ``import bpe_openai`` shares it."""
    name = "bpe_openai._bindings"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec("bpe_openai")    # locates the package, does not run it
    for folder in (spec.submodule_search_locations or ()) if spec is not None else ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_bindings" + suffix)
            if os.path.exists(path):
                loader = importlib.machinery.ExtensionFileLoader(name, path)
                module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
                loader.exec_module(module)
                sys.modules[name] = module
                return module
    from bpe_openai import _bindings as module      # laid out otherwise: the ordinary import
    return module


@dataclass(frozen=True)
class Encoding:
    name: str
    tokenizer: Any            # bpe_openai's compiled tokenizer (count, encode)

    def count(self, text: str) -> int:
        """Tokens of ``text``, as ``len(bpe_openai's encode_ordinary(text))`` gives them."""
        try:
            n = self.tokenizer.count(text)
        except UnicodeEncodeError:     # lone surrogates: replaced first, as bpe_openai does
            n = self.tokenizer.count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))
        if n > _CHUNK_TOKENS:
            raise ValueError(f"{n} tokens in one piece of text: more than the tokenizer takes ({_CHUNK_TOKENS})")
        return n


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Encoding:
    # ~0.4 s and ~50 MiB each: a policy check or a policy without token limits never pays for
    # it. Encodings are immutable: once per process.
    return Encoding(name, _bindings().tokenizer_for_encoding(name))


class CountMemo:
    """Token counts of one encoding by text digest, in two generations: a count is looked up in
    the newest, then in the one before (and copied into the newest when found there); when the
    newest holds ``COUNT_GENERATION`` counts it becomes the older and the older is dropped. So a
    count used since the last turnover survives the next one (nearly least-recently-used), and
    a look-up that finds its count is one plain dict ``get``: a conversation re-sends its
    history with every turn, and a ScanCache (a Python call, a key tuple and an LRU move per
    text) cost ~3 k instructions per text more. Entries all have the same small size, so
    bounding their number bounds the memory."""

    __slots__ = ("newest", "older")

    def __init__(self) -> None:
        self.newest: dict[bytes, int] = {}
        self.older: dict[bytes, int] = {}

    def add(self, digest: bytes, n: int) -> None:
        newest = self.newest
        if len(newest) >= COUNT_GENERATION:
            self.older = newest
            newest = self.newest = {}
        newest[digest] = n


class TokenCounter:
    """Holds the encodings (shared across policy reloads via Services), loaded on first use or
    by ``warm`` in a background thread once the server is up, so they never delay readiness.
    Counts are remembered per text (by digest, bounded: ``CountMemo``): a conversation re-sends
    its history with every turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, Encoding] | None = None
        self._by_model: dict[str, Encoding | None] = {}
        self.memos = {name: CountMemo() for name in ENCODINGS}

    @property
    def _encodings(self) -> dict[str, Encoding]:
        loaded = self._loaded
        if loaded is None:
            with self._lock:          # a request racing the warm-up waits for it, once
                if self._loaded is None:
                    self._loaded = {name: _load(name) for name in ENCODINGS}
                loaded = self._loaded
        return loaded

    def warm(self) -> None:
        """Load the encodings now (Services.warm_up runs this in a thread at start)."""
        self._encodings  # noqa: B018 - the property loads them

    def encoding_for(self, model: str | None) -> Encoding | None:
        if not model:
            return None
        try:
            return self._by_model[model]
        except KeyError:
            pass
        name = model.split("/")[-1].lower()      # "openai/gpt-4o", Azure deployment paths
        known = MODEL_ENCODINGS.get(name)
        if known is not None:
            encoding = self._encodings[known]
        elif _O200K.match(name):
            encoding = self._encodings["o200k_base"]
        elif _CL100K.match(name):
            encoding = self._encodings["cl100k_base"]
        else:
            encoding = None
        if len(self._by_model) < _CACHE_MAX:     # model names come from clients: stay bounded
            self._by_model[model] = encoding
        return encoding

    def count(self, texts: Iterable[str], model: str | None, chars_per_token: float,
              digest: Callable[[str], bytes] = text_digest) -> int:
        """``digest``: the exchange's ``text_digest`` (a text digested once per exchange). A text
        whose count is remembered is not counted again (a repeat within ``texts`` neither)."""
        encoding = self.encoding_for(model)
        if encoding is None:
            return sum(estimate(len(t), chars_per_token) for t in texts)
        texts = list(texts)
        memo = self.memos[encoding.name]
        newest = memo.newest
        total = 0
        for text, d in zip(texts, map(digest, texts)):
            n = newest.get(d)
            if n is None:
                n = memo.older.get(d)
                if n is None:
                    n = encoding.count(text) if len(text) <= _CHUNK else \
                        sum(encoding.count(text[start:start + _CHUNK]) for start in range(0, len(text), _CHUNK))
                memo.add(d, n)
                newest = memo.newest      # add may have started a new generation
            total += n
        return total


def estimate(chars: int, chars_per_token: float) -> int:
    return math.ceil(chars / chars_per_token) if chars > 0 else 0


def prompt_tokens(counter: TokenCounter, ex, chars_per_token: float) -> int:
    """Prompt tokens of the request: its text slots, plus OpenAI's per-message framing."""
    slots = ex.request_slots
    if slots:
        n = counter.count([s.text for s in slots if s.text], ex.model, chars_per_token, ex.text_digest)
        messages = len({s.index for s in slots if s.kind in ("message", "content_part", "tool_result")})
        return n + (PER_MESSAGE * messages + PER_REQUEST if messages else 0)
    # Not parsed into slots (unknown endpoint): charge by size, so nothing is free.
    return estimate(len(ex.raw_body or b""), chars_per_token)


def output_allowance(body: Any, endpoint_kind: str | None, default: int) -> int:
    """Output tokens the request may produce: its own cap, else the policy default."""
    if endpoint_kind in NO_OUTPUT or not isinstance(body, dict):
        return 0
    cap = None
    for field in OUTPUT_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            cap = value
            break
    if cap is None:
        cap = default
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        cap *= n      # every choice can use the full cap
    return cap
