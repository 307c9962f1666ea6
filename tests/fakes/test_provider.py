"""The fake provider, checked with the official SDKs: if these parse it, it speaks the wire."""

from __future__ import annotations

import gzip

import aiohttp
import anthropic
import openai
import orjson
import pytest

from tests.fakes.provider import FakeState, run_fake_provider, split_pieces

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "look up",
                                           "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture
async def fake():
    async with run_fake_provider() as running:
        yield running


@pytest.fixture
def oai(fake):
    return openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-test-1234", max_retries=0)


@pytest.fixture
def claude(fake):
    return anthropic.AsyncAnthropic(base_url=fake.url, api_key="sk-ant-test", max_retries=0)


async def raw_post(url: str, body: dict, headers: dict | None = None, **session_kw) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(**session_kw) as session:
        async with session.post(url, json=body, headers={"authorization": "Bearer sk-x", **(headers or {})}) as r:
            return r.status, dict(r.headers), await r.read()


def test_split_pieces_exact_count_and_words():
    assert split_pieces("abcdefghij", 3) == ["abc", "defg", "hij"]
    assert "".join(split_pieces("x" * 7, 50)) == "x" * 7 and len(split_pieces("x" * 7, 50)) == 50
    assert split_pieces("You said: hi there", None) == ["You ", "said: ", "hi ", "there"]


# --- OpenAI chat completions ---------------------------------------------------------------


async def test_chat_plain_echoes_and_records(fake, oai):
    raw = await oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    done = raw.parse()
    assert done.choices[0].message.content == "You said: hello there"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    for name in ("openai-processing-ms", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                 "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        assert name in raw.headers
    seen = fake.last_request
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test-1234"
    assert seen.json["messages"] == MESSAGES


async def test_chat_stream_with_usage_chunk(fake, oai):
    stream = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers={"x-fake-reply": "caf%C3%A9 ol%C3%A9", "x-fake-chunks": "5"})
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "café olé"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert fake.state.completed_streams == 1


async def test_chat_stream_bytes_are_sse_with_done(fake):
    status, headers, body = await raw_post(fake.openai_url + "/chat/completions",
                                           {"model": "m", "messages": MESSAGES, "stream": True})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = body.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert all(e.startswith(b"data: {") for e in events[:-2])
    assert b'"usage"' not in body  # no usage chunk unless stream_options asks for it


async def test_chat_tool_calls_plain_and_streamed(fake, oai):
    done = await oai.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS,
                                             extra_headers={"x-fake-mode": "tool"})
    call = done.choices[0].message.tool_calls[0]
    assert done.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    assert orjson.loads(call.function.arguments) == {"text": "You said: hello there"}

    fake.state.tool_call, fake.state.tool_args = "lookup", '{"city": "Paris"}'
    async with oai.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'


async def test_no_tool_call_when_request_offers_no_tools(fake, oai):
    done = await oai.chat.completions.create(model="m", messages=MESSAGES,
                                             extra_headers={"x-fake-mode": "tool"})
    assert done.choices[0].message.content == "You said: hello there"


# --- legacy completions, embeddings, models --------------------------------------------------


async def test_legacy_completions_plain_and_streamed(fake, oai):
    done = await oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    assert done.choices[0].text == "You said: say hi" and done.usage.prompt_tokens > 0
    stream = await oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", stream=True,
                                          stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "You said: say hi"
    assert chunks[-1].usage is not None and chunks[-1].choices == []


async def test_embeddings_base64_default_matches_float(fake, oai):
    b64 = await oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert fake.last_request.json["encoding_format"] == "base64"  # the SDK's default
    floats = await oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                         encoding_format="float")
    assert [d.embedding for d in b64.data] == [d.embedding for d in floats.data]
    assert b64.data[0].embedding != b64.data[1].embedding and len(b64.data[0].embedding) == 8
    assert b64.usage.prompt_tokens > 0


async def test_models_list_and_retrieve(fake, oai):
    listed = [m.id async for m in oai.models.list()]
    assert "gpt-4o-mini" in listed
    assert (await oai.models.retrieve("gpt-4o")).id == "gpt-4o"
    with pytest.raises(openai.NotFoundError) as err:
        await oai.models.retrieve("nope")
    assert err.value.code == "model_not_found"


# --- Responses API ---------------------------------------------------------------------------


async def test_responses_plain(fake, oai):
    done = await oai.responses.create(model="gpt-4o-mini", input="hi there")
    assert done.output_text == "You said: hi there" and done.usage.total_tokens > 0
    items = await oai.responses.create(model="gpt-4o-mini", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "parts"}]}])
    assert items.output_text == "You said: parts"


async def test_responses_stream_event_sequence(fake, oai):
    stream = await oai.responses.create(model="gpt-4o-mini", input="abc def", stream=True)
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "You said: abc def"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "You said: abc def"


