"""An OpenAI-dialect stream asks the upstream for usage (the audit record, cost and token limits
need it) and hides the extra chunk from a client that did not ask for it."""
from __future__ import annotations

from types import SimpleNamespace

from proxy.parsing.usage_request import ask_for_usage as request_usage
from tests.limits.helpers import make_exchange


def test_stream_asks_for_usage_and_hides_it():
    ex = make_exchange(stream=True)
    request_usage(ex)
    assert ex.body["stream_options"] == {"include_usage": True}
    assert ex.body_changed and ex.strip_usage_chunk
    # the client's own stream_options are kept beside it
    ex1 = make_exchange(stream=True, path="/v1/completions",
                        body_extra={"stream_options": {"include_obfuscation": False}})
    request_usage(ex1)
    assert ex1.body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    ex2 = make_exchange(stream=True, body_extra={"stream_options": {"include_usage": True}})
    request_usage(ex2)
    assert not ex2.body_changed and not ex2.strip_usage_chunk
    # Anthropic and the Responses API report usage unasked; plain answers carry it anyway
    ex3 = make_exchange(stream=True, path="/v1/messages", model="claude-3-5-sonnet")
    ex4 = make_exchange(stream=True, path="/v1/responses")
    ex5 = make_exchange(stream=False)
    ex6 = make_exchange(stream=True)
    ex6.upstream = SimpleNamespace(provider="anthropic")   # chat routed to Anthropic's compat API
    for ex in (ex3, ex4, ex5, ex6):
        request_usage(ex)
        assert "stream_options" not in ex.body and not ex.strip_usage_chunk
