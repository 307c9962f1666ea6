"""The tools guard end to end with the real SDKs: offered tools blocked or stripped, a model's
calls of forbidden tools cut (whole and streamed answers, every dialect), and the audit trail."""
from __future__ import annotations

import json

import anthropic
import openai
import orjson
import pytest
import yaml

from proxy.cli import main as cli_main
from tests.audit.test_audit_decisions import settled
from tests.e2e.helpers import MSG, ant, oa, policy

pytestmark = pytest.mark.timeout(60)

ARGS = '{"to": "boss@example.com", "subject": "quarterly numbers", "body": "see attached"}'


def chat_tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


def resp_tool(name: str) -> dict:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}


def ant_tool(name: str) -> dict:
    return {"name": name, "input_schema": {"type": "object", "properties": {}}}


def tools_policy(**section) -> str:
    return policy(guards={"access": {}, "tools": section})


def calls(name: str, chunks: int = 5) -> dict:
    """Headers that make the fake answer with a call of ``name``, arguments split in deltas."""
    return {"x-fake-tool-call": name, "x-fake-tool-args": ARGS, "x-fake-chunks": str(chunks)}


async def test_request_offering_a_denied_tool_is_refused_in_every_dialect(fake, start_proxy):
    proxy = await start_proxy(tools_policy(deny=["send_*"]))
    client = oa(proxy.openai_url)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                             tools=[chat_tool("get_weather"), chat_tool("send_email")])
    assert info.value.code == "content_filter" and "send_email" in info.value.message
    with pytest.raises(openai.BadRequestError):   # the legacy functions list too
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                             functions=[{"name": "send_sms", "parameters": {"type": "object"}}])
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model="gpt-4o-mini", input="hi", tools=[resp_tool("send_email")])
    with pytest.raises(anthropic.BadRequestError) as ainfo:
        await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                             tools=[ant_tool("send_email")])
    assert "send_email" in str(ainfo.value)
    assert fake.requests == []
    # allowed tools pass, and the model's call of one reaches the client
    out = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=[chat_tool("get_weather")],
                                               extra_headers={"x-fake-mode": "tool"})
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"


async def test_allow_list_and_strip(fake, start_proxy):
    proxy = await start_proxy(tools_policy(allow=["get_*", "search"], onRequest="strip"))
    out = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, tools=[chat_tool("send_email"), chat_tool("get_weather")],
        tool_choice={"type": "function", "function": {"name": "send_email"}},
        extra_headers={"x-fake-tool-call": "send_email"})
    sent = fake.requests[-1].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert "tool_choice" not in sent          # it forced the tool that was removed
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"
    # every tool stripped: the request goes without tools at all (providers reject tools: [])
    msg = await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                               tools=[ant_tool("run_shell")], tool_choice={"type": "any"})
    assert "tools" not in fake.requests[-1].json and "tool_choice" not in fake.requests[-1].json
    assert msg.content[0].type == "text"


