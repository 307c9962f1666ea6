"""Non-streamed response bodies -> TextSlots (the answer text), and the usage they report."""
from __future__ import annotations

from typing import Any

from ..textslots import TextSlot
from .request import _json_leaves


def parse_response(kind: str, body: Any) -> list[TextSlot]:
    if not isinstance(body, dict):
        return []
    slots: list[TextSlot] = []
    if kind == "chat":
        for choice in body.get("choices") or ():
            msg = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(msg, dict):
                continue
            i = choice.get("index", 0)
            for key in ("content", "refusal"):
                if isinstance(msg.get(key), str):
                    slots.append(TextSlot("assistant", "output", msg[key], msg, key, i))
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    slots.append(TextSlot("assistant", "tool_call_arguments", fn["arguments"], fn, "arguments", i))
    elif kind == "completions":
        for choice in body.get("choices") or ():
            if isinstance(choice, dict) and isinstance(choice.get("text"), str):
                slots.append(TextSlot("assistant", "output", choice["text"], choice, "text", choice.get("index", 0)))
    elif kind == "responses":
        for i, item in enumerate(body.get("output") or ()):
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                for part in item.get("content") or ():
                    if isinstance(part, dict):
                        for key in ("text", "refusal"):
                            if isinstance(part.get(key), str):
                                slots.append(TextSlot("assistant", "output", part[key], part, key, i))
            elif item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
                slots.append(TextSlot("assistant", "tool_call_arguments", item["arguments"], item, "arguments", i))
    elif kind == "messages":
        for i, block in enumerate(body.get("content") or ()):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                slots.append(TextSlot("assistant", "output", block["text"], block, "text", i))
            elif block.get("type") == "tool_use":
                _json_leaves(slots, block.get("input"), "assistant", "tool_input", i)
    return slots


def usage_of(usage: Any) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens from an OpenAI, Responses or Anthropic usage object."""
    if not isinstance(usage, dict):
        return None, None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if isinstance(prompt, int) and "cache_read_input_tokens" in usage:
        # Anthropic reports cached input separately; all of it is prompt the caller sent.
        prompt += int(usage.get("cache_read_input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0)
    return (prompt if isinstance(prompt, int) else None,
            completion if isinstance(completion, int) else None)


def cached_of(usage: Any) -> int | None:
    """Prompt tokens served from the provider's cache: OpenAI's ``*_tokens_details.cached_tokens``
    (part of prompt_tokens), Anthropic's ``cache_read_input_tokens``."""
    if not isinstance(usage, dict):
        return None
    if "cache_read_input_tokens" in usage:
        return int(usage.get("cache_read_input_tokens") or 0)
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return cached if isinstance(cached, int) else None


def set_usage(ex, usage: Any) -> None:
    """Copy a reported usage object onto ``ex.usage`` (fields it lacks stay as they were)."""
    prompt, completion = usage_of(usage)
    if prompt is not None:
        ex.usage.prompt_tokens = prompt
    if completion is not None:
        ex.usage.completion_tokens = completion
    cached = cached_of(usage)
    if cached is not None:
        ex.usage.cached_tokens = cached


def apply_usage(ex, body: Any) -> None:
    if isinstance(body, dict):
        set_usage(ex, body.get("usage"))
