"""Tool names in every dialect (proxy.parsing.tools) and the legacy streamed function_call, which
the fake provider does not speak: a hand-written stream through the processor and the tools guard."""
from __future__ import annotations

import orjson
import pytest

from proxy import pipeline

from proxy.guards.tools import ToolsConfig, ToolsGuard
from proxy.globs import GlobSet
from proxy.parsing import tools as wire
from proxy.parsing.sse import SSEParser, encode
from proxy.parsing.stream import StreamProcessor, StreamStopped
from tests.parsing.test_stream_processor import (decoded, fake_stream, fake_tool_stream,  # noqa: F401 - fixtures
                                                make_exchange, run)


def fn(name):
    return {"type": "function", "function": {"name": name, "parameters": {}}}


def test_offered_names_in_every_shape():
    assert wire.offered({"tools": [fn("a"), {"type": "function", "name": "b"}, {"type": "web_search_preview"},
                                   {"name": "c", "input_schema": {}}, "junk"],
                         "functions": [{"name": "d"}]}) == ["a", "b", "web_search_preview", "c", "d"]
    assert wire.offered({"tools": "not a list"}) == [] and wire.offered(None) == []


def test_strip_keeps_the_rest_and_drops_a_choice_that_forced_a_removed_tool():
    body = {"tools": [fn("send_email"), fn("get_weather")],
            "tool_choice": {"type": "function", "function": {"name": "send_email"}}}
    assert wire.strip(body, lambda n: n.startswith("send")) == ["send_email"]
    assert body == {"tools": [fn("get_weather")]}
    body = {"tools": [fn("send_email"), fn("get_weather")], "tool_choice": "required"}
    wire.strip(body, lambda n: n.startswith("send"))
    assert body["tool_choice"] == "required"          # still names no removed tool
    body = {"functions": [{"name": "send_sms"}], "function_call": {"name": "send_sms"}, "model": "m"}
    assert wire.strip(body, lambda n: True) == ["send_sms"] and body == {"model": "m"}
    body = {"tools": [{"name": "x"}], "tool_choice": {"type": "tool", "name": "x"}}
    wire.strip(body, lambda n: False)
    assert body == {"tools": [{"name": "x"}], "tool_choice": {"type": "tool", "name": "x"}}


def test_calls_in_every_dialect():
    chat = {"choices": [{"message": {"tool_calls": [{"function": {"name": "a", "arguments": "{}"}}],
                                     "function_call": {"name": "b", "arguments": "{\"x\":1}"}}}]}
    assert wire.calls("chat", chat) == [("a", "{}"), ("b", "{\"x\":1}")]
    resp = {"output": [{"type": "message", "content": []}, {"type": "function_call", "name": "c", "arguments": "{}"}]}
    assert wire.calls("responses", resp) == [("c", "{}")]
    msg = {"content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "name": "d", "input": {"q": 1}}]}
    assert wire.calls("messages", msg) == [("d", {"q": 1})]
    assert wire.calls("completions", {"choices": []}) == [] and wire.calls("chat", []) == []


def legacy_stream(name: str, pieces: list[str]) -> bytes:
    def chunk(delta, finish=None):
        return encode(orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    out = [chunk({"role": "assistant", "content": None, "function_call": {"name": name, "arguments": ""}})]
    out += [chunk({"function_call": {"arguments": p}}) for p in pieces]
    out.append(chunk({}, "function_call"))
    return b"".join(out) + b"data: [DONE]\n\n"


def guard(**kw) -> ToolsGuard:
    return ToolsGuard(ToolsConfig(GlobSet.of(kw.get("allow", ())), GlobSet.of(kw.get("deny", ())), "block", "block"))


def test_legacy_streamed_function_call_is_held_whole_or_cut_before_its_name():
    pieces = ['{"ci', 'ty": "Pa', 'ris"}']
    events = decoded(run(make_exchange(guard(deny=["rm_*"])), "chat", legacy_stream("get_weather", pieces), piece=5))
    args = [o["choices"][0]["delta"]["function_call"].get("arguments") for _, o in events
            if o != "[DONE]" and "function_call" in o["choices"][0]["delta"]]
    assert "".join(a for a in args if a) == '{"city": "Paris"}'
    assert [a for a in args if a] == ['{"city": "Paris"}']     # held, then released as one delta
    ex = make_exchange(guard(deny=["rm_*"]))
    proc = StreamProcessor(ex, "chat", pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    with pytest.raises(StreamStopped) as stop:
        for ev in SSEParser().feed(legacy_stream("rm_rf", pieces)):
            proc.process(ev)
    events = decoded(stop.value.events)
    assert not any("function_call" in o["choices"][0]["delta"] for _, o in events if o != "[DONE]")
    assert len(events) == 2 and events[0][1]["choices"][0]["finish_reason"] == "content_filter"
    assert [f.rule_ids for f in ex.findings] == [("tools.call.denied",)]


def test_streams_without_tool_calls_pass_byte_for_byte_and_calls_are_still_held(fake_stream, fake_tool_stream):
    for kind, data in fake_stream.items():
        ex = make_exchange(guard(deny=["x"]))
        proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
        assert proc.tools_only
        assert b"".join(run(ex, kind, data)) == data, kind
    for kind, data in fake_tool_stream.items():
        events = decoded(run(make_exchange(guard(allow=["f"])), kind, data))
        pieces = [o.get("delta", {}).get("partial_json") if kind == "messages" else
                  o.get("delta") if kind == "responses" else
                  (o["choices"][0]["delta"].get("tool_calls") or [{}])[0].get("function", {}).get("arguments")
                  for _, o in events if o != "[DONE]" and (kind != "chat" or o["choices"])
                  and (kind != "responses" or o["type"].endswith("arguments.delta"))]
        assert len([p for p in pieces if p]) == 1, kind    # held, released whole


def test_refuse_turns_a_whole_answer_into_a_refusal_of_its_dialect():
    chat = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "calling", "tool_calls": [{"function": {"name": "x", "arguments": "{}"}}],
        "function_call": {"name": "y", "arguments": "{}"}}}]}
    assert wire.refuse("chat", chat)
    assert chat["choices"][0] == {"index": 0, "finish_reason": "content_filter",
                                  "message": {"role": "assistant", "content": None}}
    resp = {"status": "completed", "output": [{"type": "function_call", "name": "x"}]}
    assert wire.refuse("responses", resp)
    assert resp == {"status": "incomplete", "output": [], "incomplete_details": {"reason": "content_filter"}}
    msg = {"content": [{"type": "tool_use", "name": "x", "input": {}}], "stop_reason": "tool_use"}
    assert wire.refuse("messages", msg)
    assert msg == {"content": [], "stop_reason": "refusal", "stop_sequence": None}
    # nothing to refuse as an answer: the edge answers with the HTTP error instead
    assert not wire.refuse("embeddings", {"data": []}) and not wire.refuse("chat", {"error": {}})
    assert not wire.refuse("chat", None)
