"""parse_request reads the usual chat message inline (proxy/parsing/request.py _chat): on random
message lists it must give the slots and the errors the helpers give when read one call at a time."""
from __future__ import annotations

import random

from proxy.parsing.request import Refused, Unrecognized, _check_keys, _role, _Walk, parse_request
from proxy.textslots import TextSlot


def _plain_chat(body: dict) -> list[TextSlot]:
    """The chat loop as the helpers do it, one call per check (the oracle)."""
    _check_keys(body)
    w = _Walk()
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Unrecognized("'messages' must be a list")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise Unrecognized(f"message {i} is not an object")
        _check_keys(msg)
        role = _role(msg.get("role"), i)
        kind = "tool_result" if role == "tool" else "message"
        w.content(msg, "content", role, i, kind)
        calls = msg.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise Unrecognized(f"'tool_calls' of message {i} must be a list")
        for call in calls or ():
            if not isinstance(call, dict):
                raise Unrecognized(f"a tool call of message {i} is not an object")
            _check_keys(call)
            w.arguments(call.get("function"), i)
        if "function_call" in msg:
            w.arguments(msg["function_call"], i)
    return w.slots


ROLES = ("system", "developer", "user", "assistant", "tool", "function", "robot", "", None, 3, ["user"])
CONTENTS = ("hi", "", None, 7, [{"type": "text", "text": "part"}], ["bare"], [3], {"a": "b"})
CALLS = (None, [], [{"function": {"name": "f", "arguments": "{}"}}], ["x"], "calls",
         [{"function": {"arguments": {"q": "v"}}}], [{"Function": {}}])


def _message(rng: random.Random):
    if rng.random() < 0.05:
        return rng.choice(("text", 1, None, ["user"]))
    msg: dict = {}
    keys = ["role", "content", "tool_calls", "function_call", "name", "Content", "ROLE"]
    rng.shuffle(keys)
    for key in keys:
        if rng.random() < (0.9 if key in ("role", "content") else 0.15):
            if key in ("role", "ROLE"):
                msg[key] = rng.choice(ROLES)
            elif key in ("content", "Content"):
                msg[key] = rng.choice(CONTENTS)
            elif key == "tool_calls":
                msg[key] = rng.choice(CALLS)
            elif key == "function_call":
                msg[key] = rng.choice((None, {"arguments": "{}"}, "x", {"arguments": {"k": "v"}}))
            else:
                msg[key] = "n"
    return msg


def _outcome(parse, body):
    try:
        slots = parse(body)
    except (Unrecognized, Refused) as exc:
        return type(exc).__name__, str(exc)
    return [(s.role, s.kind, s.text, id(s.container), s.key, s.index) for s in slots]


def test_inline_chat_reading_matches_the_helpers_on_random_messages():
    rng = random.Random(14)
    for _ in range(20_000):
        body = {"model": "m", "messages": [_message(rng) for _ in range(rng.randint(0, 4))]}
        assert _outcome(lambda b: parse_request("chat", b), body) == _outcome(_plain_chat, body), body
