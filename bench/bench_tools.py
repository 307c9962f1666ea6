"""What the agent guards cost an ordinary answer: the tools guard on answers without tool calls,
the structured-output guard on requests without response_format. CPU per request of their hooks.

    .venv/bin/python -m bench.bench_tools            # ~20 s
    .venv/bin/python -m bench.bench_tools --rounds 3

Streamed: a 100-delta chat stream the way the edge handles it when no guard reads the stream
(blocks forwarded as they come, a few peeked at), SSE-parsed and run through the stream processor
with no guard (as when any other answer-side guard is on), and with the tools guard.
Whole answers: the guard's on_request + on_response on a request without tools and its answer,
next to orjson.loads of that answer (work the proxy does for every inspected answer anyway).
Structured output: the same stream and answer handled as the edge does (passive unless a guard
reads the stream) with and without the structured-output guard for a plain request, and what a
request with response_format pays: its 100-delta JSON stream held and judged (block) or passed
and judged (flag), and its whole answer judged.
CPU time (time.process_time), median of the rounds, interleaved so a busy box hits both alike.
"""
from __future__ import annotations

import argparse
import statistics
import time

import orjson

from proxy import pipeline
from proxy.endpoints import Endpoint
from proxy.exchange import Exchange
from proxy.globs import GlobSet
from proxy.guards.structured import StructuredConfig, StructuredOutputGuard
from proxy.guards.tools import ToolsConfig, ToolsGuard
from proxy.parsing.sse import SSEParser, encode
from proxy.parsing.stream import StreamProcessor
from proxy.policy.compile import _scope

GUARD = ToolsGuard(ToolsConfig(GlobSet.of(["get_*"]), GlobSet.of(["send_*"]), "block", "block"))
META = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
STREAM = b"".join(
    [encode(orjson.dumps({**META, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                 "finish_reason": None}]}))]
    + [encode(orjson.dumps({**META, "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}))
       for _ in range(100)]
    + [encode(orjson.dumps({**META, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))]
) + b"data: [DONE]\n\n"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise the quarterly report."}]}
ANSWER = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "word " * 100}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 100, "total_tokens": 109}})
CHAT = Endpoint("chat.completions", "chat", "openai", "POST", "/chat/completions")
BLOCK = StructuredOutputGuard(StructuredConfig(action="block"))
FLAG = StructuredOutputGuard(StructuredConfig(action="flag"))
ITEMS = {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["n", "word"],
                                    "properties": {"n": {"type": "integer"}, "word": {"type": "string"}}}}
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["items"], "properties": {"items": ITEMS}}
FORMAT = {"type": "json_schema", "json_schema": {"name": "words", "strict": True, "schema": SCHEMA}}
JSON_PIECES = ['{"items": ['] + [f'{{"n": {i}, "word": "w"}}' + ("," if i < 97 else "") for i in range(98)] + ["]}"]
JSON_STREAM = b"".join(
    [encode(orjson.dumps({**META, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                 "finish_reason": None}]}))]
    + [encode(orjson.dumps({**META, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}))
       for p in JSON_PIECES]
    + [encode(orjson.dumps({**META, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))]
) + b"data: [DONE]\n\n"
JSON_ANSWER = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "".join(JSON_PIECES)}, "finish_reason": "stop"}]})


def exchange(*guards, body: dict | None = None) -> Exchange:
    ex = Exchange("r", "POST", "/v1/chat/completions", "", {}, None, None, endpoint=CHAT)
    ex.scope = _scope("bench", None, guards, {})
    ex.body = body
    return ex


def drive(coro) -> None:
    """Run a hook that never awaits, without an event loop's overhead."""
    try:
        coro.send(None)
    except StopIteration:
        pass


