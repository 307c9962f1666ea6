"""Every string a model could read becomes a slot, whatever shape the body takes; keys and
values two parsers could read differently are refused; no body makes the parser crash."""
from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.parsing.request import (MEDIA_UNINSPECTED, Refused, Unrecognized, check_fields, check_model,
                                   parse_request)

X = "CANARY text"


def texts(kind, body, skipped=None):
    return [s.text for s in parse_request(kind, body, skipped)]


@pytest.mark.parametrize("content", [
    [X], [{"text": X}], [{"type": "TEXT", "text": X}], [{"type": "text ", "text": X}],
    [{"type": "input_note", "note": X}], [{"type": "text", "text": {"value": X, "annotations": []}}],
    [{"type": "image_url", "image_url": {"url": "u"}, "text": X}], [{"type": "refusal", "refusal": X}],
    [{"type": "wrapper", "content": [{"text": X}]}],
])
def test_chat_part_shapes(content):
    for role in ("user", "tool", "assistant", "system"):
        body = {"messages": [{"role": role, "content": content}]}
        assert X in texts("chat", body)


def test_rewrites_reach_every_shape():
    body = {"messages": [{"role": "user", "content": [X, {"TYPE_less": 1, "text": X}, {"type": "x", "deep": [{"v": X}]}]}]}
    for slot in parse_request("chat", body):
        slot.set(slot.text.replace("CANARY", "[masked]"))
    assert "CANARY" not in repr(body)


def test_tool_calls_and_results():
    body = {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"q": X}}}]},
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": X}]}]}
    assert texts("chat", body) == [X, X]


@pytest.mark.parametrize("blocks", [
    [{"type": "TEXT", "text": X}], [{"text": X}], [X],
    [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text ", "text": X}]}],
    [{"type": "tool_result", "tool_use_id": "t", "content": X}],
    [{"type": "tool_use", "id": "t", "name": "f", "input": {"type": X}}],
    [{"type": "document", "title": X, "source": {"type": "url", "url": "u"}}],
    [{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": X}}],
    [{"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": X}]}}],
    [{"type": "thinking", "thinking": X, "signature": "sig"}],
    [{"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": X}]}],
])
def test_anthropic_block_shapes(blocks):
    assert X in texts("messages", {"messages": [{"role": "user", "content": blocks}]})
    assert X in texts("messages", {"system": blocks, "messages": []})


@pytest.mark.parametrize("items", [
    [X], [{"role": "user", "content": [{"type": "INPUT_TEXT", "text": X}]}],
    [{"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": X}], "encrypted_content": "e"}],
    [{"type": "custom_tool_call_output", "call_id": "c", "output": X}],
    [{"type": "function_call_output", "call_id": "c", "output": {"result": X}}],
    [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": X}]}],
    [{"type": "function_call", "call_id": "c", "name": "f", "arguments": X}],
    [{"type": "custom_tool_call", "call_id": "c", "name": "f", "input": X}],
])
def test_responses_item_shapes(items):
    assert X in texts("responses", {"input": items})


def test_ids_enums_and_media_are_not_slots_but_media_is_recorded():
    skipped: list[str] = []
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}}, {"type": "text", "text": "hi", "cache_control": {"type": "x"}}]}]}
    assert texts("chat", body, skipped) == ["hi"]
    assert skipped == [MEDIA_UNINSPECTED]
    skipped = []
    texts("messages", {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}, skipped)
    assert skipped == [MEDIA_UNINSPECTED]
    skipped = []
    assert texts("chat", {"messages": [{"role": "user", "content": "plain"}]}, skipped) == ["plain"] and skipped == []


@pytest.mark.parametrize("body", [
    {"messages": [], "Messages": []}, {"messages": [], "me\u017f\u017fages": []}, {"\uff4dessages": [], "messages": []},
    {"messages": [{"role": "user", "Content": X}]}, {"messages": [{"role": "user", "content": "a", "CONTENT": X}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "Text": X}]}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"Function": {"arguments": X}}]}]},
    {"messages": [], "STREAM": True}, {"Model": "x", "messages": []},
])
def test_case_and_unicode_variants_of_known_keys_refused(body):
    with pytest.raises(Refused):
        parse_request("chat", body)


def test_unknown_keys_of_other_spelling_pass():
    assert texts("chat", {"messages": [{"role": "user", "content": "hi", "Name": "x"}], "metadata": {"Content": "y"},
                          "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                              "properties": {"Text": {"type": "string"}}}}}]}) == ["hi"]


@pytest.mark.parametrize("body", [
    {"messages": [{"role": ["user"], "content": "x"}]}, {"messages": [{"role": {"a": 1}, "content": "x"}]},
    {"messages": [{"role": "assistant", "tool_calls": 5}]}, {"messages": [{"role": "assistant", "tool_calls": [5]}]},
    {"messages": [{"role": "assistant", "function_call": "x"}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"function": 5}]}]},
])
def test_malformed_chat_is_unrecognized_not_a_crash(body):
    with pytest.raises(Unrecognized):
        parse_request("chat", body)


@pytest.mark.parametrize("kind,body", [
    ("responses", {"input": [{"role": ["user"], "content": "x"}]}), ("responses", {"input": [{"type": 7}]}),
    ("responses", {"instructions": ["x"]}), ("responses", {"input": 5}),
    ("messages", {"messages": [{"role": ["user"], "content": "x"}]}), ("messages", {"system": 5, "messages": []}),
    ("messages", {"messages": [{"role": "user", "content": [5]}]}), ("embeddings", {"input": {"a": 1}}),
])
def test_malformed_other_endpoints_unrecognized(kind, body):
    with pytest.raises(Unrecognized):
        parse_request(kind, body)


