"""Request bodies of every supported endpoint -> one list of TextSlots.

Roles are told apart so detectors can weigh them: tool results and documents are the indirect
injection path; earlier assistant turns are scanned too. A body whose shape is not recognised
raises ``Unrecognized``: the policy decides whether that blocks or passes uninspected.
"""
from __future__ import annotations

from typing import Any

from ..textslots import TextSlot


class Unrecognized(ValueError):
    pass


_ROLE = {"system": "system", "developer": "developer", "user": "user", "assistant": "assistant",
         "tool": "tool", "function": "tool"}


def _content(slots: list[TextSlot], holder: dict, key: str, role: str, index: int, whole_kind: str) -> None:
    """Message content: a string, or a list of parts whose text parts become slots."""
    content = holder.get(key)
    if content is None:
        return
    if isinstance(content, str):
        slots.append(TextSlot(role, whole_kind, content, holder, key, index))
        return
    if not isinstance(content, list):
        raise Unrecognized(f"content of message {index} is neither text nor a list of parts")
    part_kind = "tool_result" if whole_kind == "tool_result" else "content_part"
    for part in content:
        if isinstance(part, str):  # some clients send bare strings in the list
            continue
        if not isinstance(part, dict):
            raise Unrecognized(f"content part of message {index} is not an object")
        ptype = part.get("type")
        if ptype in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            slots.append(TextSlot(role, part_kind, part["text"], part, "text", index))
        elif ptype == "refusal" and isinstance(part.get("refusal"), str):
            slots.append(TextSlot(role, part_kind, part["refusal"], part, "refusal", index))


def _chat(body: dict) -> list[TextSlot]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Unrecognized("'messages' must be a list")
    slots: list[TextSlot] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise Unrecognized(f"message {i} is not an object")
        role = _ROLE.get(msg.get("role"))
        if role is None:
            raise Unrecognized(f"message {i} has an unknown role")
        _content(slots, msg, "content", role, i, "tool_result" if role == "tool" else "message")
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                slots.append(TextSlot("assistant", "tool_call_arguments", fn["arguments"], fn, "arguments", i))
        fc = msg.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
            slots.append(TextSlot("assistant", "tool_call_arguments", fc["arguments"], fc, "arguments", i))
    return slots


def _strings(body: dict, key: str, role: str, kind: str, required: bool) -> list[TextSlot]:
    value = body.get(key)
    if isinstance(value, str):
        return [TextSlot(role, kind, value, body, key, 0)]
    if isinstance(value, list):
        slots = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                slots.append(TextSlot(role, kind, item, value, i, i))
            elif isinstance(item, (int, list)):
                # token ids: cannot be inspected as text
                raise Unrecognized(f"'{key}' holds token ids, which cannot be inspected")
            else:
                raise Unrecognized(f"'{key}[{i}]' is not text")
        return slots
    if required:
        raise Unrecognized(f"'{key}' is missing or not text")
    return []


def _responses(body: dict) -> list[TextSlot]:
    slots: list[TextSlot] = []
    if isinstance(body.get("instructions"), str):
        slots.append(TextSlot("system", "instructions", body["instructions"], body, "instructions", 0))
    inp = body.get("input")
    if isinstance(inp, str):
        slots.append(TextSlot("user", "input_item", inp, body, "input", 0))
        return slots
    if inp is None:
        return slots
    if not isinstance(inp, list):
        raise Unrecognized("'input' must be text or a list of items")
    for i, item in enumerate(inp):
        if not isinstance(item, dict):
            raise Unrecognized(f"input item {i} is not an object")
        itype = item.get("type", "message")
        if itype == "message" or "role" in item:
            role = _ROLE.get(item.get("role"), None)
            if role is None:
                raise Unrecognized(f"input item {i} has an unknown role")
            _content(slots, item, "content", role, i, "input_item")
        elif itype == "function_call_output":
            out = item.get("output")
            if isinstance(out, str):
                slots.append(TextSlot("tool", "tool_result", out, item, "output", i))
            elif isinstance(out, list):
                _content(slots, item, "output", "tool", i, "tool_result")
        elif itype == "function_call":
            if isinstance(item.get("arguments"), str):
                slots.append(TextSlot("assistant", "tool_call_arguments", item["arguments"], item, "arguments", i))
        # other item types (reasoning, file/image references, item_reference) carry no text we
        # can rewrite; they pass as they are
    return slots


def _json_leaves(slots: list[TextSlot], value: Any, role: str, kind: str, index: int) -> None:
    """Every string inside a JSON value (tool inputs) becomes its own rewritable slot."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                slots.append(TextSlot(role, kind, v, value, k, index))
            else:
                _json_leaves(slots, v, role, kind, index)
    elif isinstance(value, list):
        for k, v in enumerate(value):
            if isinstance(v, str):
                slots.append(TextSlot(role, kind, v, value, k, index))
            else:
                _json_leaves(slots, v, role, kind, index)


def _anthropic_blocks(slots: list[TextSlot], holder: dict, key: str, role: str, index: int) -> None:
    content = holder.get(key)
    if isinstance(content, str):
        slots.append(TextSlot(role, "tool_result" if role == "tool" else "message", content, holder, key, index))
        return
    if content is None:
        return
    if not isinstance(content, list):
        raise Unrecognized(f"content of message {index} is neither text nor a list of blocks")
    for block in content:
        if not isinstance(block, dict):
            raise Unrecognized(f"a content block of message {index} is not an object")
        btype = block.get("type")
        if btype == "text" and isinstance(block.get("text"), str):
            slots.append(TextSlot(role, "tool_result" if role == "tool" else "content_part",
                                  block["text"], block, "text", index))
        elif btype == "tool_result":
            _anthropic_blocks(slots, block, "content", "tool", index)
        elif btype == "tool_use":
            _json_leaves(slots, block.get("input"), "assistant", "tool_input", index)
        elif btype == "document":
            src = block.get("source")
            if isinstance(src, dict) and src.get("type") == "text" and isinstance(src.get("data"), str):
                slots.append(TextSlot("document", "content_part", src["data"], src, "data", index))
            elif isinstance(src, dict) and src.get("type") == "content":
                _anthropic_blocks(slots, src, "content", "document", index)


def _messages(body: dict) -> list[TextSlot]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Unrecognized("'messages' must be a list")
    slots: list[TextSlot] = []
    system = body.get("system")
    if isinstance(system, str):
        slots.append(TextSlot("system", "system", system, body, "system", 0))
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                slots.append(TextSlot("system", "system", block["text"], block, "text", 0))
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise Unrecognized(f"message {i} must be an object with role user or assistant")
        _anthropic_blocks(slots, msg, "content", msg["role"], i)
    return slots


def parse_request(kind: str, body: Any) -> list[TextSlot]:
    if not isinstance(body, dict):
        raise Unrecognized("the body must be a JSON object")
    if kind == "chat":
        return _chat(body)
    if kind == "completions":
        return _strings(body, "prompt", "prompt", "prompt", required=True)
    if kind == "embeddings":
        return _strings(body, "input", "user", "embedding_input", required=True)
    if kind == "responses":
        return _responses(body)
    if kind == "messages":
        return _messages(body)
    return []


def request_model(endpoint, body: Any) -> str | None:
    if endpoint.azure_deployment:
        return endpoint.azure_deployment
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return body["model"]
    return None
