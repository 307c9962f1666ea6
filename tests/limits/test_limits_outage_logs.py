"""A Redis outage in closed mode logs one line when it starts and one when it ends (issue 12):
not a traceback per refused request. A private redis-server is killed and restarted under a
proxy running with the real logging setup."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.e2e.helpers import MSG, oa, policy

pytestmark = pytest.mark.timeout(90)


async def metrics(url: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/metrics") as r:
            return await r.text()


async def test_closed_mode_outage_logs_each_state_change_once(start_proxy, private_redis, log_stream):
    proxy = await start_proxy(policy(guards={"access": {}, "ratelimit": {
        "backend": "redis", "redis": {"url": private_redis.url, "retryIntervalMs": 50, "timeoutMs": 300},
        "limits": [{"name": "rpm", "requests": "1000/minute"}]}}))
    client = oa(proxy.openai_url)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert 'aifw_backend_up{backend="ratelimit"} 1' in await metrics(proxy.url)
    private_redis.stop()
    refused = 0
    for _ in range(12):
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert err.value.status_code == 503 and err.value.code == "guardrail_unavailable"
        refused += 1
        await asyncio.sleep(0.03)         # across several retry intervals: reconnects are tried
    down = await metrics(proxy.url)       # what the chart's AifwLimiterBackendDown alert reads
    assert 'aifw_backend_up{backend="ratelimit"} 0' in down
    assert 'aifw_guard_faults_total{guard="ratelimit"} ' in down
    private_redis.start()
    async with asyncio.timeout(20):
        while "ratelimit" in proxy.holder.services.health:
            await asyncio.sleep(0.05)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await client.close()
    assert 'aifw_backend_up{backend="ratelimit"} 1' in await metrics(proxy.url)

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    events = [line["event"] for line in lines]
    assert refused == 12
    assert sum("redis unreachable" in e for e in events) == 1, events
    assert sum("redis reachable again" in e for e in events) == 1, events
    assert not [line for line in lines if "exception" in line], f"a traceback was logged: {lines}"
    assert not [e for e in events if "guard ratelimit" in e], "the outage was logged per request"
