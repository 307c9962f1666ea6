"""An incremental Server-Sent Events splitter that keeps each event's raw bytes.

Unmodified events are forwarded byte for byte; only events a guard changes are re-serialised.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    raw: bytes              # the whole event block including its terminating blank line
    event: str | None       # the `event:` field
    data: bytes | None      # the joined `data:` lines; None for comment-only blocks

    @property
    def is_comment(self) -> bool:
        return self.data is None and self.event is None


class SSEParser:
    def __init__(self, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max = max_event_bytes

    def blocks(self, chunk: bytes) -> list[bytes]:
        """The complete raw event blocks ``chunk`` finishes (framing only, no parsing)."""
        buf = self._buf
        buf += chunk
        if b"\r" in chunk:
            # normalise CRLF / CR line ends once so the blank-line search stays simple
            self._buf = buf = bytearray(bytes(buf).replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        blocks: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            blocks.append(bytes(buf[start:end + 2]))
            start = end + 2
        if start:
            del buf[:start]
        if len(buf) > self._max:
            raise ValueError("an SSE event exceeds the size limit")
        return blocks

    def feed(self, chunk: bytes) -> list[Event]:
        return [parse_block(block) for block in self.blocks(chunk)]

    def rest(self) -> bytes:
        """Bytes after the last complete event (an unterminated event at stream end)."""
        out = bytes(self._buf)
        self._buf.clear()
        return out


def parse_block(block: bytes) -> Event:
    event = None
    data_lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return Event(block, event, b"\n".join(data_lines) if data_lines else None)


def encode(data: bytes, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"
