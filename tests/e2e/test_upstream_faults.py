"""Upstream behaviour passes through faithfully; an unreachable or silent upstream gets 502/504."""
from __future__ import annotations

import gzip
import socket

import aiohttp
import openai
import orjson
import pytest
import yaml

from tests.e2e.helpers import MSG, fast_policy, oa, policy

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("status,exc", [(400, openai.BadRequestError), (401, openai.AuthenticationError),
                                        (403, openai.PermissionDeniedError), (404, openai.NotFoundError),
                                        (429, openai.RateLimitError), (500, openai.InternalServerError),
                                        (503, openai.InternalServerError)])
async def test_upstream_errors_pass_through(fake, start_proxy, status, exc):
    proxy = await start_proxy()
    client = oa(proxy.openai_url)
    with pytest.raises(exc) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                             extra_headers={"x-fake-mode": f"error:{status}"})
    with pytest.raises(exc) as direct:
        await oa(fake.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                          extra_headers={"x-fake-mode": f"error:{status}"})
    got, want = info.value.response, direct.value.response
    assert got.status_code == status
    assert info.value.body == direct.value.body
    assert got.headers["x-request-id"].startswith("req_")
    assert got.headers["x-aifw-request-id"]
    for name in ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "retry-after",
                 "openai-processing-ms"):
        assert (name in got.headers) == (name in want.headers), name


async def test_error_on_stream_request_is_http_error(fake, start_proxy):
    proxy = await start_proxy()
    with pytest.raises(openai.RateLimitError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                           extra_headers={"x-fake-mode": "error:429"})
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"


async def _raw_post(url: str, body: dict, headers: dict) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.post(url, data=orjson.dumps(body),
                                headers={"content-type": "application/json", **headers}) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def test_gzip_body_arrives_intact(fake, start_proxy):
    proxy = await start_proxy()
    body = {"model": "gpt-4o-mini", "messages": MSG}
    status, headers, data = await _raw_post(proxy.openai_url + "/chat/completions", body, {
        "authorization": "Bearer sk-test", "accept-encoding": "gzip", "x-fake-mode": "gzip", "x-fake-reply": "zip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(data))["choices"][0]["message"]["content"] == "zip"
    assert int(headers["Content-Length"]) == len(data)
    # and through the SDK, which decompresses itself
    out = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                             extra_headers={"x-fake-mode": "gzip", "x-fake-reply": "z"})
    assert out.choices[0].message.content == "z"


async def test_accept_encoding_follows_the_client(fake, start_proxy):
    proxy = await start_proxy()
    body = {"model": "gpt-4o-mini", "messages": MSG}
    await _raw_post(proxy.openai_url + "/chat/completions", body,
                    {"authorization": "Bearer sk-test", "accept-encoding": "identity"})
    assert "gzip" not in fake.last_request.headers.get("accept-encoding", "identity")
    await _raw_post(proxy.openai_url + "/chat/completions", body,
                    {"authorization": "Bearer sk-test", "accept-encoding": "br, gzip;q=0.5"})
    assert fake.last_request.headers["accept-encoding"] == "gzip"


async def test_hop_by_hop_headers_dropped(fake, start_proxy):
    proxy = await start_proxy()
    body = {"model": "gpt-4o-mini", "messages": MSG}
    status, headers, _ = await _raw_post(proxy.openai_url + "/chat/completions", body, {
        "authorization": "Bearer sk-test", "connection": "keep-alive, x-private", "x-private": "1",
        "te": "trailers", "proxy-authorization": "Basic abc", "upgrade": "h2c", "x-aifw-user": "mallory",
        "keep-alive": "timeout=5", "x-custom": "kept"})
    assert status == 200
    seen = fake.last_request.headers
    for name in ("x-private", "te", "proxy-authorization", "upgrade", "x-aifw-user", "keep-alive"):
        assert name not in seen, name
    assert seen["x-custom"] == "kept"
    assert "transfer-encoding" not in {k.lower() for k in headers} or headers.get("Transfer-Encoding") == "chunked"


def test_response_hop_by_hop_filter():
    from multidict import CIMultiDict

    from proxy.upstream import response_headers
    up = CIMultiDict({"Connection": "close, x-secret", "X-Secret": "1", "Keep-Alive": "timeout=5",
                      "Transfer-Encoding": "chunked", "x-request-id": "req_1", "Content-Encoding": "gzip",
                      "Proxy-Authenticate": "Basic", "Trailer": "x"})
    assert response_headers(up, drop_encoding=False) == {"x-request-id": "req_1", "Content-Encoding": "gzip"}
    assert response_headers(up, drop_encoding=True) == {"x-request-id": "req_1"}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_connection_refused_is_502(fake, start_proxy):
    text = yaml.safe_load(policy())
    text["upstreams"]["openai"]["baseUrl"] = f"http://127.0.0.1:{_closed_port()}/v1"
    proxy = await start_proxy(yaml.safe_dump(text))
    with pytest.raises(openai.APIStatusError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_error"
    assert info.value.response.headers["x-aifw-request-id"]


async def test_first_byte_timeout_is_504(fake, start_proxy):
    proxy = await start_proxy(fast_policy())
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as info:
            await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=stream,
                                                               extra_headers={"x-fake-mode": "stall:2500"})
        assert info.value.status_code == 504
        assert info.value.code == "upstream_timeout"


async def test_stream_idle_timeout_is_error_event(fake, start_proxy):
    proxy = await start_proxy(fast_policy())
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers={"x-fake-mode": "slow:2500", "x-fake-chunks": "3"})
    got = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 1
    assert "went silent" in info.value.message
    # the timed-out upstream request was cancelled
    await fake.wait_for_disconnect(timeout=10)


def test_response_headers_keep_repeated_fields():
    from multidict import CIMultiDict

    from proxy.upstream import response_headers
    up = CIMultiDict([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Link", "<x>"), ("Connection", "close")])
    out = response_headers(up, drop_encoding=False)
    assert out.getall("Set-Cookie") == ["a=1", "b=2"]
    assert "Connection" not in out


async def test_a_rewritten_answer_goes_out_without_its_encoding(fake, start_proxy):
    """The edge filters an answer's headers once, for the answer it serves: a body a guard
    rewrote goes out decoded, without the upstream's Content-Encoding; one left alone keeps it."""
    proxy = await start_proxy(policy(guards={"access": {}, "pii": {}}))
    body = {"model": "gpt-4o-mini", "messages": MSG}
    sent = {"authorization": "Bearer sk-test", "accept-encoding": "gzip", "x-fake-mode": "gzip"}
    status, headers, data = await _raw_post(proxy.openai_url + "/chat/completions", body,
                                            {**sent, "x-fake-reply": "write to alice@example.com"})
    assert status == 200
    assert "Content-Encoding" not in headers and "X-Request-ID" in headers
    assert "alice@example.com" not in orjson.loads(data)["choices"][0]["message"]["content"]
    status, headers, data = await _raw_post(proxy.openai_url + "/chat/completions", body,
                                            {**sent, "x-fake-reply": "nothing personal"})
    assert headers["Content-Encoding"] == "gzip" and "X-Request-ID" in headers
    assert orjson.loads(gzip.decompress(data))["choices"][0]["message"]["content"] == "nothing personal"
