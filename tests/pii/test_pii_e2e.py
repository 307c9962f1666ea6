"""The pii guard through the real proxy with the official openai SDK and the fake provider."""
from __future__ import annotations

import json
from urllib.parse import quote

import openai
import pytest

from tests.conftest import minimal_policy

pytestmark = pytest.mark.timeout(30)

EMAIL = "jane.roe@example.com"
POLICY = minimal_policy(guards={"pii": {"entities": {"US_SSN": "block"}}, "access": {}})


def client(proxy):
    return openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-test", max_retries=0)


async def test_masked_upstream_restored_for_caller(fake, start_proxy):
    proxy = await start_proxy(POLICY)
    reply = await client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"mail {EMAIL} now"}])
    sent = fake.requests[-1].json["messages"][0]["content"]
    assert sent == "mail <EMAIL_ADDRESS_1> now"            # the provider never saw the value
    assert EMAIL in reply.choices[0].message.content       # the caller gets it back


async def test_streamed_placeholder_split_across_chunks_is_restored(fake, start_proxy):
    proxy = await start_proxy(POLICY)
    headers = {"x-fake-reply": quote("Sure: <EMAIL_ADDRESS_1> and bob@corp.io."), "x-fake-chunks": "9"}
    stream = await client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"I am {EMAIL}"}], stream=True,
        extra_headers=headers)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == f"Sure: {EMAIL} and <EMAIL_ADDRESS_2>."


async def test_block_is_a_content_filter_error(fake, start_proxy):
    proxy = await start_proxy(POLICY)
    with pytest.raises(openai.BadRequestError) as info:
        await client(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "my SSN is 123-45-6780"}])
    assert info.value.code == "content_filter"
    assert not fake.requests or "123-45-6780" not in json.dumps(fake.requests[-1].json)
