"""Every OpenAI endpoint through the proxy gives what the fake provider gives directly."""
from __future__ import annotations

import base64
import struct


import openai
import pytest

from tests.e2e.helpers import MSG, oa, policy

pytestmark = pytest.mark.timeout(30)

REPLY = {"x-fake-reply": "one two three four"}


def _strip(d: dict) -> dict:
    # ids and timestamps differ between two calls; everything else must be equal
    return {k: v for k, v in d.items() if k not in ("id", "created", "created_at", "system_fingerprint")}


async def test_chat_plain_equals_direct(fake, start_proxy):
    proxy = await start_proxy()
    via = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=REPLY)
    direct = await oa(fake.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=REPLY)
    assert _strip(via.model_dump()) == _strip(direct.model_dump())
    assert via.choices[0].message.content == "one two three four"
    assert via.usage.total_tokens > 0
    assert fake.requests[0].json == fake.requests[1].json


async def test_chat_raw_response_headers(fake, start_proxy):
    proxy = await start_proxy()
    raw = await oa(proxy.openai_url).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-aifw-request-id"].startswith("req_")
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["openai-processing-ms"]
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"


@pytest.mark.parametrize("include_usage", [False, True])
async def test_chat_stream_equals_direct(fake, start_proxy, include_usage):
    proxy = await start_proxy()
    kw = dict(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=REPLY)
    if include_usage:
        kw["stream_options"] = {"include_usage": True}

    async def collect(url):
        chunks = [c async for c in await oa(url).chat.completions.create(**kw)]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return chunks, text

    via, via_text = await collect(proxy.openai_url)
    direct, direct_text = await collect(fake.openai_url)
    assert via_text == direct_text == "one two three four"
    assert len(via) == len(direct)
    assert [_strip(c.model_dump()) for c in via] == [_strip(c.model_dump()) for c in direct]
    usage = [c.usage for c in via if c.usage is not None]
    assert (len(usage) == 1) == include_usage
    if include_usage:
        assert via[-1].choices == [] and via[-1].usage.completion_tokens > 0


async def test_legacy_completions_plain_and_stream(fake, start_proxy):
    proxy = await start_proxy()
    client = oa(proxy.openai_url)
    plain = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", extra_headers=REPLY)
    assert plain.choices[0].text == "one two three four"
    direct = await oa(fake.openai_url).completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", extra_headers=REPLY)
    assert _strip(plain.model_dump()) == _strip(direct.model_dump())
    stream = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", stream=True,
                                             extra_headers=REPLY)
    assert "".join([c.choices[0].text async for c in stream]) == "one two three four"


async def test_embeddings_float_and_default_base64(fake, start_proxy):
    proxy = await start_proxy()
    client = oa(proxy.openai_url)
    via = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])   # SDK: base64
    assert fake.last_request.json["encoding_format"] == "base64"
    direct = await oa(fake.openai_url).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert via.model_dump() == direct.model_dump()
    floats = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    assert fake.last_request.json["encoding_format"] == "float"
    assert [d.embedding for d in floats.data] == [d.embedding for d in via.data]
    # the base64 body really passed through as base64
    raw = await client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="a")
    emb = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(emb, str) and len(struct.unpack("<8f", base64.b64decode(emb))) == 8


async def test_responses_plain_and_stream(fake, start_proxy):
    proxy = await start_proxy()
    client = oa(proxy.openai_url)
    plain = await client.responses.create(model="gpt-4o-mini", input="hi", instructions="be brief", extra_headers=REPLY)
    assert plain.output_text == "one two three four"
    direct = await oa(fake.openai_url).responses.create(model="gpt-4o-mini", input="hi", instructions="be brief",
                                                         extra_headers=REPLY)
    assert _strip(plain.model_dump()) | {"output": None} == _strip(direct.model_dump()) | {"output": None}
    assert plain.output[0].content[0].text == direct.output[0].content[0].text
    events = [e async for e in await client.responses.create(model="gpt-4o-mini", input="hi", stream=True,
                                                             extra_headers=REPLY)]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "one two three four"
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.output_tokens > 0


async def test_models_list_and_get(fake, start_proxy):
    proxy = await start_proxy()
    client = oa(proxy.openai_url)
    models = [m.id async for m in client.models.list()]
    assert models == [m.id async for m in oa(fake.openai_url).models.list()]
    one = await client.models.retrieve("gpt-4o")
    assert one.id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")


async def test_unknown_path_is_openai_shaped_404(fake, start_proxy):
    proxy = await start_proxy()
    client = oa(proxy.openai_url)
    with pytest.raises(openai.NotFoundError) as info:
        await client.post("/fine_tuning/jobs", body={"model": "x"}, cast_to=object)
    err = info.value.body
    assert info.value.code == "not_found" and "Unknown path" in err["message"]
    assert info.value.response.headers["x-aifw-request-id"]
    assert fake.requests == []


async def test_passthrough_path_goes_uninspected(fake, start_proxy):
    proxy = await start_proxy(policy(passthrough={"paths": ["/v1/fine_tuning/*"], "upstream": "openai"}))
    client = oa(proxy.openai_url)
    # the fake answers unknown paths with its own 404: that it got there is the point
    with pytest.raises(openai.NotFoundError) as info:
        await client.post("/fine_tuning/jobs", body={"model": "x", "anything": [1, 2]}, cast_to=object)
    assert "Invalid URL (POST /v1/fine_tuning/jobs)" in info.value.body["message"]
    assert fake.last_request.path == "/v1/fine_tuning/jobs"
    assert fake.last_request.json == {"model": "x", "anything": [1, 2]}
    with pytest.raises(openai.NotFoundError) as info:   # not listed: refused by the proxy
        await client.post("/batches", body={}, cast_to=object)
    assert info.value.code == "not_found"
    assert len(fake.requests) == 1
