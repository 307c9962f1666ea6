"""Limits through the real proxy with the official openai SDK."""
from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from tests.e2e.helpers import MSG, oa, policy


@pytest.fixture(autouse=True)
def _audit_dir(tmp_path, monkeypatch):
    # tests.e2e.helpers.policy() points the audit log at $AIFW_AUDIT_DIR
    monkeypatch.setenv("AIFW_AUDIT_DIR", str(tmp_path / "audit"))


def limits_policy(limits, **section) -> str:
    return policy(guards={"access": {}, "ratelimit": {"limits": limits, **section}})


def recording_client(url: str, statuses: list[int], max_retries: int) -> openai.AsyncOpenAI:
    async def record(response: httpx.Response) -> None:
        statuses.append(response.status_code)
    http = httpx.AsyncClient(event_hooks={"response": [record]}, timeout=10)
    return openai.AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=max_retries, http_client=http)


async def test_sdk_raises_rate_limit_error_with_headers(start_proxy):
    proxy = await start_proxy(limits_policy([{"name": "rpm", "scope": "key", "requests": "2/minute"}]))
    client = oa(proxy.openai_url)
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    err = info.value
    assert err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    assert 0 < int(err.response.headers["retry-after-ms"]) <= 30000
    assert int(err.response.headers["retry-after"]) >= 1


async def test_sdk_honours_retry_after(start_proxy):
    proxy = await start_proxy(limits_policy([{"name": "rps", "scope": "key", "requests": "1/second"}]))
    statuses: list[int] = []
    client = recording_client(proxy.openai_url, statuses, max_retries=3)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    # The SDK's own first backoff (<= 0.5s) would be refused again; waiting the ~1s the
    # proxy said succeeds at once.
    assert statuses == [200, 429, 200]


async def test_spent_budget_is_not_retried(start_proxy):
    proxy = await start_proxy(limits_policy([{"name": "daily", "scope": "key", "budget": "300/day"}],
                                            defaultMaxTokens=200))
    statuses: list[int] = []
    client = recording_client(proxy.openai_url, statuses, max_retries=3)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)   # settles to real usage
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=290)
    assert info.value.code == "insufficient_quota"
    assert statuses == [200, 429]


async def test_stream_usage_chunk_added_hidden_and_settled(start_proxy, fake):
    proxy = await start_proxy(limits_policy([{"name": "tpm", "scope": "key", "tokens": "100000/minute"}]))
    client = oa(proxy.openai_url)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, max_tokens=1000)
    chunks = [c async for c in stream]
    assert chunks and all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    # the 1000 reserved output tokens were given back: only real usage stays charged
    assert 100000 - remaining < 100


async def test_client_that_asked_for_usage_still_gets_it(start_proxy):
    proxy = await start_proxy(limits_policy([{"name": "tpm", "scope": "key", "tokens": "100000/minute"}]))
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and not chunks[-1].choices


async def test_two_proxies_share_one_redis_limit(start_proxy, redis_url):
    def text():   # each call gets its own audit directory
        return limits_policy([{"name": "shared", "scope": "global", "requests": "3/minute"}],
                             backend="redis", redis={"url": redis_url})
    one = await start_proxy(text(), name="one.yaml")
    two = await start_proxy(text(), name="two.yaml")
    a, b = oa(one.openai_url), oa(two.openai_url)
    await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        await a.chat.completions.create(model="gpt-4o-mini", messages=MSG)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_usage_settles_the_reservation(start_proxy, stream):
    from tests.e2e.helpers import ant
    proxy = await start_proxy(limits_policy([{"name": "tpm", "scope": "key", "tokens": "100000/minute"}]))
    client = ant(proxy.url)
    if stream:
        async with client.messages.stream(model="claude-3-5-haiku", max_tokens=2000, messages=MSG) as s:
            async for _ in s.text_stream:
                pass
    else:
        await client.messages.create(model="claude-3-5-haiku", max_tokens=2000, messages=MSG)
    raw = await client.messages.with_raw_response.create(model="claude-3-5-haiku", max_tokens=1, messages=MSG)
    used_before = 100000 - int(raw.headers["x-ratelimit-remaining-tokens"])
    assert 0 < used_before < 100          # 2000 reserved, real usage charged


async def test_plain_openai_answer_settles(start_proxy):
    proxy = await start_proxy(limits_policy([{"name": "tpm", "scope": "key", "tokens": "5000/minute"}]))
    client = oa(proxy.openai_url)
    for _ in range(5):       # 5 x 4000 reserved would not fit without settlement
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=4000)
