"""The custom guard hook end to end with the real SDKs, a fake provider and a fake operator hook
(tests/fakes/hook.py): the contract it receives, allow, block, modify (requests, whole answers,
streams held whole), timeouts and failures under both failure modes, the concurrency cap,
metrics and the audit trail."""
from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import openai
import orjson
import pytest

from proxy.cli import main as cli_main
from tests.audit.test_audit_decisions import settled
from tests.e2e.helpers import MSG, ant, oa, policy
from tests.fakes.hook import run_fake_hook

pytestmark = pytest.mark.timeout(90)

SECRET = "hk-secret-7c1e9a"


@pytest.fixture
async def hook():
    async with run_fake_hook() as server:
        yield server


def hook_policy(url: str, **settings) -> str:
    entry = {"name": "check", "url": url, "when": ["request", "answer"], "timeout": "10s",
             "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}, **settings}
    return policy(guards={"access": {}, "hook": {"hooks": [entry]}})


async def start(start_proxy, hook, **settings):
    return await start_proxy(hook_policy(hook.url, **settings), env={"HOOK_TOKEN": SECRET})


def texts(body: dict) -> list[str]:
    return [s["text"] for s in body["slots"]]


async def test_the_hook_gets_the_contract_and_its_allow_lets_everything_through(fake, start_proxy, hook):
    proxy = await start(start_proxy, hook)
    out = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert out.choices[0].message.content == "You said: hello there"
    (req, req_headers), (ans, _) = hook.calls
    assert req_headers["Authorization"] == f"Bearer {SECRET}"
    assert {k: req[k] for k in ("version", "hook", "direction", "endpoint", "model", "stream", "scope")} == {
        "version": 1, "hook": "check", "direction": "request", "endpoint": "chat.completions",
        "model": "gpt-4o-mini", "stream": False, "scope": "default"}
    assert req["requestId"].startswith("req_") and req["identity"]["key"]
    assert req["slots"] == [{"id": 0, "role": "user", "kind": "message", "index": 0, "text": "hello there"}]
    assert ans["direction"] == "answer" and ans["slots"] == [
        {"id": 0, "role": "assistant", "kind": "output", "index": 0, "text": "You said: hello there"}]
    recs = await settled(proxy, 1)
    assert recs[0]["decision"] == "allowed"
    assert [(f["guard"], f["action"], f["direction"], f["detail"]) for f in recs[0]["findings"]] == [
        ("hook", "allowed", "request", {"hook": "check"}), ("hook", "allowed", "response", {"hook": "check"})]
    assert SECRET not in orjson.dumps(recs).decode()


def block_account_numbers(body: dict):
    if any("acct" in t for t in texts(body)):
        return {"action": "block", "reason": "account numbers may not leave", "rule": "acct"}
    return {"action": "allow"}


async def test_a_block_refuses_the_request_or_the_answer_streamed_or_not(fake, start_proxy, hook, capsys):
    hook.answer = block_account_numbers
    proxy = await start(start_proxy, hook)
    client = oa(proxy.openai_url)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "acct 42"}])
    assert info.value.code == "content_filter"
    assert "account numbers may not leave" in info.value.message and "hook.check.acct" in info.value.message
    assert fake.requests == []                      # never forwarded
    reply = {"x-fake-reply": "your acct is 1234 5678", "x-fake-chunks": "6"}
    with pytest.raises(openai.BadRequestError):     # a whole answer
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=reply)
    # a streamed answer is held whole for an answer hook: the refusal comes before the first byte
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=reply)
    with pytest.raises(anthropic.BadRequestError) as ainfo:
        async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                                  extra_headers=reply) as astream:
            [e async for e in astream]
    assert "account numbers may not leave" in str(ainfo.value)
    assert [b["stream"] for b in hook.bodies if b["direction"] == "answer"] == [False, True, True]
    assert texts(hook.bodies[-1]) == ["your acct is 1234 5678"]    # the held stream, assembled
    recs = await settled(proxy, 4)
    assert [r["decision"] for r in recs] == ["blocked"] * 4 and [r["status"] for r in recs] == [400] * 4
    blocked = [f for r in recs for f in r["findings"] if f["action"] == "blocked"]
    assert [f["direction"] for f in blocked] == ["request", "response", "response", "response"]
    assert all(f["rules"] == ["hook.check.acct"] and f["detail"] == {
        "hook": "check", "reason": "account numbers may not leave"} for f in blocked)
    capsys.readouterr()
    assert cli_main(["audit", "search", str(proxy.holder.policy.sections["audit"].path),
                     "--rule", "hook.check.acct"]) == 0
    out = capsys.readouterr().out
    assert "4 record(s)" in out and "hook=check reason=account numbers may not leave" in out


