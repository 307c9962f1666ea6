"""The stream processor on real provider streams (from the fake) with guards that hold text back.

A guard that keeps a 3-character window and upper-cases what it lets through must give the
client the whole text, with the held-back tail synthesised as an ordinary delta *before* the
event that closes its stream (chat: carried by the closing chunk itself), in every dialect; a guard that returns a Verdict mid-stream must
end the stream with that dialect's closing events.
"""
from __future__ import annotations

import aiohttp
import orjson
import pytest

from proxy import pipeline
from proxy.exchange import Exchange
from proxy.guards.base import Guard
from proxy.parsing.sse import SSEParser
from proxy.parsing.stream import StreamProcessor, StreamStopped
from proxy.policy.compile import _scope
from proxy.verdict import Verdict

REPLY = "alpha beta gamma delta"
PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "responses": "/v1/responses",
         "messages": "/v1/messages"}


class Window(Guard):
    name = "window"

    def on_chunk(self, ex, stream, text):
        held = ex.state.setdefault(self.name, {})
        buf = held.get(stream, "") + text
        held[stream] = buf[-3:]
        return buf[:-3].upper()

    def on_end(self, ex, stream):
        return ex.state.get(self.name, {}).pop(stream, "").upper()


class Cut(Guard):
    name = "cut"

    def on_chunk(self, ex, stream, text):
        seen = ex.state.get(self.name, "") + text
        ex.state[self.name] = seen
        if "gamma" in seen:
            return Verdict(self.name, "cut", ("cut.rule",))
        return text


class Tag(Guard):
    """Marks text it passes, to show onion order: the outer guard's flush passes the inner one."""
    name = "tag"

    def on_chunk(self, ex, stream, text):
        return text.replace("A", "4")


def body(kind: str, stream: bool = True, tools: bool = False) -> dict:
    b: dict = {"model": "claude-x" if kind == "messages" else "gpt-4o-mini", "stream": stream}
    if kind == "completions":
        b["prompt"] = "hi"
    elif kind == "responses":
        b["input"] = "hi"
    else:
        b["messages"] = [{"role": "user", "content": "hi"}]
    if kind == "messages":
        b["max_tokens"] = 20
    if kind in ("chat", "completions"):
        b["stream_options"] = {"include_usage": True}
    if tools:
        b["tools"] = ([{"name": "f", "input_schema": {}}] if kind == "messages" else
                      [{"type": "function", "name": "f", "parameters": {}}] if kind == "responses" else
                      [{"type": "function", "function": {"name": "f", "parameters": {}}}])
    return b


async def upstream_stream(fake, kind: str, tools: bool = False) -> bytes:
    headers = {"authorization": "Bearer k", "anthropic-version": "2023-06-01", "x-fake-reply": REPLY}
    if tools:
        headers.update({"x-fake-mode": "tool", "x-fake-tool-args": orjson.dumps({"q": REPLY}).decode()})
    async with aiohttp.ClientSession() as s:
        async with s.post(fake.url + PATHS[kind], json=body(kind, tools=tools), headers=headers) as r:
            assert r.status == 200
            return await r.read()


def make_exchange(*guards: Guard) -> Exchange:
    ex = Exchange("req_1", "POST", "/", "", {}, None, None)
    ex.scope = _scope("t", None, guards, {})
    return ex


def run(ex: Exchange, kind: str, data: bytes, piece: int = 7) -> list[bytes]:
    """Feed the stream in small pieces (events split across reads); return the events sent."""
    proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    parser = SSEParser()
    out: list[bytes] = []
    for i in range(0, len(data), piece):
        for ev in parser.feed(data[i:i + piece]):
            out.extend(proc.process(ev))
    out.extend(proc.finish())
    assert proc.done
    return out


