"""Load generator in its own process, driven by JSON lines on stdin (one segment each), so it
stays warm across rounds and never competes with the proxy inside one interpreter.

Command: {"url", "body", "headers", "stream", "connections", "duration", "max_requests"}
Answer:  {"count", "warmup", "errors", "elapsed", "latency_ms": [...], "ttfb_ms": [...]}

``#REQ#`` in the body is replaced by a number unique to each request (bench/bodies.py).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

import aiohttp
import orjson

STREAM_END = b"data: [DONE]\n\n"
UNIQUE = b"#REQ#"
_numbers = itertools.count(1)


def _bodies(body: bytes):
    """The body of each request: the same bytes, or with ``#REQ#`` numbered."""
    if UNIQUE not in body:
        return lambda: body
    return lambda: body.replace(UNIQUE, str(next(_numbers)).encode())


async def one_request(session: aiohttp.ClientSession, url: str, body, headers: dict,
                      stream: bool) -> tuple[bool, float, float]:
    """Returns (ok, latency, time to first body byte), both in seconds."""
    t0 = time.perf_counter()
    async with session.post(url, data=body(), headers=headers) as resp:
        first = await resp.content.readany()
        t_first = time.perf_counter()
        tail = first
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                break
            tail = (tail + chunk)[-64:]
        t_end = time.perf_counter()
        ok = resp.status == 200 and (not stream or tail.endswith(STREAM_END))
    return ok, t_end - t0, t_first - t0


async def run_segment(cmd: dict) -> dict:
    url, stream = cmd["url"], bool(cmd["stream"])
    body = _bodies(cmd["body"].encode())
    headers = {"content-type": "application/json", **cmd["headers"]}
    conns, max_requests = int(cmd["connections"]), int(cmd["max_requests"])
    latencies: list[float] = []
    ttfbs: list[float] = []
    errors = 0
    barrier = asyncio.Barrier(conns + 1)
    window: dict[str, float] = {}
    go = asyncio.Event()

    connector = aiohttp.TCPConnector(limit=conns)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as session:

        async def worker() -> None:
            nonlocal errors
            # One unmeasured request per connection, so connects are not in the numbers.
            try:
                await one_request(session, url, body, headers, stream)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
            await barrier.wait()
            await go.wait()
            while time.perf_counter() < window["deadline"] and len(latencies) + errors < max_requests:
                try:
                    ok, latency, ttfb = await one_request(session, url, body, headers, stream)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                if ok:
                    latencies.append(latency)
                    ttfbs.append(ttfb)
                else:
                    errors += 1

        tasks = [asyncio.create_task(worker()) for _ in range(conns)]
        await barrier.wait()
        window["start"] = time.perf_counter()
        window["deadline"] = window["start"] + float(cmd["duration"])
        go.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - window["start"]
    return {"count": len(latencies), "warmup": conns, "errors": errors, "elapsed": elapsed,
            "latency_ms": [round(x * 1000, 4) for x in latencies],
            "ttfb_ms": [round(x * 1000, 4) for x in ttfbs]}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        result = await run_segment(orjson.loads(line))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())
