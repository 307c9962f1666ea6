"""Bad input gets the wire contract's error and never reaches the upstream."""
from __future__ import annotations

import asyncio
import gzip

import aiohttp
import openai
import pytest
import yaml

from proxy.policy.compile import PolicyError, compile_policy
from tests.conftest import READINESS_TOKEN
from tests.e2e.helpers import MSG, oa, policy, readiness

pytestmark = pytest.mark.timeout(60)

AUTH = {"authorization": "Bearer sk-test"}
CHAT = "/chat/completions"


async def post(url: str, data: bytes, headers: dict) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=data, headers={**AUTH, **headers}) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes; return what comes back up to the end of the first response's headers + body."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return head + await reader.readexactly(length)
    finally:
        writer.close()


@pytest.mark.parametrize("data,ctype,status,code", [
    (b'{"model": "gpt-4o-mini", "messages": [', "application/json", 400, "invalid_json"),
    (b'{"model": "gpt-4o-mini", "messages": []}', "text/plain", 415, "unsupported_media_type"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "application/json", 400,
     "invalid_request"),
    (b'[1, 2, 3]', "application/json", 400, "invalid_request"),
    (b'{"model": "gpt-4o-mini", "messages": "not a list"}', "application/json", 400, "invalid_request"),
])
async def test_malformed_bodies(fake, start_proxy, data, ctype, status, code):
    proxy = await start_proxy()
    got, headers, body = await post(proxy.openai_url + CHAT, data, {"content-type": ctype})
    assert (got, body["error"]["code"]) == (status, code)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert headers["x-aifw-request-id"].startswith("req_")
    assert fake.requests == []


async def test_compressed_request_body_refused(fake, start_proxy):
    proxy = await start_proxy()
    plain = b'{"model": "gpt-4o-mini", "messages": []}'
    got, _, body = await post(proxy.openai_url + CHAT, gzip.compress(plain), {"content-type": "application/json",
                                                                              "content-encoding": "gzip"})
    assert (got, body["error"]["code"]) == (415, "unsupported_media_type")
    got, _, body = await post(proxy.openai_url + CHAT, b"\x1f\x8b\x08", {"content-type": "application/json",
                                                                          "content-encoding": "gzip"})
    assert got == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    assert fake.requests == []


async def test_sdk_sees_bad_request(fake, start_proxy):
    proxy = await start_proxy()
    with pytest.raises(openai.BadRequestError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages="nope")
    assert info.value.code == "invalid_request"


async def test_body_over_server_limit_413_before_reading_it(fake, start_proxy):
    proxy = await start_proxy(policy(server={"maxBodyBytes": 1024, "bodyTimeout": "20s"}))
    # announce 10 MB, send 4 bytes: the answer must not wait for the rest (nor the body timeout)
    out = await raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{\"a\"")
    assert out.startswith(b"HTTP/1.1 413")
    assert b'"code":"request_too_large"' in out and b"x-aifw-request-id" in out.lower()
    # chunked, no length: cut off once the limit is passed
    chunk = b"a" * 2000
    out = await raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                             b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    assert out.startswith(b"HTTP/1.1 413") and b"request_too_large" in out
    assert fake.requests == []


async def test_slow_client_body_gets_408(fake, start_proxy):
    proxy = await start_proxy(policy(server={"bodyTimeout": "300ms"}))
    out = await raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
    assert out.startswith(b"HTTP/1.1 408") and b'"code":"request_timeout"' in out
    assert fake.requests == []


async def test_slow_client_headers_are_cut_off(fake, start_proxy):
    proxy = await start_proxy(policy(server={"headerTimeout": "300ms"}))
    host, port = proxy.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")   # and never the rest
    await writer.drain()
    await asyncio.wait_for(reader.read(), 10)    # returns once the proxy closed the connection
    assert reader.at_eof()
    writer.close()
    assert fake.requests == []


async def test_oversized_header_431(fake, start_proxy):
    # 431 Request Header Fields Too Large, in the error shape (more cases in test_parser_errors.py)
    proxy = await start_proxy(policy(server={"maxHeaderBytes": 2048}))
    out = await raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 +
                             b"\r\nContent-Length: 2\r\n\r\n{}")
    assert out.startswith(b"HTTP/1.0 431") or out.startswith(b"HTTP/1.1 431")
    assert b'"code":"request_too_large"' in out and b"x-aifw-request-id" in out.lower()
    with pytest.raises(openai.APIStatusError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                           extra_headers={"x-big": "a" * 5000})
    assert info.value.status_code == 431
    assert fake.requests == []