def rewrite(body: dict):
    swap = ("secret-project", "[project]") if body["direction"] == "request" else ("Zeus", "Z***")
    changed = [{"id": s["id"], "text": s["text"].replace(*swap)} for s in body["slots"] if swap[0] in s["text"]]
    return {"action": "modify", "slots": changed} if changed else {"action": "allow"}


async def test_modify_rewrites_the_request_and_the_answer_streamed_or_not(fake, start_proxy, hook):
    hook.answer = rewrite
    proxy = await start(start_proxy, hook)
    client = oa(proxy.openai_url)
    out = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me about secret-project"}],
        extra_headers={"x-fake-reply": "Zeus says hi"})
    assert fake.requests[-1].json["messages"][0]["content"] == "tell me about [project]"
    assert out.choices[0].message.content == "Z*** says hi"
    reply = {"x-fake-reply": "Zeus says hi to Zeus and friends", "x-fake-chunks": "9"}
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=reply)
    chunks = [c async for c in stream]
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "Z*** says hi to Z*** and friends"
    assert chunks[-1].choices[0].finish_reason == "stop"
    async with client.responses.stream(model="gpt-4o-mini", input="hi", extra_headers=reply) as rstream:
        deltas = [e.delta async for e in rstream if e.type == "response.output_text.delta"]
        final = await rstream.get_final_response()
    assert "".join(deltas) == final.output_text == "Z*** says hi to Z*** and friends"
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                              extra_headers=reply) as astream:
        msg = await astream.get_final_message()
    assert msg.content[0].text == "Z*** says hi to Z*** and friends"
    # an answer the hook lets through streams unchanged, held or not
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                  extra_headers={"x-fake-reply": "all fine here", "x-fake-chunks": "4"})
    assert "".join([ch.delta.content or "" async for c in stream for ch in c.choices]) == "all fine here"
    recs = await settled(proxy, 5)
    modified = [(f["direction"], f["counts"]) for r in recs for f in r["findings"] if f["action"] == "modified"]
    assert modified == [("request", {"slots": 1}), ("response", {"slots": 1})] + [("response", {"slots": 1})] * 3
    assert all(r["decision"] == "allowed" for r in recs)


@pytest.mark.parametrize("failure, why", [
    ("timeout", "timeout"), (500, "HTTP 500"), (b"<html>oops</html>", "answer is not JSON"),
    ({"action": "maybe"}, "answer outside the contract"),
    ({"action": "modify", "slots": [{"id": 7, "text": "x"}]}, "answer outside the contract"),
])
async def test_a_failed_hook_fails_closed_by_default(fake, start_proxy, hook, failure, why):
    if failure == "timeout":
        hook.delay = 5
    else:
        hook.answer = lambda body: failure
    proxy = await start(start_proxy, hook, timeout="300ms")
    with pytest.raises(openai.InternalServerError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 503 and info.value.code == "guardrail_unavailable"
    assert why in info.value.message and "check" in info.value.message
    assert fake.requests == []
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/metrics") as r:
        metrics = await r.text()
    assert 'aifw_hook_calls_total{direction="request",hook="check",outcome="failed"} 1' in metrics
    recs = await settled(proxy, 1)
    assert recs[0]["decision"] == "blocked" and recs[0]["status"] == 503
    (finding,) = recs[0]["findings"]
    assert finding["action"] == "fault" and finding["rules"] == ["hook.check.unavailable"]
    assert why in finding["detail"]["reason"] and recs[0]["uninspected"]


async def test_fail_open_passes_and_says_so(fake, start_proxy, hook):
    hook.answer = lambda body: 502
    proxy = await start(start_proxy, hook, failureMode="open")
    stream = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert "".join([ch.delta.content or "" async for c in stream for ch in c.choices]) == "You said: hello there"
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/metrics") as r:
        metrics = await r.text()
    assert 'aifw_hook_calls_total{direction="answer",hook="check",outcome="failed"} 1' in metrics
    assert "aifw_bypasses_total" in metrics and 'aifw_guard_faults_total{guard="hook"}' in metrics
    recs = await settled(proxy, 1)
    assert recs[0]["decision"] == "bypassed" and recs[0]["status"] == 200
    assert [(f["action"], f["direction"], f["detail"]["reason"]) for f in recs[0]["findings"]] == [
        ("fault", "request", "HTTP 502"), ("fault", "response", "HTTP 502")]
    assert recs[0]["uninspected"] == ["hook check (request): HTTP 502", "hook check (answer): HTTP 502"]


async def test_the_concurrency_cap_queues_calls(fake, start_proxy, hook):
    hook.delay = 0.05
    proxy = await start(start_proxy, hook, maxConcurrency=1, when=["request"])
    client = oa(proxy.openai_url)
    outs = await asyncio.gather(*(client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
                                  for _ in range(4)))
    assert all(o.choices[0].message.content == "You said: hello there" for o in outs)
    assert len(hook.calls) == 4 and hook.peak == 1


async def test_monitor_mode_changes_nothing_and_records_what_would_happen(fake, start_proxy, hook):
    hook.answer = lambda body: ({"action": "modify", "slots": [{"id": 0, "text": "changed"}]}
                                if body["direction"] == "request" else block_account_numbers(body))
    proxy = await start_proxy(policy(guards={"access": {}, "hook": {"mode": "monitor", "hooks": [
        {"name": "check", "url": hook.url, "when": ["request", "answer"], "timeout": "10s"}]}}))
    out = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=MSG, extra_headers={"x-fake-reply": "acct 7"})
    assert fake.requests[-1].json["messages"][0]["content"] == "hello there"
    assert out.choices[0].message.content == "acct 7"
    recs = await settled(proxy, 1)
    assert recs[0]["decision"] == "monitored"
    assert [(f["action"], f["rules"]) for f in recs[0]["findings"]] == [
        ("would_modify", ["hook.check"]), ("would_block", ["hook.check.acct"])]