async def test_responses_stream_helper_and_function_call(fake, oai):
    async with oai.responses.stream(model="gpt-4o-mini", input="x") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "You said: x"
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    stream = await oai.responses.create(model="m", input="x", tools=tools, stream=True,
                                        extra_headers={"x-fake-mode": "tool", "x-fake-chunks": "3"})
    events = [e async for e in stream]
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) == 3 and orjson.loads("".join(deltas)) == {"text": "You said: x"}
    assert events[-1].response.output[0].type == "function_call"


# --- Azure OpenAI ----------------------------------------------------------------------------


async def test_azure_chat_embeddings_and_key(fake):
    az = openai.AsyncAzureOpenAI(azure_endpoint=fake.url, api_key="azure-key", api_version="2024-10-21",
                                 max_retries=0)
    done = await az.chat.completions.create(model="my-deploy", messages=MESSAGES)
    assert done.choices[0].message.content == "You said: hello there" and done.model == "my-deploy"
    seen = fake.last_request
    assert seen.path == "/openai/deployments/my-deploy/chat/completions"
    assert seen.query["api-version"] == "2024-10-21" and seen.headers["api-key"] == "azure-key"
    stream = await az.chat.completions.create(model="my-deploy", messages=MESSAGES, stream=True)
    chunks = [c async for c in stream]
    assert chunks[0].choices == []  # Azure's prompt_filter_results chunk comes first
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hello there"
    emb = await az.embeddings.create(model="my-embed", input="a")
    assert len(emb.data[0].embedding) == 8
    status, _, body = await raw_post(f"{fake.url}/openai/deployments/d/chat/completions?api-version=1",
                                     {"messages": MESSAGES})
    assert status == 401 and orjson.loads(body)["error"]["code"] == "401"


# --- Anthropic -------------------------------------------------------------------------------


async def test_anthropic_plain_and_headers(fake, claude):
    raw = await claude.messages.with_raw_response.create(
        model="claude-test", max_tokens=100, system="be brief",
        messages=[{"role": "user", "content": [{"type": "text", "text": "bonjour"}]}])
    msg = await raw.parse()
    assert msg.content[0].text == "You said: bonjour" and msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and raw.headers["request-id"].startswith("req_")
    seen = fake.last_request
    # anthropic SDK 2.x sends the key as a bearer token; older ones and curl use x-api-key
    assert "sk-ant-test" in (seen.headers.get("x-api-key"), seen.headers.get("authorization", "")[7:])
    assert "anthropic-version" in seen.headers


async def test_anthropic_stream_events(fake, claude):
    async with claude.messages.stream(model="claude-test", max_tokens=50,
                                      messages=[{"role": "user", "content": "stream me"}],
                                      extra_headers={"x-fake-chunks": "4"}) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert len(texts) == 4 and "".join(texts) == "You said: stream me"
    assert final.usage.output_tokens > 1 and final.stop_reason == "end_turn"
    raw = await claude.messages.create(model="c", max_tokens=5, stream=True,
                                       messages=[{"role": "user", "content": "x"}])
    kinds = [e.type async for e in raw]
    assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"] or \
        kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_anthropic_stream_bytes_include_ping(fake):
    status, _, body = await raw_post(fake.url + "/v1/messages", {
        "model": "c", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    names = [line[7:] for line in body.decode().splitlines() if line.startswith("event: ")]
    assert status == 200 and names[:3] == ["message_start", "content_block_start", "ping"]


async def test_anthropic_tool_use_input_json_delta(fake, claude):
    tools = [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    async with claude.messages.stream(model="c", max_tokens=50, tools=tools,
                                      messages=[{"role": "user", "content": "q"}],
                                      extra_headers={"x-fake-tool-call": "lookup",
                                                     "x-fake-tool-args": '{"a": [1, 2]}'}) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"a": [1, 2]}


async def test_anthropic_requires_key_and_version(fake):
    fake.state.api_keys = {"sk-ant-real"}
    bad = anthropic.AsyncAnthropic(base_url=fake.url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await bad.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    status, _, _ = await raw_post(fake.url + "/v1/messages", {"model": "c", "max_tokens": 5, "messages": []},
                                  headers={"authorization": "", "anthropic-version": "2023-06-01"})
    assert status == 401
    status, _, body = await raw_post(fake.url + "/v1/messages", {"model": "c", "max_tokens": 5, "messages": []},
                                     headers={"x-api-key": "sk-ant-real"})
    assert status == 400 and orjson.loads(body)["error"]["type"] == "invalid_request_error"


# --- modes -----------------------------------------------------------------------------------


async def test_error_modes_are_provider_shaped(fake, oai, claude):
    with pytest.raises(openai.RateLimitError) as err:
        await oai.chat.completions.create(model="m", messages=MESSAGES,
                                          extra_headers={"x-fake-mode": "error:429"})
    assert err.value.code == "rate_limit_exceeded" and err.value.response.headers["retry-after"] == "1"
    fake.state.modes = ["error:529"]
    with pytest.raises(anthropic.APIStatusError) as aerr:
        await claude.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert aerr.value.status_code == 529 and aerr.value.body["error"]["type"] == "overloaded_error"


async def test_auth_is_required_and_keys_checked(fake):
    status, _, body = await raw_post(fake.openai_url + "/chat/completions", {"messages": MESSAGES},
                                     headers={"authorization": ""})
    error = orjson.loads(body)["error"]
    assert status == 401 and error["type"] == "invalid_request_error" and error["code"] is None
    fake.state.api_keys = {"sk-real"}
    wrong = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await wrong.models.list()
    right = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-real", max_retries=0)
    assert [m async for m in right.models.list()]


async def test_gzip_body_is_really_compressed(fake, oai):
    status, headers, body = await raw_post(fake.openai_url + "/chat/completions", {"messages": MESSAGES},
                                           headers={"x-fake-mode": "gzip"}, auto_decompress=False)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(body))["object"] == "chat.completion"
    done = await oai.chat.completions.create(model="m", messages=MESSAGES,
                                             extra_headers={"x-fake-mode": "gzip"})
    assert done.choices[0].message.content == "You said: hello there"


async def test_no_usage_keepalive_stall_slow(fake, oai):
    done = await oai.chat.completions.create(model="m", messages=MESSAGES,
                                             extra_headers={"x-fake-mode": "no-usage,stall:20"})
    assert done.usage is None
    stream = await oai.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers={"x-fake-mode": "no-usage,keepalive,slow:5"})
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)
    _, _, body = await raw_post(fake.openai_url + "/chat/completions",
                                {"messages": MESSAGES, "stream": True}, headers={"x-fake-mode": "keepalive"})
    assert b"\n\n: keep-alive\n\ndata: " in body


