"""Structured output end to end with the real SDKs (``chat.completions.parse`` and
``responses.parse`` with pydantic models, Anthropic ``output_config``): valid answers, broken
JSON, schema violations, flag and block, streamed and not, and repair that succeeds, fails, or
gets no answer, charged to the caller's limits and cost and recorded as a second attempt."""
from __future__ import annotations

import asyncio

import anthropic
import openai
import orjson
import pytest
from pydantic import BaseModel

from proxy.cli import main as cli_main
from tests.audit.test_audit_decisions import settled
from tests.audit.test_audit_record import VALIDATOR
from tests.e2e.helpers import MSG, ant, oa, policy

pytestmark = pytest.mark.timeout(60)


class Weather(BaseModel):
    city: str
    temp: int


GOOD = '{"city": "Paris", "temp": 21}'
WRONG_TYPE = '{"city": "Paris", "temp": "warm"}'
NOT_JSON = '{"city": "Paris", "temp": 2'
PRICES = {"gpt-4o-mini": {"input": 1000, "output": 10000}}   # $0.001 / $0.01 per token
ANT_FORMAT = {"format": {"type": "json_schema", "schema": {
    "type": "object", "required": ["city", "temp"], "additionalProperties": False,
    "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}}}}}


def structured_policy(**section) -> str:
    return policy(guards={"access": {}, "structured_output": section})


def reply(text: str, chunks: int = 1) -> dict:
    return {"x-fake-reply": text, "x-fake-chunks": str(chunks)}


async def test_valid_answers_pass_and_broken_ones_are_refused(fake, start_proxy):
    proxy = await start_proxy(structured_policy(action="block"))
    client = oa(proxy.openai_url)
    out = await client.chat.completions.parse(model="gpt-4o-mini", messages=MSG, response_format=Weather,
                                              extra_headers=reply(GOOD))
    assert out.choices[0].message.parsed == Weather(city="Paris", temp=21)
    assert fake.requests[-1].json["response_format"]["type"] == "json_schema"
    # a broken answer is refused as an answer: its content removed, finish_reason content_filter,
    # which the SDK's parse helper raises as such
    for text in (NOT_JSON, WRONG_TYPE):
        with pytest.raises(openai.ContentFilterFinishReasonError):
            await client.chat.completions.parse(model="gpt-4o-mini", messages=MSG, response_format=Weather,
                                                extra_headers=reply(text))
    out = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                               response_format={"type": "json_object"}, extra_headers=reply("[1, 2]"))
    assert out.choices[0].finish_reason == "content_filter" and out.choices[0].message.content is None
    # a plain request is not judged at all
    out = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=reply(NOT_JSON))
    assert out.choices[0].message.content == NOT_JSON
    # the Responses API (text.format) and Anthropic (output_config.format) alike
    parsed = await client.responses.parse(model="gpt-4o-mini", input="weather?", text_format=Weather,
                                          extra_headers=reply(GOOD))
    assert parsed.output_parsed == Weather(city="Paris", temp=21)
    refused = await client.responses.parse(model="gpt-4o-mini", input="weather?", text_format=Weather,
                                           extra_headers=reply(WRONG_TYPE))
    assert refused.status == "incomplete" and refused.incomplete_details.reason == "content_filter"
    assert refused.output == [] and refused.output_parsed is None
    msg = await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                               output_config=ANT_FORMAT, extra_headers=reply(GOOD))
    assert orjson.loads(msg.content[0].text) == {"city": "Paris", "temp": 21}
    msg = await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                               output_config=ANT_FORMAT, extra_headers=reply(NOT_JSON))
    assert msg.stop_reason == "refusal" and msg.content == []

    recs = await settled(proxy, 9)
    assert [r["decision"] for r in recs] == ["allowed", "blocked", "blocked", "blocked", "allowed", "allowed",
                                             "blocked", "allowed", "blocked"]
    assert [r["status"] for r in recs] == [200] * 9
    findings = [f for r in recs for f in r["findings"] if f["guard"] == "structured_output"]
    assert [(f["rules"], f["action"], f["detail"]) for f in findings[:2]] == [
        (["structured_output.invalid_json"], "blocked", {"path": "$"}),
        (["structured_output.schema_violation"], "blocked", {"path": "$.temp"})]
    for rec in recs:
        VALIDATOR.validate(rec)


async def test_streams_are_held_under_block_and_flow_under_flag(fake, start_proxy, capsys):
    proxy = await start_proxy(structured_policy(action="block"))
    client = oa(proxy.openai_url)
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": Weather.model_json_schema()}}
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=fmt,
                                                  stream=True, extra_headers=reply(GOOD, 6))
    pieces = [ch.delta.content async for c in stream for ch in c.choices if ch.delta.content]
    assert pieces == [GOOD]                                   # held, then released whole
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=fmt,
                                                  stream=True, extra_headers=reply(WRONG_TYPE, 6))
    chunks = [c async for c in stream]
    assert not any(ch.delta.content for c in chunks for ch in c.choices)
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    # the SDK's own stream helper parses the released answer
    async with client.beta.chat.completions.stream(model="gpt-4o-mini", messages=MSG, response_format=Weather,
                                                   extra_headers=reply(GOOD, 4)) as helper:
        final = await helper.get_final_completion()
    assert final.choices[0].message.parsed == Weather(city="Paris", temp=21)
    recs = await settled(proxy, 3)
    assert [r["decision"] for r in recs] == ["allowed", "blocked", "allowed"]
    assert [(f["rules"], f["action"], f["detail"]) for f in recs[1]["findings"]] == [
        (["structured_output.schema_violation"], "blocked", {"path": "$.temp"})]
    code = cli_main(["audit", "search", str(proxy.holder.policy.sections["audit"].path),
                     "--rule", "structured_output.schema_violation", "--json"])
    found = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0 and [r["id"] for r in found] == [recs[1]["id"]]

    flagged = await start_proxy(structured_policy(action="repair", repair={"fallback": "flag"}))
    stream = await oa(flagged.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, response_format=fmt, stream=True, extra_headers=reply(WRONG_TYPE, 6))
    pieces = [ch.delta.content async for c in stream for ch in c.choices if ch.delta.content]
    assert "".join(pieces) == WRONG_TYPE and len(pieces) == 6     # streamed as it came: no repair
    (rec,) = await settled(flagged, 1)
    assert rec["decision"] == "allowed" and len(rec["attempts"]) == 1
    assert [(f["rules"], f["action"], f["detail"]) for f in rec["findings"]] == [
        (["structured_output.schema_violation"], "observed", {"path": "$.temp"})]