async def test_a_call_of_a_forbidden_tool_never_reaches_the_client(fake, start_proxy):
    # offers are only recorded, calls are enforced: the model was offered the tool (e.g. by an
    # application that trusts it) yet the policy forbids its use
    proxy = await start_proxy(tools_policy(deny=["send_email"], onRequest="monitor"))
    client = oa(proxy.openai_url)
    tools = [chat_tool("send_email")]
    # a whole answer ends as a refused stream does: finish_reason content_filter, no call in it
    out = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=tools,
                                               extra_headers=calls("send_email"))
    assert out.choices[0].finish_reason == "content_filter"
    assert out.choices[0].message.tool_calls is None and out.choices[0].message.content is None
    resp = await client.responses.create(model="gpt-4o-mini", input="hi", tools=[resp_tool("send_email")],
                                         extra_headers=calls("send_email"))
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "content_filter"
    assert resp.output == []

    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=tools, stream=True,
                                                  extra_headers=calls("send_email"))
    chunks = [c async for c in stream]
    assert not any(ch.delta.tool_calls for c in chunks for ch in c.choices)
    assert chunks[-1].choices[0].finish_reason == "content_filter"

    events = [e async for e in await client.responses.create(
        model="gpt-4o-mini", input="hi", tools=[resp_tool("send_email")], stream=True,
        extra_headers=calls("send_email"))]
    assert not any("function_call" in e.type or getattr(getattr(e, "item", None), "type", "") == "function_call"
                   for e in events)
    assert events[-1].type == "response.incomplete"

    msg = await ant(proxy.url).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                               tools=[ant_tool("send_email")], extra_headers=calls("send_email"))
    assert msg.stop_reason == "refusal" and msg.content == []
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                              tools=[ant_tool("send_email")],
                                              extra_headers=calls("send_email")) as astream:
        aevents = [e async for e in astream]
    assert not any(e.type == "content_block_start" and e.content_block.type == "tool_use" for e in aevents)
    assert not any(e.type == "content_block_delta" for e in aevents)
    assert (await astream.get_final_message()).stop_reason == "refusal"

    recs = await settled(proxy, 6)
    assert all(r["decision"] == "blocked" for r in recs)
    assert [r["status"] for r in recs] == [200] * 6     # answers that say they were refused
    assert all(r["verdict"]["rules"] == ["tools.call.denied"] for r in recs)
    denied = [f for r in recs for f in r["findings"] if f["rules"] == ["tools.call.denied"] and f["action"] == "blocked"]
    assert len(denied) == 6 and all(f["counts"] == {"send_email": 1} for f in denied)
    assert all(f["detail"] == {"tool": "send_email"} for f in denied)


async def test_allowed_streamed_calls_arrive_whole(fake, start_proxy):
    proxy = await start_proxy(tools_policy(allow=["send_email"]))
    client = oa(proxy.openai_url)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=[chat_tool("send_email")],
                                                  stream=True, extra_headers=calls("send_email", 7))
    chunks = [c async for c in stream]
    pieces = [tc.function.arguments for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or ()
              if tc.function and tc.function.arguments]
    assert "".join(pieces) == ARGS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    async with client.responses.stream(model="gpt-4o-mini", input="hi", tools=[resp_tool("send_email")],
                                       extra_headers=calls("send_email", 7)) as rstream:
        [e async for e in rstream]
        final = await rstream.get_final_response()
    assert final.output[0].type == "function_call" and final.output[0].arguments == ARGS

    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                              tools=[ant_tool("send_email")],
                                              extra_headers=calls("send_email", 7)) as astream:
        msg = await astream.get_final_message()
    assert msg.content[0].type == "tool_use" and msg.content[0].input == json.loads(ARGS)


async def test_scope_denies_what_the_base_allows_and_monitor_only_records(fake, start_proxy, capsys):
    doc = yaml.safe_load(tools_policy(deny=["drop_*"], onRequest="monitor", onCall="monitor"))
    doc["scopes"] = [{"name": "big-model", "match": {"models": ["gpt-4o"]},
                      "guards": {"tools": {"deny": ["send_*"], "onRequest": "block"}}}]
    proxy = await start_proxy(yaml.safe_dump(doc))
    client = oa(proxy.openai_url)
    tools = [chat_tool("send_email")]
    out = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=tools,
                                               extra_headers=calls("send_email"))
    assert out.choices[0].message.tool_calls[0].function.name == "send_email"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="gpt-4o", messages=MSG, tools=tools)
    # a monitored offer and call of a denied tool go through; the record says what was seen
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                  tools=[chat_tool("drop_table")], extra_headers=calls("drop_table"))
    pieces = [tc.function.arguments async for c in stream for ch in c.choices for tc in ch.delta.tool_calls or ()
              if tc.function and tc.function.arguments]
    assert "".join(pieces) == ARGS
    recs = await settled(proxy, 3)
    assert [r["decision"] for r in recs] == ["allowed", "blocked", "monitored"]
    seen = {(tuple(f["rules"]), f["action"]) for f in recs[2]["findings"]}
    assert seen == {(("tools.request.denied",), "would_block"), (("tools.call.denied",), "would_block")}
    code = cli_main(["audit", "search", str(proxy.holder.policy.sections["audit"].path),
                     "--rule", "tools.request.denied", "--json"])
    found = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert code == 0 and [r["model"] for r in found] == ["gpt-4o", "gpt-4o-mini"]