@pytest.mark.parametrize("body,param", [
    ({"stream": "true"}, "stream"), ({"stream": 1}, "stream"), ({"stream": 0}, "stream"),
    ({"stream_options": "x"}, "stream_options"), ({"stream_options": []}, "stream_options"), ({"model": 5}, "model"),
])
def test_fields_two_parsers_read_differently(body, param):
    with pytest.raises(Refused) as err:
        check_fields(body)
    assert err.value.param == param


def test_fields_accepted():
    for body in ({}, {"stream": True}, {"stream": False, "stream_options": None}, {"stream": None},
                 {"stream": True, "stream_options": {"include_usage": True}}, [1], "x"):
        check_fields(body)
    for model in (None, "gpt-4o-mini", "ft:gpt-4o:org:x", "meta-llama/Llama-3-8B", "m" * 256, "模型"):
        check_model(model)
    for model in ("a\nb", "a\x00", "a\u2028", "a\x85", "m" * 257):
        with pytest.raises(Refused):
            check_model(model)


# --- fuzz: schema-shaped and random bodies never crash the parser -----------------------------
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
_JSON = st.recursive(_SCALAR, lambda c: st.one_of(st.lists(c, max_size=4),
                                                   st.dictionaries(st.text(max_size=8), c, max_size=4)), max_leaves=20)
_NAMES = st.sampled_from(["type", "text", "content", "role", "tool_calls", "function", "arguments", "input",
                          "output", "source", "data", "messages", "system", "instructions", "prompt",
                          "function_call", "refusal", "image_url", "Text", "TYPE"])
_ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", "wizard"])
_SHAPED = st.recursive(
    st.one_of(_SCALAR, _ROLES, st.sampled_from(["text", "input_text", "tool_result", "tool_use", "document",
                                                "message", "function_call_output", "function_call", "image_url"])),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(_NAMES, c, max_size=5)), max_leaves=30)
_BODY = st.one_of(_JSON, st.fixed_dictionaries({}, optional={
    "model": _SCALAR, "messages": _SHAPED, "input": _SHAPED, "prompt": _SHAPED, "system": _SHAPED,
    "instructions": _SHAPED, "stream": _SCALAR, "stream_options": _SHAPED}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["chat", "completions", "embeddings", "responses", "messages"]), _BODY)
def test_fuzz_parser_only_documented_outcomes(kind, body):
    skipped: list[str] = []
    try:
        check_fields(body)
        slots = parse_request(kind, body, skipped)
    except (Unrecognized, Refused):
        return
    for slot in slots:
        assert isinstance(slot.text, str)
        slot.set(slot.text + "!")   # every slot is rewritable in place
        assert slot.container[slot.key] == slot.text


# Tool and output-schema definitions: the model reads their descriptions (tool poisoning), so
# they are slots of role "definition"; names and schema keywords stay untouched.
_PARAMS = {"type": "object", "required": ["city"], "properties": {
    "city": {"type": "string", "description": X, "enum": [X, "Paris"]}}}


@pytest.mark.parametrize("kind, body", [
    ("chat", {"messages": [], "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": X, "parameters": _PARAMS}}]}),
    ("chat", {"messages": [], "functions": [{"name": "get_weather", "description": X, "parameters": _PARAMS}]}),
    ("chat", {"messages": [], "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "description": X, "schema": _PARAMS, "strict": True}}}),
    ("responses", {"input": "hi", "tools": [{"type": "function", "name": "get_weather", "description": X,
                                             "parameters": _PARAMS}]}),
    ("responses", {"input": "hi", "text": {"format": {"type": "json_schema", "name": "a", "schema": _PARAMS}}}),
    ("messages", {"messages": [], "tools": [{"name": "get_weather", "description": X, "input_schema": _PARAMS}]}),
    ("messages", {"messages": [], "output_config": {"format": {"type": "json_schema", "schema": _PARAMS}}}),
    ("messages", {"messages": [], "output_format": {"type": "json_schema", "schema": _PARAMS}}),
])
def test_tool_definitions_are_slots(kind, body):
    body = copy.deepcopy(body)   # the cases share _PARAMS
    slots = [s for s in parse_request(kind, body) if s.role == "definition"]
    assert slots and all(s.kind == "tool_definition" for s in slots)
    assert X in [s.text for s in slots]
    for slot in slots:
        slot.set(slot.text.replace("CANARY", "[masked]"))
    assert "CANARY" not in repr(body)
    # identifiers the model must echo and schema keywords are not text to rewrite
    assert "get_weather" in repr(body) or "answer" in repr(body) or "'a'" in repr(body) or "tools" not in body \
        and "response_format" not in body and "text" not in body           # Anthropic's formats have no name
    assert "'required': ['city']" in repr(body)


def test_tools_not_a_list_is_unrecognised():
    with pytest.raises(Unrecognized):
        parse_request("chat", {"messages": [], "tools": {"type": "function"}})


def test_tools_key_in_another_case_is_refused():
    with pytest.raises(Refused):
        parse_request("chat", {"messages": [], "Tools": [{"type": "function"}]})
