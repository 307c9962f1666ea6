"""Streams stay streams: no buffering, keep-alives pass, disconnects propagate both ways."""
from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import openai
import pytest

from tests.e2e.helpers import MSG, ant, oa

pytestmark = pytest.mark.timeout(30)

async def finished(fake, n: int) -> None:
    """Wait (bounded) until the fake has completed n streams: its bookkeeping runs just after
    the last bytes go out, so it may trail the client by a loop iteration."""
    async with asyncio.timeout(10):
        while fake.state.completed_streams < n:
            await asyncio.sleep(0.01)
    assert fake.state.completed_streams == n


SLOW = {"x-fake-mode": "slow:150", "x-fake-chunks": "4", "x-fake-reply": "aaaabbbbccccdddd"}


async def test_chat_events_arrive_before_upstream_finishes(fake, start_proxy):
    proxy = await start_proxy()
    stream = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                                extra_headers=SLOW)
    seen = []
    async for chunk in stream:
        # every event but the terminal ones is in the client's hands while the fake still works
        if chunk.choices and chunk.choices[0].delta.content:
            seen.append((chunk.choices[0].delta.content, fake.state.completed_streams))
    assert [t for t, _ in seen] == ["aaaa", "bbbb", "cccc", "dddd"]
    assert all(done == 0 for _, done in seen)
    await finished(fake, 1)


async def test_responses_and_anthropic_events_arrive_incrementally(fake, start_proxy):
    proxy = await start_proxy()
    events = await oa(proxy.openai_url).responses.create(model="gpt-4o-mini", input="hi", stream=True,
                                                         extra_headers=SLOW)
    states = [fake.state.completed_streams async for e in events if e.type == "response.output_text.delta"]
    assert states == [0, 0, 0, 0]
    await finished(fake, 1)
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSG,
                                              extra_headers=SLOW) as stream:
        states = [fake.state.completed_streams async for _ in stream.text_stream]
    assert states == [1, 1, 1, 1]   # the responses stream finished; this one was still running
    await finished(fake, 2)


async def test_keepalive_comments_pass(fake, start_proxy):
    proxy = await start_proxy()
    async with aiohttp.ClientSession() as session:
        async with session.post(proxy.openai_url + "/chat/completions", headers={
                "authorization": "Bearer sk-test", "x-fake-mode": "keepalive", "x-fake-reply": "a b c"},
                json={"model": "gpt-4o-mini", "messages": MSG, "stream": True}) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["x-aifw-request-id"]
            body = await resp.read()
    assert body.count(b": keep-alive\n\n") >= 3
    assert body.endswith(b"data: [DONE]\n\n")
    # the SDK ignores the comments
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers={"x-fake-mode": "keepalive", "x-fake-reply": "a b"})
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "a b"


async def test_client_disconnect_cancels_upstream(fake, start_proxy):
    proxy = await start_proxy()
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        extra_headers={"x-fake-mode": "slow:100", "x-fake-chunks": "200"})
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    await fake.wait_for_disconnect(timeout=10)
    assert fake.disconnects == 1
    assert fake.state.completed_streams == 0


async def test_anthropic_client_disconnect_cancels_upstream(fake, start_proxy):
    proxy = await start_proxy()
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSG, extra_headers={
            "x-fake-mode": "slow:100", "x-fake-chunks": "200"}) as stream:
        async for _ in stream.text_stream:
            break
    await fake.wait_for_disconnect(timeout=10)
    assert fake.state.completed_streams == 0


async def test_upstream_dies_mid_stream_openai_raises(fake, start_proxy):
    proxy = await start_proxy()
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers={"x-fake-mode": "disconnect:3"})
    got = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 3          # everything sent before the cut reached the client
    assert "broke off" in info.value.message or "ended the stream early" in info.value.message


async def test_upstream_dies_mid_responses_stream_raises(fake, start_proxy):
    proxy = await start_proxy()
    events = await oa(proxy.openai_url).responses.create(model="gpt-4o-mini", input="hi", stream=True,
                                                         extra_headers={"x-fake-mode": "disconnect:4"})
    with pytest.raises(openai.APIError):
        async for _ in events:
            pass


async def test_upstream_dies_mid_anthropic_stream_raises(fake, start_proxy):
    proxy = await start_proxy()
    with pytest.raises(anthropic.APIStatusError):
        async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSG,
                                                  extra_headers={"x-fake-mode": "disconnect:3"}) as stream:
            async for _ in stream.text_stream:
                pass
