"""Build exchanges and pii guards without a proxy."""
from __future__ import annotations

from proxy.exchange import Exchange
from proxy.guards.base import CompileContext
from proxy.guards.pii import SPEC
from proxy.services import Services
from proxy.textslots import TextSlot


def make_guard(section=None, policy_dir=".", services=None):
    services = services or Services()
    guard = SPEC.compile(section or {}, CompileContext(policy_dir, services))
    return guard, services


def chat_exchange(*messages: tuple[str, str]) -> Exchange:
    body = {"model": "gpt-4o", "messages": [{"role": r, "content": c} for r, c in messages]}
    ex = Exchange("req-1", "POST", "/v1/chat/completions", "", {}, None, None, body=body)
    ex.request_slots = [TextSlot(m["role"], "message", m["content"], m, "content", i)
                        for i, m in enumerate(body["messages"])]
    return ex


def set_answer(ex: Exchange, text: str, tool_args: str | None = None) -> dict:
    message = {"role": "assistant", "content": text}
    ex.response_body = {"choices": [{"index": 0, "message": message}]}
    ex.response_slots = [TextSlot("assistant", "output", text, message, "content")]
    if tool_args is not None:
        call = {"type": "function", "function": {"name": "send", "arguments": tool_args}}
        message["tool_calls"] = [call]
        ex.response_slots.append(TextSlot("assistant", "tool_call_arguments", tool_args,
                                          call["function"], "arguments"))
    return message