async def test_duplicate_headers_400(fake, start_proxy):
    proxy = await start_proxy()
    body = b'{"model": "gpt-4o-mini", "messages": []}'
    # two Content-Length values: refused by the HTTP parser
    out = await raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                             b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    assert b" 400 " in out.split(b"\r\n")[0] and b'"code":"invalid_request"' in out
    # two different keys: identified by one, forwarded with the other? refused instead
    for extra in ([("Authorization", "Bearer sk-a"), ("Authorization", "Bearer sk-b")],
                  [("Authorization", "Bearer sk-a"), ("x-api-key", "sk-b")],
                  [("Authorization", "Bearer sk-a"), ("x-aifw-user", "u1"), ("x-aifw-user", "u2")]):
        async with aiohttp.ClientSession() as s:
            from multidict import CIMultiDict
            headers = CIMultiDict([("content-type", "application/json"), *extra])
            async with s.post(proxy.openai_url + CHAT, data=body, headers=headers) as r:
                assert r.status == 400, extra
                assert (await r.json())["error"]["code"] == "invalid_request"
                assert r.headers["x-aifw-request-id"]
    assert fake.requests == []
    # the same key twice is not ambiguous
    async with aiohttp.ClientSession() as s:
        from multidict import CIMultiDict
        headers = CIMultiDict([("content-type", "application/json"), ("Authorization", "Bearer sk-a"),
                               ("x-api-key", "sk-a")])
        async with s.post(proxy.openai_url + CHAT, data=body, headers=headers) as r:
            assert r.status == 200


async def test_health_and_ready(fake, start_proxy):
    proxy = await start_proxy()
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
        async with s.get(proxy.url + "/readyz") as r:
            # a load balancer gets the status and nothing else
            assert r.status == 200 and (await r.json()) == {"status": "ready"}
    status, details = await readiness(proxy.url)
    assert status == 200 and details["ready"] is True and details["status"] == "ready"
    assert details["policy"]["name"] == "test" and details["lastReloadError"] is None
    proxy.holder.services.health["redis"] = "problem"
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/readyz") as r:
            assert r.status == 503 and (await r.json()) == {"status": "not_ready"}
    status, details = await readiness(proxy.url)
    assert status == 503 and details["backends"] == {"redis": "problem"}
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/readyz", headers={"Authorization": "Bearer wrong-token-0123456789"}) as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
    assert fake.requests == []


async def test_readiness_detail_needs_a_configured_token(fake, start_proxy, tmp_path):
    # no token in the policy: no header unlocks the detail (policy path, reload error text)
    data = yaml.safe_load(policy())
    del data["server"]["readinessToken"]
    proxy = await start_proxy(yaml.safe_dump(data))
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": f"Bearer {READINESS_TOKEN}"}, {"Authorization": "Bearer "}):
            async with s.get(proxy.url + "/readyz", headers=headers) as r:
                assert r.status == 200 and (await r.text()) == '{"status":"ready"}'
    data["server"]["readinessToken"] = "short"
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match=r"\$.server.readinessToken: must be at least 16 characters"):
        compile_policy(str(tmp_path / "short.yaml"), env={"AIFW_AUDIT_DIR": str(tmp_path), "FAKE_URL": fake.url,
                                                         "FAKE_OPENAI_URL": fake.openai_url})


async def test_every_response_carries_request_id(fake, start_proxy):
    proxy = await start_proxy()
    ids = set()
    async with aiohttp.ClientSession() as s:
        for method, path, kw in (("GET", "/v1/models", {"headers": AUTH}), ("GET", "/nope", {}),
                                 ("DELETE", "/v1/chat/completions", {"headers": AUTH}),
                                 ("POST", "/v1/chat/completions", {"headers": AUTH, "data": b"{"}),
                                 ("POST", "/v1/chat/completions", {}),
                                 ("POST", "/v1/chat/completions", {"headers": {**AUTH, "x-fake-mode": "error:500"},
                                                                   "json": {"model": "m", "messages": MSG}}),
                                 ("POST", "/v1/chat/completions", {"headers": AUTH,
                                                                   "json": {"model": "m", "messages": MSG,
                                                                            "stream": True}})):
            async with s.request(method, proxy.url + path, **kw) as r:
                await r.read()
                assert r.headers.get("x-aifw-request-id", "").startswith("req_"), (method, path, r.status)
                ids.add(r.headers["x-aifw-request-id"])
    assert len(ids) == 7


async def test_unrecognised_body_block_or_pass(fake, start_proxy):
    body = b'{"model": "gpt-4o-mini", "prompt": [1, 2, 3]}'     # token ids: not inspectable as text
    proxy = await start_proxy()
    got, _, err = await post(proxy.openai_url + "/completions", body, {"content-type": "application/json"})
    assert (got, err["error"]["code"]) == (400, "invalid_request") and "Unrecognised" in err["error"]["message"]
    assert fake.requests == []

    proxy = await start_proxy(policy(unrecognizedBody="pass"), name="pass.yaml")
    recorded = []
    original = proxy.holder.record

    def record(ex):
        recorded.append((ex.decision, list(ex.uninspected)))
        original(ex)
    proxy.holder.record = record
    got, _, out = await post(proxy.openai_url + "/completions", body, {"content-type": "application/json"})
    assert got == 200 and out["object"] == "text_completion"
    assert fake.last_request.body == body                  # forwarded byte for byte
    await asyncio.sleep(0)
    for _ in range(100):
        if recorded:
            break
        await asyncio.sleep(0.01)
    (decision, reasons), = recorded
    assert decision == "bypassed" and any("unrecognised body" in r for r in reasons)