def decoded(events: list[bytes]) -> list[tuple[str | None, object]]:
    parsed = []
    for raw in b"".join(events).split(b"\n\n"):
        if not raw.strip() or raw.startswith(b":"):
            continue
        name, data = None, b""
        for line in raw.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        parsed.append((name, "[DONE]" if data == b"[DONE]" else orjson.loads(data)))
    return parsed


def test_chat_flush_on_finish_chunk(fake_stream):
    events = decoded(run(make_exchange(Window()), "chat", fake_stream["chat"]))
    texts = [(i, o["choices"][0]["delta"].get("content")) for i, (_, o) in enumerate(events)
             if o != "[DONE]" and o["choices"] and o["choices"][0]["delta"].get("content")]
    finish = next(i for i, (_, o) in enumerate(events) if o != "[DONE]" and o["choices"]
                  and o["choices"][0]["finish_reason"])
    assert "".join(t for _, t in texts) == REPLY.upper()
    assert texts[-1] == (finish, "LTA")                # the held tail rides on the finish chunk
    assert len(events) == len(decoded([fake_stream["chat"]]))   # one event out per event in
    assert events[-1][1] == "[DONE]"
    assert events[-2][1]["usage"]["completion_tokens"] > 0   # the usage chunk still follows


def test_completions_flush_before_finish(fake_stream):
    events = decoded(run(make_exchange(Window()), "completions", fake_stream["completions"]))
    objs = [o for _, o in events if o != "[DONE]" and o["choices"]]
    assert "".join(o["choices"][0]["text"] for o in objs) == REPLY.upper()
    # the fake's closing chunk carries the last word itself: the held-back tail joins it
    assert objs[-1]["choices"][0]["finish_reason"] == "stop"
    assert objs[-1]["choices"][0]["text"] == "MA DELTA"


def test_responses_flush_and_done_events_repeat_client_text(fake_stream):
    events = decoded(run(make_exchange(Window()), "responses", fake_stream["responses"]))
    names = [n for n, _ in events]
    deltas = [o["delta"] for n, o in events if n == "response.output_text.delta"]
    assert "".join(deltas) == REPLY.upper() and deltas[-1] == "LTA"
    last_delta = max(i for i, n in enumerate(names) if n == "response.output_text.delta")
    assert names[last_delta + 1] == "response.output_text.done"
    by_name = {n: o for n, o in events}
    assert by_name["response.output_text.done"]["text"] == REPLY.upper()
    assert by_name["response.content_part.done"]["part"]["text"] == REPLY.upper()
    assert by_name["response.output_item.done"]["item"]["content"][0]["text"] == REPLY.upper()
    assert by_name["response.completed"]["response"]["output"][0]["content"][0]["text"] == REPLY.upper()
    seqs = [o["sequence_number"] for _, o in events]
    assert len(set(seqs)) == len(seqs)


def test_messages_flush_before_block_stop(fake_stream):
    events = decoded(run(make_exchange(Window()), "messages", fake_stream["messages"]))
    names = [n for n, _ in events]
    deltas = [o["delta"]["text"] for n, o in events if n == "content_block_delta"]
    assert "".join(deltas) == REPLY.upper() and deltas[-1] == "LTA"
    stop = names.index("content_block_stop")
    assert names[stop - 1] == "content_block_delta" and events[stop - 1][1]["delta"]["text"] == "LTA"
    assert names[-1] == "message_stop"


