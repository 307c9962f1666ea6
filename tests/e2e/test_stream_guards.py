"""Guards on streamed answers through the real proxy and the SDKs: hold-back windows are
flushed as ordinary deltas, and a verdict mid-stream ends the stream in the SDK's own terms."""
from __future__ import annotations

import pytest

import proxy.policy.schema as schema_mod
import proxy.policy.validate as validate_mod
from proxy.guards import GUARDS
from proxy.guards.base import GuardSpec
from tests.e2e.helpers import MSG, ant, oa, policy
from tests.parsing.test_stream_processor import Cut, Window

pytestmark = pytest.mark.timeout(60)
REPLY = {"x-fake-reply": "alpha beta gamma delta"}


@pytest.fixture
def test_guards(monkeypatch):
    specs = (GuardSpec("window", {"type": "object", "properties": {}}, lambda s, c: Window(), "test"),
             GuardSpec("cut", {"type": "object", "properties": {}}, lambda s, c: Cut(), "test"))
    monkeypatch.setattr(schema_mod, "GUARD_SPECS", schema_mod.GUARD_SPECS + specs)
    for spec in specs:
        monkeypatch.setitem(GUARDS, spec.name, spec)
    monkeypatch.setattr(validate_mod, "_VALIDATOR", None)
    yield
    validate_mod._VALIDATOR = None


async def test_held_back_text_reaches_every_sdk(fake, start_proxy, test_guards):
    proxy = await start_proxy(policy(guards={"access": {}, "window": {}}))
    client = oa(proxy.openai_url)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                  stream_options={"include_usage": True}, extra_headers=REPLY)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ALPHA BETA GAMMA DELTA"
    assert chunks[-1].usage.completion_tokens > 0
    events = [e async for e in await client.responses.create(model="gpt-4o-mini", input="x", stream=True,
                                                             extra_headers=REPLY)]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "ALPHA BETA GAMMA DELTA"
    assert events[-1].response.output_text == "ALPHA BETA GAMMA DELTA"
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSG,
                                              extra_headers=REPLY) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == final.content[0].text == "ALPHA BETA GAMMA DELTA"
    # the non-streamed path is untouched by chunk hooks
    plain = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=REPLY)
    assert plain.choices[0].message.content == "alpha beta gamma delta"


async def test_verdict_mid_stream_in_every_sdk(fake, start_proxy, test_guards):
    proxy = await start_proxy(policy(guards={"access": {}, "cut": {}}))
    client = oa(proxy.openai_url)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                  extra_headers=REPLY)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "alpha beta "
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    events = [e async for e in await client.responses.create(model="gpt-4o-mini", input="x", stream=True,
                                                             extra_headers=REPLY)]
    assert events[0].type == "response.created"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "alpha beta "
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "content_filter"
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSG,
                                              extra_headers=REPLY) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "alpha beta " and final.stop_reason == "refusal"
    # a cut stream's upstream request is cancelled, not read to the end
    fake.reset()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        extra_headers={"x-fake-reply": "alpha beta gamma" + " word" * 100, "x-fake-mode": "slow:30"})
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    await fake.wait_for_disconnect(timeout=15)
