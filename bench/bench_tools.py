"""What the tools guard costs an ordinary answer (no tool calls): CPU per request of its hooks.

    .venv/bin/python -m bench.bench_tools            # ~10 s
    .venv/bin/python -m bench.bench_tools --rounds 3

Streamed: a 100-delta chat stream the way the edge handles it when no guard reads the stream
(blocks forwarded as they come, a few peeked at), SSE-parsed and run through the stream processor
with no guard (as when any other answer-side guard is on), and with the tools guard.
Whole answers: the guard's on_request + on_response on a request without tools and its answer,
next to orjson.loads of that answer (work the proxy does for every inspected answer anyway).
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


def exchange(*guards) -> Exchange:
    ex = Exchange("r", "POST", "/v1/chat/completions", "", {}, None, None, endpoint=CHAT)
    ex.scope = _scope("bench", None, guards, {})
    return ex


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
    # the hooks never await: drive the coroutines directly, without an event loop's overhead
    for coro in (GUARD.on_request(WHOLE), GUARD.on_response(WHOLE)):
        try:
            coro.send(None)
        except StopIteration:
            pass


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
    passive, bare, tools, loads, hooks = [], [], [], [], []
    for _ in range(args.rounds):
        passive.append(cpu_us(passive_once, args.n))
        bare.append(cpu_us(stream_once, args.n))
        tools.append(cpu_us(lambda: stream_once(GUARD), args.n))
        loads.append(cpu_us(lambda: orjson.loads(ANSWER), args.n))
        hooks.append(cpu_us(whole_once, args.n))
    med = statistics.median
    spread = lambda xs: (max(xs) - min(xs)) / med(xs) * 100  # noqa: E731
    print(f"100-delta stream, passive (edge)  : {med(passive):8.1f} us CPU/stream (spread {spread(passive):.0f}%)")
    print(f"100-delta stream, parsed, no guard: {med(bare):8.1f} us CPU/stream (spread {spread(bare):.0f}%)")
    print(f"100-delta stream, tools guard     : {med(tools):8.1f} us CPU/stream (spread {spread(tools):.0f}%)"
          f"  ratio {med(tools) / med(bare):.2f} to parsed, {med(tools) / med(passive):.2f} to passive")
    print(f"whole answer: orjson.loads        : {med(loads):8.1f} us CPU/answer")
    print(f"whole answer: on_request+response : {med(hooks):8.1f} us CPU/answer")


if __name__ == "__main__":
    main()
