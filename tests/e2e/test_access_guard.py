"""The access guard end to end: model lists, group and key models, output-token caps, body size."""
from __future__ import annotations

import anthropic
import openai
import pytest

from tests.e2e.helpers import MSG, ant, oa, policy
from tests.e2e.test_identity import PROVIDER_KEY, create_key, virtual_policy

pytestmark = pytest.mark.timeout(60)


async def test_allow_and_deny_models(fake, start_proxy):
    proxy = await start_proxy(policy(guards={"access": {"allowModels": ["gpt-4o*", "claude-*"],
                                                        "denyModels": ["gpt-4o-2024-*", "claude-2*"]}}))
    client = oa(proxy.openai_url)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    for model in ("gpt-3.5-turbo", "gpt-4o-2024-08-06"):
        with pytest.raises(openai.PermissionDeniedError) as info:
            await client.chat.completions.create(model=model, messages=MSG)
        assert info.value.code == "model_not_allowed" and model in info.value.message
        assert info.value.response.headers["x-aifw-request-id"]
    with pytest.raises(openai.PermissionDeniedError):
        await client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.PermissionDeniedError):
        await client.responses.create(model="o3", input="x")
    await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSG)
    with pytest.raises(anthropic.PermissionDeniedError):
        await ant(proxy.url).messages.create(model="claude-2", max_tokens=5, messages=MSG)
    assert len(fake.requests) == 2


async def test_group_models(fake, start_proxy, tmp_path):
    keys = tmp_path / "keys.yaml"
    eng = create_key(keys, "--user", "e", "--group", "eng")
    both = create_key(keys, "--user", "b", "--group", "eng", "--group", "research")
    other = create_key(keys, "--user", "o", "--group", "sales")
    text = virtual_policy()
    text = text.replace("guards:\n  access: {}", "guards:\n  access:\n    groupModels: {eng: [gpt-4o-mini], research: [gpt-4o]}")
    assert "groupModels" in text
    proxy = await start_proxy(text, env={"PROVIDER_KEY": PROVIDER_KEY})
    await oa(proxy.openai_url, key=eng).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await oa(proxy.openai_url, key=eng).chat.completions.create(model="gpt-4o", messages=MSG)
    assert "group" in info.value.message
    await oa(proxy.openai_url, key=both).chat.completions.create(model="gpt-4o", messages=MSG)
    await oa(proxy.openai_url, key=other).chat.completions.create(model="gpt-4o", messages=MSG)  # unlisted group
    assert len(fake.requests) == 3


@pytest.mark.parametrize("field,value", [("max_tokens", 500), ("max_completion_tokens", 500)])
async def test_max_output_tokens_block(fake, start_proxy, field, value):
    proxy = await start_proxy(policy(guards={"access": {"maxOutputTokens": 100}}))
    with pytest.raises(openai.BadRequestError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, **{field: value})
    assert field in info.value.message and "100" in info.value.message
    await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, **{field: 100})
    assert len(fake.requests) == 1


async def test_max_output_tokens_clamp(fake, start_proxy):
    proxy = await start_proxy(policy(guards={"access": {"maxOutputTokens": 100, "onMaxOutputTokens": "clamp"}}))
    await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=5000)
    assert fake.last_request.json["max_tokens"] == 100
    assert fake.last_request.json["messages"] == MSG
    await oa(proxy.openai_url).responses.create(model="gpt-4o-mini", input="x", max_output_tokens=5000)
    assert fake.last_request.json["max_output_tokens"] == 100
    await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=5000, messages=MSG)
    assert fake.last_request.json["max_tokens"] == 100
    # a value under the cap is forwarded byte for byte
    await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=7)
    assert fake.last_request.json["max_tokens"] == 7


async def test_access_max_body_bytes_413(fake, start_proxy):
    proxy = await start_proxy(policy(guards={"access": {"maxBodyBytes": "2KiB"}}))
    client = oa(proxy.openai_url)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 3000}])
    assert info.value.status_code == 413 and info.value.code == "request_too_large"
    assert len(fake.requests) == 1


async def test_server_max_body_bytes_413(fake, start_proxy):
    proxy = await start_proxy(policy(server={"maxBodyBytes": "2KiB"}))
    with pytest.raises(openai.APIStatusError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini",
                                                           messages=[{"role": "user", "content": "x" * 3000}])
    assert info.value.status_code == 413 and info.value.code == "request_too_large"
    assert fake.requests == []
