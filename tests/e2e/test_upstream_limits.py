"""The first-byte timeout starts when the request is sent (connect time apart), and non-streamed
answers are read only up to server.maxInspectedResponseBytes (issue 12, smaller findings)."""
from __future__ import annotations

import asyncio

import aiohttp
import openai
import orjson
import pytest
import yaml

from tests.e2e.helpers import MSG, oa, policy
from tests.e2e.test_request_bypasses import recorder, settled

pytestmark = pytest.mark.timeout(60)


def timed_policy(connect: str, first_byte: str, stream_idle: str = "5s", **overrides) -> str:
    base = yaml.safe_load(policy(**overrides))
    for up in base["upstreams"].values():
        up["timeouts"] = {"connect": connect, "firstByte": first_byte, "streamIdle": stream_idle, "total": "20s"}
    return yaml.safe_dump(base, sort_keys=False)


async def test_first_byte_timeout_does_not_include_connect_time(fake, start_proxy):
    # connect 10s + firstByte 0.3s: the old single deadline (10.3s) let a 1.5s stall through
    proxy = await start_proxy(timed_policy("10s", "300ms"))
    with pytest.raises(openai.InternalServerError) as err:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                           extra_headers={"x-fake-mode": "stall:1500"})
    assert err.value.status_code == 504 and err.value.code == "upstream_timeout"


async def test_silent_upstream_that_accepted_the_connection_is_504(fake, start_proxy):
    accepted: list = []

    async def silent(reader, writer):
        accepted.append(writer)
        await reader.read(65536)
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        text = timed_policy("10s", "300ms").replace("${FAKE_OPENAI_URL}", f"http://127.0.0.1:{port}/v1")
        proxy = await start_proxy(text)
        with pytest.raises(openai.InternalServerError) as err:
            await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert err.value.status_code == 504 and accepted
    finally:
        for w in accepted:
            w.close()
        server.close()


async def test_first_byte_timer_stops_once_the_answer_starts(fake, start_proxy):
    # gaps between stream events longer than firstByte (but within streamIdle) are fine
    proxy = await start_proxy(timed_policy("2s", "300ms", stream_idle="5s"))
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        extra_headers={"x-fake-mode": "slow:600", "x-fake-chunks": "3", "x-fake-reply": "one two three"})
    text = ""
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
    assert text == "one two three"


LONG = "word" + " word" * 400   # about 2 KB of answer


async def post(url: str, body: dict, headers: dict) -> tuple[int, bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.post(url, data=orjson.dumps(body), headers={"authorization": "Bearer sk-test",
                                                                  "content-type": "application/json", **headers}) as r:
            return r.status, await r.read()


@pytest.mark.parametrize("mode", ["", "gzip"])
async def test_oversized_answer_refused_by_default(fake, start_proxy, mode):
    # gzip: 2 KB of repeated words compress below the 1 KiB limit; the cap holds after decoding
    proxy = await start_proxy(policy(server={"maxInspectedResponseBytes": "1KiB"}))
    got, data = await post(proxy.openai_url + "/chat/completions", {"model": "gpt-4o-mini", "messages": MSG},
                           {"x-fake-reply": LONG, "x-fake-mode": mode, "accept-encoding": "gzip"})
    assert got == 502 and orjson.loads(data)["error"]["code"] == "upstream_error"
    assert "maxInspectedResponseBytes" in orjson.loads(data)["error"]["message"]
    # within the limit the same answer is inspected as always
    got, data = await post(proxy.openai_url + "/chat/completions", {"model": "gpt-4o-mini", "messages": MSG},
                           {"x-fake-reply": "short", "x-fake-mode": mode, "accept-encoding": "gzip"})
    assert got == 200


async def test_oversized_answer_passed_uninspected_when_the_policy_says(fake, start_proxy):
    proxy = await start_proxy(policy(server={"maxInspectedResponseBytes": "1KiB", "oversizedResponse": "pass"}))
    recorded = recorder(proxy)
    out = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                             extra_headers={"x-fake-reply": LONG})
    assert out.choices[0].message.content == LONG
    (decision, uninspected), = await settled(recorded)
    assert decision == "bypassed" and any("maxInspectedResponseBytes" in r for r in uninspected)


async def test_oversized_passthrough_and_error_answers_are_relayed(fake, start_proxy):
    # what is not inspected anyway (a pass-through path, an upstream error) is relayed, not refused
    proxy = await start_proxy(policy(server={"maxInspectedResponseBytes": "1KiB"}, passthrough={"paths": ["/v1/files*"]}))
    got, data = await post(proxy.openai_url + "/chat/completions", {"model": "gpt-4o-mini", "messages": MSG},
                           {"x-fake-reply": LONG, "x-fake-mode": "error:500"})
    assert got == 500
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.openai_url + "/files/" + "x" * 2000, headers={"authorization": "Bearer sk-test"}) as r:
            body = await r.read()
    assert r.status == 404 and len(body) > 1024


async def test_oversized_answer_cut_by_the_upstream_breaks_the_client_connection(fake, start_proxy):
    """A relayed answer that the upstream breaks off must not end cleanly for the client."""
    payload = b'{"id":"x","object":"chat.completion","choices":[{"message":{"content":"' + b"a" * 3000

    async def cut(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9000\r\n\r\n" + payload)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        text = policy(server={"maxInspectedResponseBytes": "1KiB", "oversizedResponse": "pass"})
        proxy = await start_proxy(text.replace("${FAKE_OPENAI_URL}", f"http://127.0.0.1:{port}/v1"))
        recorded = recorder(proxy, lambda ex: (ex.error, list(ex.uninspected)))
        with pytest.raises(aiohttp.ClientPayloadError):
            await post(proxy.openai_url + "/chat/completions", {"model": "gpt-4o-mini", "messages": MSG}, {})
        (error, uninspected), = await settled(recorded)
        assert error == "upstream_error" and uninspected
    finally:
        server.close()
