"""Structured output: an answer to a request that asked for JSON (``response_format``, Responses
``text.format``, Anthropic ``output_config.format``) must be JSON, and satisfy the request's own
JSON Schema when it declared one.

``flag`` records a broken answer and lets it pass; ``block`` refuses it (a whole answer comes
back without its content, ``finish_reason: content_filter``; a streamed one is held until
complete, then released whole or ended the same way: partial JSON is of no use to a client); ``repair`` asks
the same upstream again, once by default, with the answer and what is wrong with it (the edge
sends it: proxy/app.py), and falls back to block or flag when no valid answer comes. Streams
cannot be asked again: they get the fallback. Requests that ask for no structured output leave
no state, and their streams do not run this guard's stream hooks at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping

import orjson

from ..exchange import Exchange
from ..parsing import structured as wire
from ..toolargs import schema_violation, warm as warm_toolargs
from ..verdict import Finding, RepairRequest, Verdict
from .base import CompileContext, Guard, GuardSpec, StreamText

NAME = "structured_output"
INVALID_JSON = f"{NAME}.invalid_json"
SCHEMA_VIOLATION = f"{NAME}.schema_violation"
TOO_LARGE = f"{NAME}.too_large"
REPAIRED = f"{NAME}.repaired"
REPAIR_FAILED = f"{NAME}.repair_failed"

SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["flag", "block", "repair"],
                   "description": "An answer that is not the JSON the request asked for: record it and let it "
                                  "pass (flag), refuse it (block, default), or ask the model once more (repair; "
                                  "streams get repair.fallback)."},
        "repair": {"type": "object", "additionalProperties": False, "description": "How repair asks again.",
                   "properties": {
                       "attempts": {"type": "integer", "minimum": 1, "maximum": 3,
                                    "description": "Further upstream attempts per answer (default 1)."},
                       "fallback": {"enum": ["block", "flag"],
                                    "description": "What an answer still broken after the attempts, or a "
                                                   "streamed one, gets (default block)."}}},
        "jsonObject": {"type": "boolean",
                       "description": "Also judge answers to json_object requests: JSON, an object (default true)."},
        "maxHeldChars": {"type": "integer", "minimum": 1,
                         "description": "Longest streamed answer held back for judging (block); a longer one "
                                        "ends with content_filter (default 1000000)."},
    },
}


@dataclass(frozen=True, slots=True)
class StructuredConfig:
    action: str = "block"           # flag | block | repair
    attempts: int = 1
    fallback: str = "block"         # block | flag
    json_object: bool = True
    max_held: int = 1_000_000


@dataclass(slots=True)
class _Judging:
    """Per exchange: the format asked for and what the guard holds of a stream."""

    format: wire.OutputFormat
    repairs: int = 0
    held: dict[StreamText, list[str]] = field(default_factory=dict)
    sizes: dict[StreamText, int] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)      # choices that streamed a refusal


def judge(fmt: wire.OutputFormat, text: str) -> tuple[str, str, str] | None:
    """(rule id, JSON path, problem) of an answer that breaks ``fmt``, or None. The problem
    names a path and a schema keyword, never the answer's text."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return INVALID_JSON, "$", f"it is not JSON ({exc})"
    if fmt.kind == "json_object":
        return None if isinstance(value, dict) else (SCHEMA_VIOLATION, "$", "it is not a JSON object")
    found = schema_violation(fmt.schema, value)
    if found is None:
        return None
    path, problem = found
    return SCHEMA_VIOLATION, path or "$", f"{path}: {problem}" if path else problem


def _judged_channel(channel: str) -> bool:
    # chat and legacy content, Responses output_text and Anthropic text blocks ("block:<n>")
    return channel == "content" or channel.startswith("block:")


