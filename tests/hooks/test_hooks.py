"""The hook contract, the policy section and the held stream's slots, without sockets."""
from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from proxy.exchange import Exchange, Identity
from proxy.guards.base import StreamText
from proxy.hooks import contract
from proxy.hooks.config import compile_hooks
from proxy.hooks.streams import answer_slots
from proxy.textslots import TextSlot
from tests.parsing.test_stream_processor import REPLY, upstream_stream


def test_request_body_carries_slots_identity_and_context():
    ex = Exchange("req_9", "POST", "/v1/chat/completions", "", {}, None, SimpleNamespace(name="prod"))
    ex.endpoint, ex.model, ex.stream = SimpleNamespace(name="chat.completions"), "gpt-4o", True
    ex.scope = SimpleNamespace(name="support")
    ex.identity = Identity("fp_1", user="alice", groups=("eng",), key_name="team", virtual=True)
    body = contract.request_body(ex, "check", "request", [(2, TextSlot("user", "message", "hi", index=1))])
    assert body == {"version": 1, "hook": "check", "direction": "request", "requestId": "req_9",
                    "endpoint": "chat.completions", "model": "gpt-4o", "stream": True, "policy": "prod",
                    "scope": "support", "identity": {"key": "fp_1", "keyName": "team", "virtual": True,
                                                     "user": "alice", "groups": ["eng"]},
                    "slots": [{"id": 2, "role": "user", "kind": "message", "index": 1, "text": "hi"}]}
    orjson.dumps(body)


def test_answers_in_the_contract():
    assert contract.parse_answer({"action": "allow", "extra": 1}, {0}) == contract.Decision("allow")
    d = contract.parse_answer({"action": "block", "reason": "no", "rule": "pii.card"}, {0})
    assert (d.action, d.reason, d.rule) == ("block", "no", "pii.card")
    assert contract.parse_answer({"action": "block"}, {0}).reason == ""
    long = contract.parse_answer({"action": "block", "reason": "x" * 1000}, {0}).reason
    assert len(long) < 250 and long.startswith("x" * 200)
    d = contract.parse_answer({"action": "modify", "slots": [{"id": 3, "text": "new"}]}, {1, 3})
    assert d.texts == {3: "new"}


@pytest.mark.parametrize("answer", [
    None, [], {}, {"action": "ALLOW"}, {"action": "block", "reason": 3},
    {"action": "block", "rule": "has space"}, {"action": "block", "rule": "x" * 65},
    {"action": "modify"}, {"action": "modify", "slots": [{"id": 9, "text": "t"}]},
    {"action": "modify", "slots": [{"id": "0", "text": "t"}]}, {"action": "modify", "slots": [{"id": 0}]},
    {"action": "modify", "slots": [{"id": True, "text": "t"}]}, {"action": "modify", "slots": ["x"]},
])
def test_answers_outside_the_contract(answer):
    with pytest.raises(contract.HookAnswerError):
        contract.parse_answer(answer, {0, 1})


def test_policy_section_compiles():
    (hook,) = compile_hooks({"hooks": [{"name": "g", "url": "https://guard.internal:8443/v1/check?tenant=a",
                                        "when": ["answer"], "timeout": "250ms", "maxConcurrency": 4,
                                        "headers": {"Authorization": "Bearer t"}, "roles": ["user"]}]})
    assert (hook.base_url, hook.path) == ("https://guard.internal:8443", "/v1/check?tenant=a")
    assert hook.on == {"answer"} and hook.timeout == 0.25 and hook.max_connections == 4
    assert hook.wants("user") and not hook.wants("system") and hook.failure_mode is None
    (default,) = compile_hooks({"hooks": [{"name": "g", "url": "http://h"}]})
    assert default.on == {"request"} and default.path == "/" and default.wants("system")
    with pytest.raises(ValueError, match="unique"):
        compile_hooks({"hooks": [{"name": "g", "url": "http://a"}, {"name": "g", "url": "http://b"}]})


@pytest.mark.parametrize("kind", ["chat", "responses", "messages"])
async def test_a_held_stream_is_assembled_per_channel(fake, kind):
    data = await upstream_stream(fake, kind)
    ex = Exchange("req_1", "POST", "/", "", {}, None, None)
    ex.endpoint = SimpleNamespace(kind=kind)
    (only,) = answer_slots(ex, data)
    assert (only.slot.role, only.slot.kind, only.slot.text) == ("assistant", "output", REPLY)
    tools = answer_slots(ex, await upstream_stream(fake, kind, tools=True))
    call = next(s for s in tools if s.key.channel.startswith("tool"))
    assert orjson.loads(call.slot.text) == {"q": REPLY}
    assert call.slot.kind == ("tool_input" if kind == "messages" else "tool_call_arguments")
    assert isinstance(call.key, StreamText) and ex.tool_streams == {}    # the real exchange untouched