@pytest.mark.parametrize("oversized", ["block", "pass"])
async def test_a_stream_too_large_to_hold(fake, start_proxy, hook, oversized):
    # as a whole answer: refused (502, default) or sent on uninspected, here live
    hook.answer = block_account_numbers
    doc = policy(server={"maxInspectedResponseBytes": 600, "oversizedResponse": oversized},
                 guards={"access": {}, "hook": {"hooks": [
                     {"name": "check", "url": hook.url, "when": ["answer"], "timeout": "10s"}]}})
    proxy = await start_proxy(doc)
    reply = " ".join(["acct"] * 40)
    ask = dict(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers={"x-fake-reply": reply, "x-fake-chunks": "20"})
    if oversized == "block":
        with pytest.raises(openai.InternalServerError) as info:
            await oa(proxy.openai_url).chat.completions.create(**ask)
        assert info.value.status_code == 502 and "answer hooks" in info.value.message
    else:
        stream = await oa(proxy.openai_url).chat.completions.create(**ask)
        assert "".join([ch.delta.content or "" async for c in stream for ch in c.choices]) == reply
    assert hook.calls == []
    recs = await settled(proxy, 1)
    assert recs[0]["decision"] == ("error" if oversized == "block" else "bypassed")
    if oversized == "pass":
        assert any("not held for the answer hooks" in u for u in recs[0]["uninspected"])


async def test_an_answer_hook_sees_and_rewrites_streamed_tool_call_arguments(fake, start_proxy, hook):
    def redirect(body):
        calls = [s for s in body["slots"] if s["kind"] in ("tool_call_arguments", "tool_input")]
        if body["direction"] == "request" or not calls:
            return {"action": "allow"}
        return {"action": "modify", "slots": [{"id": s["id"], "text": s["text"].replace("evil.example", "acme.com")}
                                              for s in calls]}
    hook.answer = redirect
    proxy = await start(start_proxy, hook)
    args = '{"url": "https://evil.example/x"}'
    call = {"x-fake-tool-call": "fetch_url", "x-fake-tool-args": args, "x-fake-chunks": "6"}
    tool = {"type": "function", "function": {"name": "fetch_url", "parameters": {"type": "object"}}}
    stream = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=[tool],
                                                                stream=True, extra_headers=call)
    sent = "".join([tc.function.arguments or "" async for c in stream for ch in c.choices
                    for tc in ch.delta.tool_calls or () if tc.function])
    assert sent == '{"url": "https://acme.com/x"}'
    async with ant(proxy.url).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG,
                                              tools=[{"name": "fetch_url", "input_schema": {"type": "object"}}],
                                              extra_headers=call) as astream:
        msg = await astream.get_final_message()
    assert msg.content[-1].input == {"url": "https://acme.com/x"}
    kinds = [s["kind"] for b in hook.bodies if b["direction"] == "answer" for s in b["slots"]]
    assert kinds == ["tool_call_arguments", "tool_input"]