class StructuredOutputGuard(Guard):
    name = NAME
    streams_on_request = True
    reads_body = True       # the request's response_format and the answer's body, not only text slots

    def __init__(self, config: StructuredConfig) -> None:
        self.config = config

    def _finding(self, ex: Exchange, rules: tuple[str, ...], action: str, path: str | None = None) -> None:
        ex.add_finding(Finding(self.name, rules, action=action, direction="response",
                               detail={"path": path} if path else {}))

    def _act(self, ex: Exchange, judging: _Judging, key: Hashable, problem: tuple[str, str, str],
             streamed: bool) -> Verdict | None:
        """An answer broke the format: repair, block or flag it, as the policy says."""
        rule, path, why = problem
        cfg = self.config
        message = f"The model's answer is not the JSON the request asked for: {why}."
        if self.mode == "monitor":
            self._finding(ex, (rule,), "would_block", path)
            ex.mark_monitored()
            return None
        action = cfg.action
        if action == "repair":
            if not streamed and judging.repairs < cfg.attempts and wire.repairable(ex.endpoint.kind, ex.body):
                judging.repairs += 1
                self._finding(ex, (rule,), "retried", path)
                fallback = None if cfg.fallback == "flag" else Verdict(self.name, message, (rule, REPAIR_FAILED),
                                                                        in_answer=True)
                failed = Finding(self.name, (REPAIR_FAILED,), action="observed" if fallback is None else "blocked",
                                 direction="response")
                ex.repair = RepairRequest(key, why, failed, fallback)
                return None
            action = cfg.fallback
        rules = (rule, REPAIR_FAILED) if judging.repairs else (rule,)
        if action == "flag":
            self._finding(ex, rules, "observed", path)
            return None
        self._finding(ex, rules, "blocked", path)
        # a whole answer is still an answer (as the tools guard refuses one): its content
        # removed, finish_reason content_filter; a stream ends the same way
        return Verdict(self.name, message, rules, in_answer=True)

    async def on_request(self, ex: Exchange) -> Verdict | None:
        fmt = wire.requested(ex.endpoint.kind, ex.body) if ex.endpoint is not None else None
        if fmt is not None and (fmt.kind == "json_schema" or self.config.json_object):
            ex.state[self.name] = _Judging(fmt)
        return None

    async def on_response(self, ex: Exchange) -> Verdict | None:
        judging: _Judging | None = ex.state.get(self.name)
        if judging is None:
            return None
        for key, text in wire.answers(ex.endpoint.kind, ex.response_body):
            problem = judge(judging.format, text)
            if problem is not None:
                return self._act(ex, judging, key, problem, streamed=False)
        if judging.repairs:
            self._finding(ex, (REPAIRED,), "observed")
        return None

    # --- streams: only exchanges whose request asked for structured output get here ----------
    def _holds(self) -> bool:
        action = self.config.fallback if self.config.action == "repair" else self.config.action
        return action == "block" and self.mode != "monitor"

    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        judging: _Judging = ex.state[self.name]
        if not _judged_channel(stream.channel):
            if stream.channel.startswith("refusal"):
                judging.refused.add(stream.choice)
            return text
        size = judging.sizes.get(stream, 0) + len(text)
        judging.sizes[stream] = size
        parts = judging.held.setdefault(stream, [])
        if size > self.config.max_held:
            if self._holds():
                self._finding(ex, (TOO_LARGE,), "blocked")
                return Verdict(self.name, "The structured answer is longer than the guard holds for judging.",
                               (TOO_LARGE,))
            if size - len(text) <= self.config.max_held:   # flag: passed on unjudged, and said so
                parts.clear()
                self._finding(ex, (TOO_LARGE,), "observed")
            return text
        parts.append(text)
        return "" if self._holds() else text

    def on_end(self, ex: Exchange, stream: StreamText) -> str | Verdict:
        judging: _Judging = ex.state[self.name]
        parts = judging.held.pop(stream, None)
        if parts is None:
            return ""
        text = "".join(parts)
        out = text if self._holds() else ""
        oversized = judging.sizes.get(stream, 0) > self.config.max_held
        answered_otherwise = stream.choice in judging.refused or any(
            k.choice == stream.choice for k in ex.tool_streams)
        if oversized or (not text and answered_otherwise):
            return out
        problem = judge(judging.format, text)
        if problem is None:
            return out
        return self._act(ex, judging, stream, problem, streamed=True) or out


def compile_structured(section: Mapping[str, Any], ctx: CompileContext) -> StructuredOutputGuard:
    if not ctx.check:
        warm_toolargs()
    repair = section.get("repair") or {}
    return StructuredOutputGuard(StructuredConfig(
        action=section.get("action", "block"),
        attempts=repair.get("attempts", 1),
        fallback=repair.get("fallback", "block"),
        json_object=section.get("jsonObject", True),
        max_held=section.get("maxHeldChars", 1_000_000),
    ))


SPEC = GuardSpec(NAME, SCHEMA, compile_structured,
                 "Structured output: answers to requests that ask for JSON must be JSON and satisfy "
                 "the request's schema.")
