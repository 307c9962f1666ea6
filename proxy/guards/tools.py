"""Tools: which tools a request may offer and which a model may call (name globs per policy/scope).

A request's forbidden tools are blocked, stripped from the request, or only recorded. A model's
call of a forbidden tool ends the answer with ``finish_reason: content_filter``: a whole answer
comes back without its content and calls, a streamed one stops. In a stream the call's name is
judged on the event that starts the call, before that event goes out, and the call's argument
deltas are held until the call is complete, so nothing of a forbidden call reaches the client and
later checks see whole arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..bounded import cap
from ..exchange import Exchange
from ..globs import GlobSet
from .. import toolargs as args
from ..parsing import tools as wire
from ..verdict import Finding, Verdict
from .base import CompileContext, Guard, GuardSpec, StreamText

GLOBS = {"type": "array", "items": {"type": "string"}}
SCHEMA = {
    "type": "object",
    "properties": {
        "allow": {**GLOBS, "description": "Tool-name globs a request may offer and a model may call (default: any)."},
        "deny": {**GLOBS, "description": "Tool-name globs nobody may offer or call (wins over allow)."},
        "onRequest": {"enum": ["block", "strip", "monitor"],
                      "description": "A request offers a forbidden tool: refuse it (400 content_filter, default), "
                                     "remove the tool from the request, or only record it."},
        "onCall": {"enum": ["block", "monitor"],
                   "description": "The model calls a forbidden tool: end the answer (default) or only record it."},
        "validateArguments": {"type": "boolean",
                              "description": "Check each call's arguments against the JSON Schema the request "
                                             "declared for the tool (default true)."},
        "onArguments": {"enum": ["block", "monitor"],
                        "description": "A call's arguments are not JSON, break the declared schema or a rule in "
                                       "arguments: end the answer (default) or only record it."},
        "arguments": {"type": "array", "items": args.RULE_SCHEMA,
                      "description": "Rules on the arguments of the tools they name."},
    },
}


@dataclass(frozen=True, slots=True)
class ToolsConfig:
    allow: GlobSet
    deny: GlobSet
    on_request: str
    on_call: str
    validate: bool = True
    on_arguments: str = "block"
    constraints: tuple[args.Constraint, ...] = ()

    def rule(self, name: str) -> str | None:
        """The rule a tool name breaks, or None when it may be used."""
        if self.deny.match(name):
            return "denied"
        if self.allow and not self.allow.match(name):
            return "not_allowed"
        return None


class ToolsGuard(Guard):
    name = "tools"
    tool_calls_only = True
    reads_body = True

    def __init__(self, config: ToolsConfig) -> None:
        self.config = config

    def _record(self, ex: Exchange, rule: str, name: str, action: str, direction: str,
                path: str | None = None) -> None:
        """One finding per decision: the rule, the tool (also as a count, the record's older
        form) and, for an argument rule, the argument path it was broken at."""
        if action == "blocked" and self.mode == "monitor":
            action = "would_block"
        detail = {"tool": cap(name)} if path is None else {"tool": cap(name), "path": cap(path)}
        ex.add_finding(Finding(self.name, (rule,), action=action, direction=direction,
                               counts={name: 1}, detail=detail))
        if action == "would_block" and ex.decision == "allowed":
            ex.decision = "monitored"

    def _act(self, ex: Exchange, rule: str, name: str, action: str, message: str,
             path: str | None = None) -> Verdict | None:
        """A call broke ``rule``: end the answer, or (monitor) only record it."""
        if action == "monitor" or self.mode == "monitor":
            self._record(ex, rule, name, "would_block", "response", path)
            return None
        self._record(ex, rule, name, "blocked", "response", path)
        # a whole answer is still an answer: its calls removed, finish_reason content_filter
        return Verdict(self.name, message, (rule,), in_answer=True)

    def _judge_call(self, ex: Exchange, name: str) -> Verdict | None:
        broken = self.config.rule(name)
        if broken is None:
            return None
        return self._act(ex, f"tools.call.{broken}", name, self.config.on_call,
                         f"The model called tool {name!r}, which the policy does not allow.")

    def _judge_arguments(self, ex: Exchange, name: str, raw: Any) -> Verdict | None:
        cfg = self.config
        if not cfg.validate and not cfg.constraints:
            return None
        value, ok = args.parse_arguments(raw)
        problem: tuple[str, str | None, str] | None = None     # rule, path, what is wrong
        if not ok:
            problem = ("tools.args.invalid_json", "$", "are not valid JSON")
        elif cfg.validate:
            schemas = ex.state.get("tools.schemas")
            if schemas is None:
                schemas = ex.state["tools.schemas"] = args.declared_schemas(ex.body)
            error = args.schema_violation(schemas[name], value) if name in schemas else None
            if error is not None:
                where, what = error
                problem = ("tools.args.schema", where,
                           f"break the schema the request declared ({what if where is None else f'{where}: {what}'})")
        for rule in cfg.constraints if problem is None else ():
            if rule.tools.match(name):
                error = rule.violation(value)
                if error is not None:
                    problem = (f"tools.args.{rule.name}", error[0],
                               f"break rule {rule.name!r}: {error[0]} {error[1]}")
                    break
        if problem is None:
            return None
        return self._act(ex, problem[0], name, cfg.on_arguments,
                         f"The arguments of the model's call of {name!r} {problem[2]}.", problem[1])

    def _record_all(self, ex: Exchange, by_rule: dict[str, list[str]], action: str) -> None:
        for rule, names in by_rule.items():
            for name in dict.fromkeys(names):
                self._record(ex, rule, name, action, "request")

    async def on_request(self, ex: Exchange) -> Verdict | None:
        names = wire.offered(ex.body)
        if not names:
            return None
        cfg = self.config
        by_rule: dict[str, list[str]] = {}
        for name in names:
            broken = cfg.rule(name)
            if broken is not None:
                by_rule.setdefault(f"tools.request.{broken}", []).append(name)
        if not by_rule:
            return None
        if cfg.on_request == "monitor" or (cfg.on_request == "strip" and self.mode == "monitor"):
            self._record_all(ex, by_rule, "would_block" if cfg.on_request == "monitor" else "would_strip")
            if ex.decision == "allowed":
                ex.decision = "monitored"
            return None
        if cfg.on_request == "strip":
            wire.strip(ex.body, lambda n: cfg.rule(n) is not None)
            ex.body_changed = True
            self._record_all(ex, by_rule, "stripped")
            return None
        self._record_all(ex, by_rule, "blocked")
        listed = ", ".join(repr(n) for names_ in by_rule.values() for n in names_)
        return Verdict(self.name, f"The request offers tools the policy does not allow: {listed}.",
                       tuple(by_rule))

    async def on_response(self, ex: Exchange) -> Verdict | None:
        for name, raw in wire.calls(ex.endpoint.kind, ex.response_body):
            verdict = self._judge_call(ex, name) or self._judge_arguments(ex, name, raw)
            if verdict is not None:
                return verdict
        return None

    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        name = ex.tool_streams.get(stream)
        if name is None:
            return text
        held = ex.state.get(self.name)
        if held is None:
            held = ex.state[self.name] = {}
        parts = held.get(stream)
        if parts is None:
            # the event that starts the call: judge the name before any of it goes out (once:
            # a monitored call's deltas are then held like an allowed one's)
            parts = held[stream] = []
            verdict = self._judge_call(ex, name)
            if verdict is not None:
                return verdict
        parts.append(text)
        return ""

    def on_end(self, ex: Exchange, stream: StreamText) -> str | Verdict:
        held = ex.state.get(self.name)
        parts = held.pop(stream, None) if held else None
        if parts is None:
            return ""
        text = "".join(parts)
        return self._judge_arguments(ex, ex.tool_streams[stream], text) or text


def compile_tools(section: Mapping[str, Any], ctx: CompileContext) -> ToolsGuard:
    if not ctx.check:
        args.warm()
    return ToolsGuard(ToolsConfig(
        allow=GlobSet.of(section.get("allow", ())),
        deny=GlobSet.of(section.get("deny", ())),
        on_request=section.get("onRequest", "block"),
        on_call=section.get("onCall", "block"),
        validate=section.get("validateArguments", True),
        on_arguments=section.get("onArguments", "block"),
        constraints=tuple(args.compile_rule(rule) for rule in section.get("arguments", ())),
    ))


SPEC = GuardSpec("tools", SCHEMA, compile_tools,
                 "Tool permissions: which tools a request may offer and a model may call.")
