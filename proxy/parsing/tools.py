"""Where tool names sit in each dialect: the tools a request offers, the calls an answer makes.

OpenAI chat offers ``tools[].function`` (and the legacy ``functions[]``) and answers with
``message.tool_calls[].function`` (legacy ``message.function_call``); the Responses API offers
``tools[]`` (function tools by ``name``, built-in tools by ``type``) and answers with
``output[]`` items of type ``function_call``; Anthropic offers ``tools[]`` by ``name`` and answers
with ``tool_use`` content blocks.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

# Response items / content blocks that are a model's call of a named tool.
CALL_ITEMS = frozenset({"function_call", "custom_tool_call", "mcp_call", "tool_use", "server_tool_use",
                        "mcp_tool_use"})


def tool_name(tool: Any) -> str | None:
    """The name a request's tool entry is known by (a built-in tool by its type)."""
    if not isinstance(tool, dict):
        return None
    fn = tool.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return fn["name"]
    name = tool.get("name", tool.get("type"))
    return name if isinstance(name, str) else None


def entries(body: Any) -> Iterator[dict]:
    """The tool entries a request body offers (``tools`` and the legacy ``functions``)."""
    if not isinstance(body, dict):
        return
    for field in ("tools", "functions"):
        listed = body.get(field)
        for tool in listed if isinstance(listed, list) else ():
            if isinstance(tool, dict):
                yield tool


def offered(body: Any) -> list[str]:
    """Names of the tools a request body offers, in order."""
    return [name for name in map(tool_name, entries(body)) if name is not None]


def _choice_names(choice: Any) -> Iterator[str]:
    """Tool names a tool_choice / function_call setting forces (any dialect)."""
    if isinstance(choice, dict):
        name = tool_name(choice)
        if name is not None and name not in ("function", "tool", "auto", "any", "none", "allowed_tools"):
            yield name


def strip(body: dict, forbidden: Callable[[str], bool]) -> list[str]:
    """Remove offered tools whose name is forbidden; returns the names removed. A tool choice that
    forced a removed tool goes too, and so does a list left empty (providers reject ``tools: []``)."""
    removed: list[str] = []
    for field, choice in (("tools", "tool_choice"), ("functions", "function_call")):
        tools = body.get(field)
        if not isinstance(tools, list):
            continue
        kept = []
        for tool in tools:
            name = tool_name(tool)
            if name is not None and forbidden(name):
                removed.append(name)
            else:
                kept.append(tool)
        if len(kept) == len(tools):
            continue
        if kept:
            body[field] = kept
        else:
            del body[field]
        if not kept or any(n in removed for n in _choice_names(body.get(choice))):
            body.pop(choice, None)
    return removed


def calls(kind: str, body: Any) -> list[tuple[str, Any]]:
    """(tool name, arguments) of every call a non-streamed answer makes. Arguments are the JSON
    string OpenAI sends, or the object Anthropic sends."""
    if not isinstance(body, dict):
        return []
    out: list[tuple[str, Any]] = []
    if kind == "chat":
        for choice in body.get("choices") or ():
            msg = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(msg, dict):
                continue
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    out.append((str(fn.get("name")), fn.get("arguments")))
            fc = msg.get("function_call")
            if isinstance(fc, dict):
                out.append((str(fc.get("name")), fc.get("arguments")))
    elif kind in ("responses", "messages"):
        for item in body.get("output" if kind == "responses" else "content") or ():
            if isinstance(item, dict) and item.get("type") in CALL_ITEMS:
                out.append((str(item.get("name")), item.get("arguments", item.get("input"))))
    return out


# Dialects whose answers make tool calls, and so can be refused as an answer.
_REFUSABLE = frozenset({"chat", "responses", "messages"})


def refuse(kind: str, body: Any) -> bool:
    """Turn a whole answer into a refusal in its own dialect, in place: content and calls
    removed, ``finish_reason: content_filter`` (Responses: ``status: incomplete`` with reason
    ``content_filter``; Anthropic: ``stop_reason: refusal``). False when ``kind`` has no tool
    calls or the body is not an answer of that dialect."""
    if kind not in _REFUSABLE or not isinstance(body, dict):
        return False
    if kind == "chat":
        choices = body.get("choices")
        if not isinstance(choices, list):
            return False
        for choice in choices:
            if isinstance(choice, dict):
                msg = choice.get("message") if isinstance(choice.get("message"), dict) else {}
                msg.pop("tool_calls", None)
                msg.pop("function_call", None)
                msg["content"] = None
                choice["message"] = msg
                choice["finish_reason"] = "content_filter"
        return True
    if kind == "responses":
        body.update(status="incomplete", output=[], incomplete_details={"reason": "content_filter"})
        return True
    body.update(content=[], stop_reason="refusal", stop_sequence=None)
    return True
