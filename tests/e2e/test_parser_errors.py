"""Requests aiohttp's HTTP parser refuses get the wire contract's error shape too (proxy/server.py).

Before any handler runs: 431 `request_too_large` for a request line or header field over
`server.maxHeaderBytes` or too many headers, 400 `invalid_request` for everything else the parser
refuses. Each answer is JSON with an `x-aifw-request-id`, the connection is closed, and nothing
reaches the upstream.
"""
from __future__ import annotations

import asyncio

import aiohttp
import openai
import orjson
import pytest
from multidict import CIMultiDict

from tests.e2e.helpers import MSG, oa, policy

pytestmark = pytest.mark.timeout(60)

LIMIT = 2048
POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
CHUNKED = POST + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.split("//")[1].split(":")
    return await asyncio.open_connection(host, int(port))


def parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert len(body) == int(headers["content-length"]), "one response, then the connection closes"
    return int(lines[0].split()[1]), headers, orjson.loads(body)


async def send_raw(url: str, *parts: bytes) -> bytes:
    """Send raw bytes; return everything the proxy sends until it closes the connection."""
    reader, writer = await connect(url)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def assert_openai_error(status: int, headers: dict, body: dict, want_status: int, want_code: str) -> None:
    assert (status, body["error"]["code"]) == (want_status, want_code), body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert headers["content-type"] == "application/json"
    assert headers["x-aifw-request-id"].startswith("req_")


HEAD_TOO_LARGE = {
    "header value": POST + b"X-Big: " + b"a" * (2 * LIMIT) + b"\r\nContent-Length: 2\r\n\r\n{}",
    "header name": POST + b"X-" + b"a" * (2 * LIMIT) + b": 1\r\nContent-Length: 2\r\n\r\n{}",
    "request line": b"POST /v1/" + b"a" * (2 * LIMIT) + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    "too many headers": POST + b"".join(b"X-H%d: 1\r\n" % i for i in range(200)) + b"Content-Length: 2\r\n\r\n{}",
}

MALFORMED = {
    "duplicate content-length": POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "content-length with chunked": POST + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "garbage request line": b"GARBAGE\r\nHost: x\r\n\r\n",
    "bad method": b"P@ST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad http version": b"GET /v1/models HTTP/9.9\r\nHost: x\r\n\r\n",
    "tls on the plain port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "bad header token": POST + b"Bad Header: 1\r\nContent-Length: 2\r\n\r\n{}",
    "invalid chunk size": CHUNKED + b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk longer than announced": CHUNKED + b"2\r\n{}}}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("raw", HEAD_TOO_LARGE.values(), ids=HEAD_TOO_LARGE.keys())
async def test_oversized_request_head_431(fake, start_proxy, raw):
    proxy = await start_proxy(policy(server={"maxHeaderBytes": LIMIT}))
    status, headers, body = parse(await send_raw(proxy.url, raw))
    assert_openai_error(status, headers, body, 431, "request_too_large")
    assert fake.requests == []


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_http_400(fake, start_proxy, raw):
    proxy = await start_proxy(policy(server={"maxHeaderBytes": LIMIT}))
    status, headers, body = parse(await send_raw(proxy.url, raw))
    assert_openai_error(status, headers, body, 400, "invalid_request")
    assert body["error"]["message"].startswith("Malformed HTTP request: ")
    assert fake.requests == []


async def test_bad_chunk_after_the_handler_started_reading(fake, start_proxy):
    """The headers went to the handler (proven by its `100 Continue`) before the bad chunk: the
    handler answers 400 at once, not the body timeout's 408, and exactly one answer is sent."""
    proxy = await start_proxy(policy(server={"bodyTimeout": "60s"}))
    reader, writer = await connect(proxy.url)
    try:
        writer.write(POST + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        await writer.drain()
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"2\r\n{\"\r\nzz\r\n")
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    status, headers, body = parse(raw)
    assert_openai_error(status, headers, body, 400, "invalid_request")
    assert body["error"]["message"].startswith("Malformed request body: ")
    assert fake.requests == []


async def test_sdk_sees_oversized_header(fake, start_proxy):
    proxy = await start_proxy(policy(server={"maxHeaderBytes": LIMIT}))
    with pytest.raises(openai.APIStatusError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                           extra_headers={"x-big": "a" * (2 * LIMIT)})
    assert info.value.status_code == 431
    assert info.value.code == "request_too_large"
    assert info.value.response.headers["x-aifw-request-id"].startswith("req_")
    assert fake.requests == []


async def test_good_request_still_served_after_a_refused_one(fake, start_proxy):
    # a refused request closes its own connection only
    proxy = await start_proxy(policy(server={"maxHeaderBytes": LIMIT}))
    parse(await send_raw(proxy.url, MALFORMED["duplicate content-length"]))
    result = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert result.choices[0].message.content == "You said: hello there"
    assert len(fake.requests) == 1


async def test_duplicate_header_aiohttp_accepts_is_forwarded(fake, start_proxy):
    """A repeated ordinary header is not a parser error: the request is served as usual."""
    proxy = await start_proxy()
    headers = CIMultiDict([("content-type", "application/json"), ("authorization", "Bearer sk-test"),
                           ("x-trace", "a"), ("x-trace", "b")])
    data = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG})
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.openai_url + "/chat/completions", data=data, headers=headers) as r:
            assert r.status == 200
            assert r.headers["x-aifw-request-id"].startswith("req_")
    assert len(fake.requests) == 1


async def test_unexpected_handler_exception_is_an_openai_500(fake, start_proxy, monkeypatch):
    """aiohttp's last-resort 500 (an exception no handler caught) is in the error shape too."""
    import proxy.app

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(proxy.app, "identify", broken)
    running = await start_proxy()
    with pytest.raises(openai.InternalServerError) as info:
        await oa(running.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 500
    assert info.value.code == "internal_error"
    assert info.value.body["type"] == "server_error" and "a bug" not in info.value.message
    assert info.value.response.headers["x-aifw-request-id"].startswith("req_")
    assert fake.requests == []


@pytest.mark.parametrize("line", [b"OPTIONS * HTTP/1.1", b"CONNECT api.openai.com:443 HTTP/1.1"])
async def test_a_target_no_route_matches_gets_the_error_shape(fake, start_proxy, line):
    # aiohttp's router answers these itself (no handler runs); the connection gives the answer
    # the wire contract's shape and an id (server.AifwRequestHandler.finish_response)
    proxy = await start_proxy(policy())
    raw = await send_raw(proxy.url, line + b"\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    status, headers, body = parse(raw)
    assert_openai_error(status, headers, body, 404, "not_found")
    assert fake.requests == []


async def test_health_metrics_and_ready_answers_carry_an_id(fake, start_proxy):
    proxy = await start_proxy(policy())
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with s.get(proxy.url + path) as r:
                assert r.status == 200 and r.headers["x-aifw-request-id"].startswith("req_")