async def test_disconnect_mode_cuts_the_stream(fake, oai):
    stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                               extra_headers={"x-fake-mode": "disconnect:2"})
    got = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 2
    assert fake.disconnects == 0  # the provider hung up, not the client
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.url + "/v1/messages", json={"max_tokens": 5, "stream": True,
                                                               "messages": [{"role": "user", "content": "x"}]},
                                headers={"x-api-key": "k", "anthropic-version": "v",
                                         "x-fake-mode": "disconnect:3"}) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()


async def test_client_going_away_is_recorded(fake):
    async with aiohttp.ClientSession() as session:
        r = await session.post(fake.openai_url + "/chat/completions",
                               json={"messages": MESSAGES, "stream": True},
                               headers={"authorization": "Bearer k", "x-fake-mode": "slow:20",
                                        "x-fake-chunks": "200"})
        assert (await r.content.readline()).startswith(b"data: ")
        r.close()  # drop the connection mid-stream
    await fake.wait_for_disconnect(timeout=10)
    assert fake.disconnects == 1 and fake.state.completed_streams == 0


async def test_unknown_path_is_openai_404(fake):
    status, _, body = await raw_post(fake.openai_url + "/nope", {})
    assert status == 404 and orjson.loads(body)["error"]["message"] == "Invalid URL (POST /v1/nope)"
    assert fake.last_request.path == "/v1/nope"


async def test_bad_fake_header_is_reported(fake):
    status, _, body = await raw_post(fake.openai_url + "/chat/completions", {"messages": MESSAGES},
                                     headers={"x-fake-mode": "warp:9"})
    assert status == 400 and b"fake provider" in body


async def test_knobs_apply_without_headers():
    async with run_fake_provider(FakeState(reply="fixed", chunks=2, usage=(7, 3))) as fake:
        client = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        assert [c.choices[0].delta.content for c in chunks[1:3]] == ["fi", "xed"]
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)


# --- the benchmark's floor in front of the fake ------------------------------------------------


async def test_bench_passthrough_is_faithful(fake):
    from aiohttp.test_utils import TestServer

    from bench.passthrough import make_app

    async with TestServer(make_app(fake.url), host="127.0.0.1") as floor:
        base = f"http://127.0.0.1:{floor.port}"
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-floor", max_retries=0)
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                                       extra_headers={"x-fake-chunks": "7"})
        assert len([c async for c in stream]) == 7 + 2
        assert fake.last_request.headers["authorization"] == "Bearer sk-floor"
        status, headers, body = await raw_post(base + "/v1/chat/completions", {"messages": MESSAGES},
                                               headers={"x-fake-mode": "gzip"}, auto_decompress=False)
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert orjson.loads(gzip.decompress(body))["choices"][0]["message"]["content"] == "You said: hello there"
