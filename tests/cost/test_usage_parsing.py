"""Cached prompt tokens are read from every provider's usage shape."""
from __future__ import annotations

from types import SimpleNamespace

from proxy.exchange import Usage
from proxy.parsing.response import cached_of, set_usage


def test_cached_tokens_from_openai_responses_and_anthropic():
    assert cached_of({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}) == 4
    assert cached_of({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3}}) == 3
    assert cached_of({"input_tokens": 5, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 2}) == 7
    assert cached_of({"prompt_tokens": 10}) is None and cached_of(None) is None


def test_set_usage_keeps_fields_a_later_event_lacks():
    ex = SimpleNamespace(usage=Usage())
    set_usage(ex, {"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": 1})
    set_usage(ex, {"output_tokens": 30})          # Anthropic's message_delta
    assert (ex.usage.prompt_tokens, ex.usage.completion_tokens, ex.usage.cached_tokens) == (12, 30, 7)
