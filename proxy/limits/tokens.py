"""Token counting for reservations: prompt tokens with OpenAI's real tokenizers (bpe_openai,
offline), a character estimate for other models, plus the output tokens a request may cost."""
from __future__ import annotations

import functools
import math
import re
import threading
from typing import Any, Iterable

# Newer OpenAI models the tokenizer package does not list by name, mapped by prefix.
_O200K = re.compile(r"^(?:gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o1|o3|o4|gpt-oss|omni-moderation)")
_CL100K = re.compile(r"^(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-)")
_CHUNK = 100_000            # bpe_openai refuses very long inputs in one piece
_CACHE_MAX = 512
# OpenAI chat framing: every message costs ~3 tokens, every answer is primed with 3.
PER_MESSAGE = 3
PER_REQUEST = 3
NO_OUTPUT = ("embeddings", "models", "passthrough")
OUTPUT_FIELDS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


ENCODINGS = ("o200k_base", "cl100k_base")


@functools.lru_cache(maxsize=None)
def _load(name: str):
    # Importing bpe_openai decodes every vocabulary it ships (~0.6 s, ~100 MB): a policy check or
    # a policy without token limits never pays for it. Encodings are immutable: once per process.
    import bpe_openai
    return bpe_openai.get_encoding(name)


class TokenCounter:
    """Holds the encodings (shared across policy reloads via Services), loaded on first use or
    by ``warm`` in a background thread once the server is up, so they never delay readiness."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] | None = None
        self._by_model: dict[str, Any] = {}

    @property
    def _encodings(self) -> dict[str, Any]:
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

    def encoding_for(self, model: str | None):
        if not model:
            return None
        try:
            return self._by_model[model]
        except KeyError:
            pass
        name = model.split("/")[-1].lower()      # "openai/gpt-4o", Azure deployment paths
        encoding = None
        try:
            encoding = self._encodings.get(_encoding_name_for_model(name))
        except Exception:                        # noqa: BLE001 - unknown model: maybe by prefix
            if _O200K.match(name):
                encoding = self._encodings["o200k_base"]
            elif _CL100K.match(name):
                encoding = self._encodings["cl100k_base"]
        if len(self._by_model) < _CACHE_MAX:     # model names come from clients: stay bounded
            self._by_model[model] = encoding
        return encoding

    def count(self, texts: Iterable[str], model: str | None, chars_per_token: float) -> int:
        encoding = self.encoding_for(model)
        if encoding is None:
            return sum(estimate(len(t), chars_per_token) for t in texts)
        total = 0
        for text in texts:
            for start in range(0, len(text), _CHUNK):
                total += len(encoding.encode_ordinary(text[start:start + _CHUNK]))
        return total


def _encoding_name_for_model(name: str) -> str:
    import bpe_openai
    return bpe_openai.encoding_name_for_model(name)


def estimate(chars: int, chars_per_token: float) -> int:
    return math.ceil(chars / chars_per_token) if chars > 0 else 0


def prompt_tokens(counter: TokenCounter, ex, chars_per_token: float) -> int:
    """Prompt tokens of the request: its text slots, plus OpenAI's per-message framing."""
    slots = ex.request_slots
    if slots:
        n = counter.count((s.text for s in slots if s.text), ex.model, chars_per_token)
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
