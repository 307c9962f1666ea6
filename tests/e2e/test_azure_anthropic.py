"""Azure OpenAI's path style and Anthropic's Messages API through the proxy."""
from __future__ import annotations

import anthropic
import openai
import pytest
import yaml

from tests.e2e.helpers import MSG, ant, policy

pytestmark = pytest.mark.timeout(30)


def azure_policy() -> str:
    return policy(upstreams={"azure": {"provider": "azure", "baseUrl": "${FAKE_URL}", "apiVersion": "2024-10-21",
                                       "timeouts": {"connect": "2s", "firstByte": "5s", "streamIdle": "5s"}}},
                  routes=[{"models": ["*"], "upstream": "azure"}])


def azure(url: str, key: str = "azure-key") -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(azure_endpoint=url, api_key=key, api_version="2024-10-21", max_retries=0,
                                   timeout=10)


async def test_azure_chat_plain_stream_and_embeddings(fake, start_proxy):
    proxy = await start_proxy(azure_policy())
    client = azure(proxy.url)
    out = await client.chat.completions.create(model="my-deploy", messages=MSG, extra_headers={"x-fake-reply": "hi az"})
    assert out.choices[0].message.content == "hi az"
    req = fake.last_request
    assert req.path == "/openai/deployments/my-deploy/chat/completions"
    assert req.query["api-version"] == "2024-10-21"
    assert req.headers["api-key"] == "azure-key"
    assert "authorization" not in req.headers

    stream = await client.chat.completions.create(model="my-deploy", messages=MSG, stream=True,
                                                  extra_headers={"x-fake-reply": "a b c"})
    chunks = [c async for c in stream]
    # Azure's leading prompt_filter_results chunk (choices: []) passes through too
    assert chunks[0].choices == []
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"

    direct = await azure(fake.url).embeddings.create(model="emb", input="x")
    via = await client.embeddings.create(model="emb", input="x")
    assert via.model_dump() == direct.model_dump()
    assert fake.last_request.path == "/openai/deployments/emb/embeddings"


async def test_azure_error_passes_through(fake, start_proxy):
    proxy = await start_proxy(azure_policy())
    fake.state.api_keys = {"good-key"}
    with pytest.raises(openai.AuthenticationError) as info:
        await azure(proxy.url, key="bad-key").chat.completions.create(model="d", messages=MSG)
    assert "invalid subscription key" in info.value.message     # Azure's own body, unchanged
    with pytest.raises(openai.RateLimitError):
        await azure(proxy.url, key="good-key").chat.completions.create(
            model="d", messages=MSG, extra_headers={"x-fake-mode": "error:429"})


def test_azure_upstream_from_openai_path_uses_model_as_deployment():
    # a routing detail the SDK tests cannot reach: an OpenAI-style path to an Azure upstream
    from proxy.endpoints import resolve
    from proxy.upstream import upstream_url

    class Up:
        provider, base_url, api_version = "azure", "https://x.openai.azure.com", "2024-10-21"
    ep = resolve("POST", "/v1/chat/completions")
    assert upstream_url(Up, ep, "", "gpt-4o") == \
        "https://x.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"


async def test_anthropic_plain_equals_direct(fake, start_proxy):
    proxy = await start_proxy()
    kw = dict(model="claude-sonnet-4-5", max_tokens=50, system="be brief", messages=MSG,
              extra_headers={"x-fake-reply": "hello from claude"})
    via = await ant(proxy.url).messages.create(**kw)
    direct = await ant(fake.url).messages.create(**kw)
    assert via.content[0].text == direct.content[0].text == "hello from claude"
    assert via.model_dump() | {"id": None} == direct.model_dump() | {"id": None}
    assert fake.requests[0].headers.get("x-api-key") == "sk-ant-test" \
        or fake.requests[0].headers.get("authorization") == "Bearer sk-ant-test"
    assert fake.requests[0].json == fake.requests[1].json


async def test_anthropic_stream(fake, start_proxy):
    proxy = await start_proxy()
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                              extra_headers={"x-fake-reply": "w1 w2 w3"}) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "w1 w2 w3"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


async def test_anthropic_tool_use_stream(fake, start_proxy):
    proxy = await start_proxy()
    tools = [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG, tools=tools,
                                              extra_headers={"x-fake-mode": "tool",
                                                             "x-fake-tool-args": '{"q": "abc"}'}) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"q": "abc"}


async def test_anthropic_error_class(fake, start_proxy):
    proxy = await start_proxy()
    with pytest.raises(anthropic.RateLimitError):
        await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSG,
                                             extra_headers={"x-fake-mode": "error:429"})
    with pytest.raises(anthropic.InternalServerError):
        await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSG,
                                             extra_headers={"x-fake-mode": "error:529"})
