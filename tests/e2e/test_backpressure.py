"""Backpressure holds: a client that stops reading a stream stops the upstream writing it.

The proxy must not read the upstream's answer ahead into memory while the client is not taking
it. The observable is the fake provider's count of SSE events whose write returned
(`fake.state.events_sent`): once the client stops reading, that count stops growing far below
the total, because the fake's writes block on a full connection to the proxy, which blocks on a
full connection to the client. A proxy that buffered would let the fake finish.

What stays in flight is kernel socket buffers (fake send queue, proxy receive and send queues:
each capped by net.ipv4.tcp_wmem / tcp_rmem, measured about 10 MiB together on loopback), so the
answer is 64 MiB and the bound is half of it.
"""
from __future__ import annotations

import asyncio
import socket

import orjson
import pytest

from tests.e2e.helpers import policy

pytestmark = pytest.mark.timeout(90)

PIECE = 32 * 1024          # bytes of text per streamed delta
PIECES = 2048               # 64 MiB of text: far more than every socket and stream buffer together


async def settled(count, quiet: float = 0.5) -> int:
    """The value of count() once it has not changed for `quiet` seconds (a wait, not an assertion)."""
    loop = asyncio.get_running_loop()
    last, since = count(), loop.time()
    while loop.time() - since < quiet:
        await asyncio.sleep(0.02)
        now = count()
        if now != last:
            last, since = now, loop.time()
    return last


async def open_small_window(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw client whose socket receive buffer is small and whose reader pauses the transport
    once 64 KiB are buffered: when the test stops reading, the window closes quickly."""
    host, port = url.split("//")[1].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await asyncio.open_connection(sock=sock, limit=32 * 1024)


async def test_slow_stream_reader_stalls_the_upstream(fake, start_proxy):
    proxy = await start_proxy(policy())
    fake.state.reply = "x" * (PIECE * PIECES)
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True,
                         "messages": [{"role": "user", "content": "a long answer please"}]})
    reader, writer = await open_small_window(proxy.url)
    try:
        # HTTP/1.0: the answer is the raw SSE byte stream up to EOF (no chunked framing to undo)
        writer.write(b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
                     b"Content-Type: application/json\r\nx-fake-chunks: %d\r\nContent-Length: %d\r\n\r\n%s"
                     % (PIECES, len(body), body))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].endswith(b" 200 OK")
        first = await reader.readuntil(b"\n\n")
        assert first.startswith(b"data: {")

        # The client now stops reading. The fake's count stops growing long before its total.
        paused_at = await settled(lambda: fake.state.events_sent)
        assert fake.state.completed_streams == 0
        assert paused_at < PIECES // 2, f"the upstream wrote {paused_at} of {PIECES} events to a client not reading"

        # Nothing was lost on the way: reading again drains every event, and the fake finishes.
        chars, last, buf = 0, b"", first
        while True:
            *events, buf = buf.split(b"\n\n")
            for event in events:
                last = event
                if event.startswith(b"data: {"):
                    choices = orjson.loads(event[6:])["choices"]
                    chars += len(choices[0]["delta"].get("content") or "") if choices else 0
            more = await reader.read(1 << 20)
            if not more:
                break
            buf += more
    finally:
        writer.close()
    assert (last, buf) == (b"data: [DONE]", b"")
    assert chars == PIECE * PIECES
    async with asyncio.timeout(10):   # the fake's bookkeeping trails its last write by a tick
        while fake.state.completed_streams < 1:
            await asyncio.sleep(0.01)
    assert fake.state.events_sent > paused_at