@pytest.mark.parametrize("kind", ["chat", "responses", "messages"])
def test_tool_arguments_flushed_too(fake, fake_tool_stream, kind):
    events = decoded(run(make_exchange(Window()), kind, fake_tool_stream[kind]))
    if kind == "chat":
        parts = [o["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                 for _, o in events if o != "[DONE]" and o["choices"] and o["choices"][0]["delta"].get("tool_calls")]
    elif kind == "responses":
        parts = [o["delta"] for n, o in events if n == "response.function_call_arguments.delta"]
        done = next(o for n, o in events if n == "response.function_call_arguments.done")
        assert done["arguments"] == "".join(parts)
    else:
        parts = [o["delta"]["partial_json"] for n, o in events if n == "content_block_delta"]
    assert "".join(parts) == orjson.dumps({"q": REPLY}).decode().upper()


def test_onion_flush_passes_inner_guards(fake_stream):
    # policy order: tag, window -> response order: window (outer), then tag
    events = decoded(run(make_exchange(Tag(), Window()), "chat", fake_stream["chat"]))
    text = "".join(o["choices"][0]["delta"].get("content") or "" for _, o in events if o != "[DONE]" and o["choices"])
    assert text == REPLY.upper().replace("A", "4")


@pytest.mark.parametrize("kind", ["chat", "completions", "responses", "messages"])
def test_verdict_mid_stream_closes_in_dialect(fake_stream, kind):
    ex = make_exchange(Cut())
    proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    parser = SSEParser()
    sent: list[bytes] = []
    with pytest.raises(StreamStopped) as info:
        for ev in parser.feed(fake_stream[kind]):
            sent.extend(proc.process(ev))
    assert info.value.verdict.rule_ids == ("cut.rule",)
    assert ex.decision == "blocked"
    tail = decoded(info.value.events)
    text = b"".join(sent)
    assert b"alpha" in text and b"gamma" not in text
    if kind in ("chat", "completions"):
        assert tail[-1][1] == "[DONE]"
        last = tail[-2][1]
        assert last["choices"][0]["finish_reason"] == "content_filter"
        assert last["id"].startswith("chatcmpl-" if kind == "chat" else "cmpl-")
        if kind == "chat":
            assert last["choices"][0]["delta"] == {}
    elif kind == "responses":
        (name, obj), = tail
        assert name == "response.incomplete" and obj["type"] == "response.incomplete"
        assert obj["response"]["status"] == "incomplete"
        assert obj["response"]["incomplete_details"] == {"reason": "content_filter"}
        assert obj["sequence_number"] > max(orjson.loads(line[6:])["sequence_number"]
                                            for line in text.split(b"\n") if line.startswith(b"data: "))
    else:
        assert [n for n, _ in tail] == ["content_block_stop", "message_delta", "message_stop"]
        assert tail[1][1]["delta"]["stop_reason"] == "refusal"


def test_monitor_mode_lets_the_stream_finish(fake_stream):
    cut = Cut()
    cut.mode = "monitor"
    ex = make_exchange(cut)
    events = decoded(run(ex, "chat", fake_stream["chat"]))
    text = "".join(o["choices"][0]["delta"].get("content") or "" for _, o in events if o != "[DONE]" and o["choices"])
    assert text == REPLY
    assert [f.action for f in ex.findings] and all(f.action == "would_block" for f in ex.findings)


def test_no_guards_is_byte_for_byte(fake_stream):
    for kind, data in fake_stream.items():
        ex = make_exchange()
        assert b"".join(run(ex, kind, data)) == data, kind
        assert ex.usage.completion_tokens and ex.usage.prompt_tokens, kind


@pytest.fixture
async def fake_stream(fake):
    return {kind: await upstream_stream(fake, kind) for kind in PATHS}


@pytest.fixture
async def fake_tool_stream(fake):
    return {kind: await upstream_stream(fake, kind, tools=True) for kind in ("chat", "responses", "messages")}


def test_chat_closing_chunk_with_text_keeps_order():
    # some OpenAI-compatible servers put the last words and finish_reason in one chunk
    def chunk(content, finish=None):
        return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                         "choices": [{"index": 0, "delta": {"content": content},
                                                      "finish_reason": finish}]}) + b"\n\n"
    data = chunk("hello ") + chunk("world", "stop") + b"data: [DONE]\n\n"
    events = decoded(run(make_exchange(Window()), "chat", data))
    texts = [o["choices"][0]["delta"]["content"] for _, o in events if o != "[DONE]"]
    assert "".join(texts) == "HELLO WORLD"
    assert events[-2][1]["choices"][0]["finish_reason"] == "stop"