async def test_repair_that_succeeds_is_a_second_attempt_charged_to_the_caller(fake, start_proxy):
    fake.state.usage = (10, 20)                                 # every answer: 30 tokens, $0.21
    fake.state.replies = [WRONG_TYPE, GOOD]
    # the repair request reserves ~37 tokens (prompt + max_tokens) of 62; both attempts settle to
    # 60, which leaves too few for the next request (~18): one attempt charged would leave 32
    proxy = await start_proxy(policy(
        cost={"prices": PRICES},
        guards={"access": {}, "structured_output": {"action": "repair"},
                "ratelimit": {"limits": [{"name": "daily", "scope": "key", "budget": "62/day"}]}}))
    client = oa(proxy.openai_url)
    out = await client.chat.completions.parse(model="gpt-4o-mini", messages=MSG, response_format=Weather,
                                              max_tokens=20)
    assert out.choices[0].message.parsed == Weather(city="Paris", temp=21)
    first, second = (r.json for r in fake.requests)
    assert second["messages"][:-2] == first["messages"] and second["response_format"] == first["response_format"]
    assert second["messages"][-2] == {"role": "assistant", "content": WRONG_TYPE}
    assert second["messages"][-1]["role"] == "user" and "$.temp: type" in second["messages"][-1]["content"]
    for _ in range(200):                                        # the exchange settles after its answer
        if not proxy.holder._tasks:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    assert len(fake.requests) == 2
    rec = (await settled(proxy, 2))[0]
    VALIDATOR.validate(rec)
    assert rec["decision"] == "allowed" and rec["tokens"]["prompt"] == 20 and rec["tokens"]["completion"] == 40
    assert rec["cost"] == pytest.approx(0.42)
    assert [(a["status"], a.get("repair", False)) for a in rec["attempts"]] == [(200, False), (200, True)]
    assert [(f["rules"], f["action"]) for f in rec["findings"]] == [
        (["structured_output.schema_violation"], "retried"), (["structured_output.repaired"], "observed")]


async def test_repair_that_fails_falls_back(fake, start_proxy):
    fake.state.replies = [NOT_JSON, WRONG_TYPE, NOT_JSON, NOT_JSON, NOT_JSON]
    proxy = await start_proxy(structured_policy(action="repair"))
    client = oa(proxy.openai_url)
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": Weather.model_json_schema()}}
    out = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, response_format=fmt)
    assert out.choices[0].finish_reason == "content_filter" and out.choices[0].message.content is None
    assert len(fake.requests) == 2                              # one repair by default, no more
    # the Responses API is asked again the same way
    refused = await client.responses.parse(model="gpt-4o-mini", input="weather?", text_format=Weather)
    assert refused.status == "incomplete"
    assert [i["role"] for i in fake.requests[-1].json["input"]] == ["user", "assistant", "user"]
    # the repair attempt gets no answer (an upstream error): the fallback decides at once
    fake.state.fail_next = ["", "error:500"]
    with pytest.raises(openai.ContentFilterFinishReasonError):
        await client.chat.completions.parse(model="gpt-4o-mini", messages=MSG, response_format=Weather)
    recs = await settled(proxy, 3)
    assert all(r["decision"] == "blocked" for r in recs)
    for rec in recs:
        VALIDATOR.validate(rec)
    assert [(f["rules"], f["action"]) for f in recs[0]["findings"]] == [
        (["structured_output.invalid_json"], "retried"),
        (["structured_output.schema_violation", "structured_output.repair_failed"], "blocked")]
    assert [(a["status"], a["error"], a.get("repair", False)) for a in recs[2]["attempts"]] == [
        (200, None, False), (500, "status", True)]
    assert [(f["rules"], f["action"]) for f in recs[2]["findings"]] == [
        (["structured_output.invalid_json"], "retried"), (["structured_output.repair_failed"], "blocked")]


async def test_flag_fallback_passes_the_answer_when_repair_fails(fake, start_proxy):
    fake.state.replies = [NOT_JSON, "[21]"]
    proxy = await start_proxy(structured_policy(action="repair", repair={"attempts": 1, "fallback": "flag"}))
    out = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, response_format={"type": "json_object"})
    assert out.choices[0].message.content == "[21]"             # the latest answer, flagged
    fake.state.fail_next = ["", "refuse"]
    out = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, response_format={"type": "json_object"}, extra_headers=reply(NOT_JSON))
    assert out.choices[0].message.content == NOT_JSON           # no second answer came: the first, flagged
    recs = await settled(proxy, 2)
    assert [r["decision"] for r in recs] == ["allowed", "allowed"]
    assert [(f["rules"], f["action"]) for f in recs[1]["findings"]] == [
        (["structured_output.invalid_json"], "retried"), (["structured_output.repair_failed"], "observed")]
    assert [(a["error"], a.get("repair", False)) for a in recs[1]["attempts"]] == [(None, False), ("broken", True)]
