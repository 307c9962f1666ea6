"""Structured output in each dialect: the format a request asks for, the answers to judge, and
the request that asks the model to correct an answer.

OpenAI chat asks with ``response_format`` (``{type: json_schema, json_schema: {schema, strict}}``
or ``{type: json_object}``) and answers in ``choices[].message.content``; the Responses API asks
with ``text.format`` (``{type: json_schema, schema, strict}`` or ``{type: json_object}``) and
answers in ``output_text`` parts of ``message`` items; Anthropic asks with
``output_config.format`` (``{type: json_schema, schema}``; the beta's ``output_format`` too) and
answers in ``text`` content blocks. A refusal, a tool call or an empty answer beside them is not
an answer in the format, so it is not judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

from .response import cached_of, usage_of

REPAIR_PROMPT = ("Your previous answer is not valid: {problem}. Answer again with only the corrected "
                 "JSON, which must satisfy the requested format.")


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """What a request asked its answer to be: any JSON object, or JSON satisfying ``schema``."""

    kind: str                       # json_schema | json_object
    schema: Any = None              # the JSON Schema (json_schema only)


def _format(spec: Any, nested: bool) -> OutputFormat | None:
    if not isinstance(spec, dict):
        return None
    kind = spec.get("type")
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind == "json_schema":
        holder = spec.get("json_schema") if nested else spec
        schema = holder.get("schema") if isinstance(holder, dict) else None
        return OutputFormat("json_schema", schema if isinstance(schema, dict) else {})
    return None


def requested(kind: str, body: Any) -> OutputFormat | None:
    """The structured output a request asks for, or None (plain text, or a dialect without it)."""
    if not isinstance(body, dict):
        return None
    if kind == "chat":
        return _format(body.get("response_format"), nested=True)
    if kind == "responses":
        text = body.get("text")
        return _format(text.get("format"), nested=False) if isinstance(text, dict) else None
    if kind == "messages":
        config = body.get("output_config")
        spec = config.get("format") if isinstance(config, dict) else None
        return _format(spec if spec is not None else body.get("output_format"), nested=False)
    return None


def answers(kind: str, body: Any) -> list[tuple[Hashable, str]]:
    """(key, text) of every answer in the requested format a whole response holds: a chat
    choice's content (key: choice index), a Responses output_text part (key: (item, part)), an
    Anthropic text block (key: block index). Keys match the stream channels the guard judges."""
    if not isinstance(body, dict):
        return []
    out: list[tuple[Hashable, str]] = []
    if kind == "chat":
        for choice in body.get("choices") or ():
            msg = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(msg, dict) or msg.get("refusal") or msg.get("tool_calls") or msg.get("function_call"):
                continue
            if isinstance(msg.get("content"), str):
                out.append((choice.get("index", 0), msg["content"]))
    elif kind == "responses":
        for i, item in enumerate(body.get("output") or ()):
            if not isinstance(item, dict) or item.get("type") != "message":
                continue
            for j, part in enumerate(item.get("content") or ()):
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    out.append(((i, j), part["text"]))
    elif kind == "messages":
        blocks = body.get("content") or ()
        if body.get("stop_reason") != "refusal" and not any(
                isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks):
            for i, block in enumerate(blocks):
                if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                    out.append((i, block["text"]))
    return out


def repairable(kind: str, body: Any) -> bool:
    """True when ``repair_body`` can continue the request: one answer asked for, a conversation
    to add to."""
    if not isinstance(body, dict):
        return False
    if kind == "chat":
        return (body.get("n") or 1) == 1 and isinstance(body.get("messages"), list)
    if kind == "responses":
        return isinstance(body.get("input"), (str, list))
    return kind == "messages" and isinstance(body.get("messages"), list)


def repair_body(kind: str, body: dict, answer: str, problem: str) -> dict:
    """The request that shows the model its answer and what is wrong with it and asks again: the
    original conversation, the answer as the assistant's turn, the problem as the user's (only
    for a ``repairable`` body)."""
    note = REPAIR_PROMPT.format(problem=problem)
    if kind == "chat" or kind == "messages":
        return {**body, "messages": [*body["messages"], {"role": "assistant", "content": answer},
                                     {"role": "user", "content": note}]}
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given)
    return {**body, "input": [*items, {"role": "assistant", "content": answer},
                              {"role": "user", "content": note}]}


def add_usage(ex: Any, body: Any) -> None:
    """Add a further answer's reported usage to ``ex.usage``: the exchange paid for both."""
    prompt, completion = usage_of(body.get("usage") if isinstance(body, dict) else None)
    usage = ex.usage
    if prompt is not None:
        usage.prompt_tokens = (usage.prompt_tokens or 0) + prompt
    if completion is not None:
        usage.completion_tokens = (usage.completion_tokens or 0) + completion
    cached = cached_of(body.get("usage") if isinstance(body, dict) else None)
    if cached is not None:
        usage.cached_tokens = (usage.cached_tokens or 0) + cached
