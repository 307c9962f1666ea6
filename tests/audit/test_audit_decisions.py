"""Through the real proxy: each record's `decision` and `status` say what the client got."""
from __future__ import annotations

import asyncio

import aiohttp
import openai
import orjson
import pytest

from tests.e2e.helpers import MSG, oa, policy
from tests.e2e.test_stream_guards import REPLY, test_guards  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


def records(proxy):
    audit = proxy.holder.policy.sections["audit"].path
    import pathlib
    out = []
    for f in sorted(pathlib.Path(audit).glob("audit-*.jsonl")):
        out += [e for e in map(orjson.loads, f.read_bytes().splitlines()) if e["t"] == "request"]
    return out


async def settled(proxy, n):
    for _ in range(200):
        if proxy.holder._tasks == set() and proxy.holder.audit.queue_depth() == 0:
            break
        await asyncio.sleep(0.02)
    await proxy.stop()
    recs = records(proxy)
    assert len(recs) == n
    return recs


async def test_stream_ended_by_an_upstream_error_event_is_an_error(fake, start_proxy):
    proxy = await start_proxy(policy())
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        extra_headers={"x-fake-mode": "disconnect:2", "x-fake-reply": "a b c d e f"})
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    [rec] = await settled(proxy, 1)
    assert (rec["status"], rec["decision"], rec["error"]) == (200, "error", "upstream_error")


async def test_block_after_the_first_byte_records_blocked_with_the_status_seen(fake, start_proxy, test_guards):
    proxy = await start_proxy(policy(guards={"access": {}, "cut": {}}))
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=REPLY)
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    [rec] = await settled(proxy, 1)
    assert (rec["status"], rec["decision"]) == (200, "blocked")
    assert rec["verdict"]["rules"] == ["cut.rule"]


async def test_client_gone_mid_stream_is_an_error(fake, start_proxy):
    proxy = await start_proxy(policy())
    body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.openai_url + "/chat/completions", json=body,
                             headers={"x-fake-mode": "slow:100", "x-fake-reply": "w " * 50,
                                      "Authorization": "Bearer sk-test"}) as resp:
            await resp.content.readany()
            resp.close()
    [rec] = await settled(proxy, 1)
    assert rec["decision"] == "error" and rec["error"] == "client_disconnected"
    assert rec["status"] == 200


async def test_passthrough_path_is_bypassed(fake, start_proxy):
    proxy = await start_proxy(policy(passthrough={"paths": ["/v1/files*"]}))
    async with aiohttp.ClientSession() as http:
        async with http.get(proxy.openai_url + "/files", headers={"Authorization": "Bearer sk-test"}) as resp:
            status = resp.status
    [rec] = await settled(proxy, 1)
    assert rec["decision"] == "bypassed" and rec["status"] == status
    assert rec["uninspected"] == ["passthrough path"]