def edge_once(guard=None, body: dict = REQUEST, stream: bytes = STREAM) -> None:
    """A stream the way the edge handles it: request hooks, then passive (forward blocks, peek
    at a few) unless a guard reads this exchange's stream, else parsed through the guards."""
    ex = exchange(*((guard,) if guard else ()), body=body)
    if guard is not None:
        drive(guard.on_request(ex))
    proc = StreamProcessor(ex, "chat", pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    if proc.passive:
        for block in SSEParser().blocks(stream):
            proc.observe(block)
    else:
        for ev in SSEParser().feed(stream):
            proc.process(ev)
    proc.finish()


def whole_structured(guard, body: dict, answer: bytes) -> None:
    ex = exchange(guard, body=body)
    drive(guard.on_request(ex))
    ex.response_body = orjson.loads(answer)
    drive(guard.on_response(ex))


def passive_once() -> None:
    """What the edge does for a stream no guard rewrites: forward blocks, peek at few of them."""
    ex = exchange()
    proc = StreamProcessor(ex, "chat", None, None)
    for block in SSEParser().blocks(STREAM):
        proc.observe(block)
    proc.finish()


def stream_once(*guards) -> None:
    ex = exchange(*guards)
    proc = StreamProcessor(ex, "chat", pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    for ev in SSEParser().feed(STREAM):
        proc.process(ev)
    proc.finish()


WHOLE = exchange(GUARD)   # the hooks change nothing on an answer without tools: reuse it
WHOLE.body = REQUEST
WHOLE.response_body = orjson.loads(ANSWER)


def whole_once() -> None:
    for coro in (GUARD.on_request(WHOLE), GUARD.on_response(WHOLE)):
        drive(coro)


def cpu_us(fn, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-n", type=int, default=2000)
    args = ap.parse_args()
    n = args.n
    structured = {**REQUEST, "response_format": FORMAT}
    cases = {   # name -> what one iteration does; all interleaved per round
        "passive": passive_once, "bare": stream_once, "tools": lambda: stream_once(GUARD),
        "loads": lambda: orjson.loads(ANSWER), "hooks": whole_once,
        "edge": edge_once, "edge+so": lambda: edge_once(BLOCK),
        "whole+so": lambda: [drive(BLOCK.on_request(WHOLE)), drive(BLOCK.on_response(WHOLE))],
        "json bare": lambda: edge_once(None, structured, JSON_STREAM),
        "json block": lambda: edge_once(BLOCK, structured, JSON_STREAM),
        "json flag": lambda: edge_once(FLAG, structured, JSON_STREAM),
        "json whole": lambda: whole_structured(BLOCK, structured, JSON_ANSWER),
    }
    slow = {"json bare", "json block", "json flag", "json whole"}   # fewer iterations: 100s of us each
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            times[name].append(cpu_us(fn, n // 10 if name in slow else n))
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: (max(v) - min(v)) / med[k] * 100 for k, v in times.items()}

    def line(label: str, key: str, unit: str, extra: str = "") -> None:
        print(f"{label:<44}: {med[key]:8.1f} us CPU/{unit} (spread {spread[key]:.0f}%){extra}")

    line("100-delta stream, passive (edge)", "passive", "stream")
    line("100-delta stream, parsed, no guard", "bare", "stream")
    line("100-delta stream, tools guard", "tools", "stream",
         f"  ratio {med['tools'] / med['bare']:.2f} to parsed, {med['tools'] / med['passive']:.2f} to passive")
    line("whole answer: orjson.loads", "loads", "answer")
    line("whole answer: tools on_request+response", "hooks", "answer")
    print("structured output, request without response_format:")
    line("  stream as the edge handles it, no guard", "edge", "stream")
    line("  the same with structured_output (block)", "edge+so", "stream",
         f"  ratio {med['edge+so'] / med['edge']:.2f}")
    line("  whole answer: on_request+on_response", "whole+so", "answer")
    print("structured output, request with response_format (100-delta JSON answer, 98 items):")
    line("  stream parsed, no guard", "json bare", "stream")
    line("  stream held and judged (block)", "json block", "stream",
         f"  ratio {med['json block'] / med['json bare']:.2f}")
    line("  stream passed and judged (flag)", "json flag", "stream",
         f"  ratio {med['json flag'] / med['json bare']:.2f}")
    line("  whole answer judged", "json whole", "answer")


if __name__ == "__main__":
    main()
