"""Every supported request shape becomes text slots; slot.set rewrites the body in place."""
from __future__ import annotations

import pytest

from proxy.endpoints import resolve
from proxy.parsing.request import Unrecognized, parse_request, request_model
from proxy.parsing.response import parse_response, usage_of


def slots(kind, body):
    return [(s.role, s.kind, s.text) for s in parse_request(kind, body)]


def test_chat_roles_parts_tools():
    body = {"model": "m", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
        {"role": "user", "content": [{"type": "text", "text": "u1"}, {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "input_audio", "input_audio": {}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"role": "tool", "tool_call_id": "c", "content": "tool out"},
        {"role": "function", "name": "f", "content": "fn out"},
        {"role": "assistant", "content": "", "function_call": {"name": "f", "arguments": "{}"}},
    ]}
    assert slots("chat", body) == [
        ("system", "message", "sys"), ("developer", "content_part", "dev"), ("user", "content_part", "u1"),
        ("assistant", "tool_call_arguments", "{\"q\":1}"), ("assistant", "content_part", "no"),
        ("tool", "tool_result", "tool out"), ("tool", "tool_result", "fn out"),
        ("assistant", "message", ""), ("assistant", "tool_call_arguments", "{}")]


def test_slot_set_rewrites_body():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "secret"}]}]}
    (slot,) = parse_request("chat", body)
    slot.set("[masked]")
    assert body["messages"][0]["content"][0]["text"] == "[masked]" and slot.changed
    body = {"prompt": ["a", "b"]}
    parse_request("completions", body)[1].set("B")
    assert body == {"prompt": ["a", "B"]}


@pytest.mark.parametrize("body", [
    {"messages": "x"}, {"messages": ["x"]}, {"messages": [{"role": "wizard", "content": "x"}]},
    {"messages": [{"role": "user", "content": 5}]}, {"messages": [{"role": "user", "content": [7]}]}])
def test_chat_unrecognized(body):
    with pytest.raises(Unrecognized):
        parse_request("chat", body)


def test_completions_and_embeddings():
    assert slots("completions", {"prompt": "p"}) == [("prompt", "prompt", "p")]
    assert slots("completions", {"prompt": ["p", "q"]}) == [("prompt", "prompt", "p"), ("prompt", "prompt", "q")]
    assert slots("embeddings", {"input": ["a", "b"]}) == [("user", "embedding_input", "a"),
                                                           ("user", "embedding_input", "b")]
    for kind, body in (("completions", {"prompt": [1, 2]}), ("embeddings", {"input": [[1, 2]]}),
                       ("embeddings", {}), ("completions", {"prompt": [{"x": 1}]})):
        with pytest.raises(Unrecognized):
            parse_request(kind, body)


def test_responses_items():
    body = {"instructions": "be nice", "input": [
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"},
                                                             {"type": "input_image", "image_url": "x"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "earlier"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "c", "output": "result"},
        {"type": "function_call_output", "call_id": "d", "output": [{"type": "input_text", "text": "r2"}]},
        {"type": "reasoning", "summary": []},
    ]}
    assert slots("responses", body) == [
        ("system", "instructions", "be nice"), ("user", "input_item", "hi"), ("developer", "content_part", "dev"),
        ("assistant", "content_part", "earlier"), ("assistant", "tool_call_arguments", "{\"a\":1}"),
        ("tool", "tool_result", "result"), ("tool", "tool_result", "r2")]
    assert slots("responses", {"input": "just text"}) == [("user", "input_item", "just text")]
    assert slots("responses", {"previous_response_id": "r"}) == []
    with pytest.raises(Unrecognized):
        parse_request("responses", {"input": 3})


def test_anthropic_messages():
    body = {"system": [{"type": "text", "text": "sys"}], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                          {"type": "tool_use", "id": "t", "name": "f",
                                           "input": {"q": "x", "n": [1, "y"], "o": {"z": "w"}}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "res"}]},
            {"type": "tool_result", "tool_use_id": "u", "content": "res2"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
            {"type": "image", "source": {"type": "base64", "data": "AAAA"}}]},
    ]}
    assert slots("messages", body) == [
        ("system", "system", "sys"), ("user", "message", "hi"), ("assistant", "content_part", "a"),
        ("assistant", "tool_input", "x"), ("assistant", "tool_input", "y"), ("assistant", "tool_input", "w"),
        ("tool", "tool_result", "res"), ("tool", "tool_result", "res2"), ("document", "content_part", "doc")]
    assert slots("messages", {"system": "s", "messages": []}) == [("system", "system", "s")]
    with pytest.raises(Unrecognized):
        parse_request("messages", {"messages": [{"role": "system", "content": "x"}]})


def test_non_object_body_and_models():
    with pytest.raises(Unrecognized):
        parse_request("chat", [1])
    assert parse_request("models", {}) == []


def test_endpoints_and_model():
    ep = resolve("POST", "/openai/deployments/dep-1/chat/completions")
    assert (ep.kind, ep.azure_deployment, ep.upstream_path) == ("chat", "dep-1", "/chat/completions")
    assert request_model(ep, {"model": "ignored"}) == "dep-1"
    assert request_model(resolve("POST", "/v1/responses"), {"model": "m"}) == "m"
    assert resolve("GET", "/v1/models/gpt-4o").upstream_path == "/models/gpt-4o"
    assert resolve("POST", "/v1/messages").dialect == "anthropic"
    for method, path in (("GET", "/v1/chat/completions"), ("POST", "/v1/files"), ("POST", "/v1/chat/completions/x"),
                         ("POST", "/openai/deployments/a/b/chat/completions")):
        assert resolve(method, path) is None


def test_response_slots_and_usage():
    chat = {"choices": [{"index": 0, "message": {"content": "c", "refusal": None, "tool_calls": [
        {"function": {"name": "f", "arguments": "{}"}}]}}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    assert [(s.kind, s.text) for s in parse_response("chat", chat)] == [("output", "c"), ("tool_call_arguments", "{}")]
    resp = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "t"}]},
                       {"type": "function_call", "arguments": "{\"a\":1}"}]}
    assert [s.text for s in parse_response("responses", resp)] == ["t", "{\"a\":1}"]
    msg = {"content": [{"type": "text", "text": "x"}, {"type": "tool_use", "input": {"k": "v"}}]}
    assert [s.text for s in parse_response("messages", msg)] == ["x", "v"]
    assert [s.text for s in parse_response("completions", {"choices": [{"text": "p"}]})] == ["p"]
    assert usage_of(chat["usage"]) == (3, 4)
    assert usage_of({"input_tokens": 5, "output_tokens": 6}) == (5, 6)
    assert usage_of({"input_tokens": 5, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1,
                     "output_tokens": 6}) == (8, 6)
    assert usage_of(None) == (None, None)
