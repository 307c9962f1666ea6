"""A held stream's answer as text slots, for an answer hook that must judge the whole answer.

The stream is read through a scratch StreamProcessor whose only "guard" records each text
channel's deltas, so every dialect's deltas are assembled exactly as the real pass sees them
(content, refusals, tool-call arguments, Responses and Anthropic blocks). The real pass then
replays the same events with the guards; the slots' ``key`` maps a hook's replacement back to
its stream channel.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..exchange import Exchange
from ..guards.base import StreamText
from ..parsing.sse import SSEParser, parse_block
from ..parsing.stream import StreamProcessor
from ..textslots import TextSlot


@dataclass(frozen=True, slots=True)
class StreamSlot:
    key: StreamText
    slot: TextSlot


def _kind(kind: str, channel: str) -> str:
    if channel.startswith("tool") or channel == "function_call":
        return "tool_input" if kind == "messages" else "tool_call_arguments"
    return "output"


def answer_slots(ex: Exchange, data: bytes) -> list[StreamSlot]:
    """The non-empty texts of a complete (decoded) SSE answer, one slot per channel in order."""
    kind = ex.endpoint.kind
    scratch = Exchange(request_id=ex.request_id, method=ex.method, path=ex.path, query="",
                       headers={}, client_ip=None, policy=None)
    texts: dict[StreamText, list[str]] = {}

    def collect(_ex: Exchange, key: StreamText, text: str) -> str:
        texts.setdefault(key, []).append(text)
        return text

    proc = StreamProcessor(scratch, kind, collect, None)
    parser = SSEParser(max_event_bytes=max(len(data), 1))
    for event in parser.feed(data):
        proc.process(event)
    tail = parser.rest()
    if tail.strip():
        proc.process(parse_block(tail))
    out = []
    for key, parts in texts.items():
        text = "".join(parts)
        if text:
            out.append(StreamSlot(key, TextSlot("assistant", _kind(kind, key.channel), text, index=key.choice)))
    return out
