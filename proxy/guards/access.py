"""Access: which models a caller may use, output-token caps, body size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..durations import SIZE_SCHEMA, parse_size
from ..exchange import Exchange
from ..globs import GlobSet
from ..verdict import Finding, Verdict
from .base import CompileContext, Guard, GuardSpec

# Request fields that bound the answer's length, across OpenAI, Responses and Anthropic.
MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")

SCHEMA = {
    "type": "object",
    "properties": {
        "allowModels": {"type": "array", "items": {"type": "string"},
                        "description": "Model globs anyone may use (default: all)."},
        "denyModels": {"type": "array", "items": {"type": "string"},
                       "description": "Model globs nobody may use (wins over every allow)."},
        "groupModels": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        "description": "Group -> model globs. A caller in any listed group may use only models one of its listed groups allows."},
        "maxOutputTokens": {"type": "integer", "minimum": 1,
                            "description": "Cap on max_tokens / max_completion_tokens / max_output_tokens."},
        "onMaxOutputTokens": {"enum": ["block", "clamp"],
                              "description": "Over the cap: block the request (default) or lower the value to the cap."},
        "maxBodyBytes": {**SIZE_SCHEMA, "description": "Largest request body for this scope; larger gets 413 request_too_large."},
    },
}


@dataclass(frozen=True, slots=True)
class AccessConfig:
    allow: GlobSet
    deny: GlobSet
    groups: Mapping[str, GlobSet]
    max_output_tokens: int | None
    clamp: bool
    max_body_bytes: int | None


class AccessGuard(Guard):
    name = "access"

    def __init__(self, config: AccessConfig) -> None:
        self.config = config

    def _block(self, ex: Exchange, rule: str, message: str, status: int = 403,
               code: str = "model_not_allowed") -> Verdict:
        ex.add_finding(Finding(self.name, (rule,), action="blocked"))
        return Verdict(self.name, message, (rule,), status=status, code=code,
                       type="invalid_request_error")

    async def on_request(self, ex: Exchange) -> Verdict | None:
        cfg = self.config
        if cfg.max_body_bytes is not None and len(ex.raw_body) > cfg.max_body_bytes:
            return self._block(ex, "access.body_size",
                               f"Request body of {len(ex.raw_body)} bytes exceeds the limit of {cfg.max_body_bytes} bytes.",
                               413, "request_too_large")
        model = ex.model
        if model is not None:
            if cfg.deny.match(model) or (cfg.allow and not cfg.allow.match(model)):
                return self._block(ex, "access.model", f"Model {model!r} is not allowed by policy.")
            ident = ex.identity
            if ident is not None:
                if ident.models and not ident.models.match(model):
                    return self._block(ex, "access.key_model", f"This key may not use model {model!r}.")
                listed = [cfg.groups[g] for g in ident.groups if g in cfg.groups] \
                    if ident.groups and cfg.groups else None   # most callers name no group
                if listed and not any(gs.match(model) for gs in listed):
                    return self._block(ex, "access.group_model", f"Your group may not use model {model!r}.")
        if cfg.max_output_tokens is not None and isinstance(ex.body, dict):
            for field in MAX_TOKEN_FIELDS:
                value = ex.body.get(field)
                if isinstance(value, int) and not isinstance(value, bool) and value > cfg.max_output_tokens:
                    if cfg.clamp:
                        ex.body[field] = cfg.max_output_tokens
                        ex.body_changed = True
                        ex.add_finding(Finding(self.name, ("access.max_output_tokens",), action="clamped"))
                    else:
                        ex.add_finding(Finding(self.name, ("access.max_output_tokens",), action="blocked"))
                        return Verdict(self.name,
                                       f"{field}={value} exceeds the policy's cap of {cfg.max_output_tokens}.",
                                       ("access.max_output_tokens",), status=400, code="invalid_request")
        return None


def compile_access(section: Mapping[str, Any], ctx: CompileContext) -> AccessGuard:
    max_body = section.get("maxBodyBytes")
    return AccessGuard(AccessConfig(
        allow=GlobSet.of(section.get("allowModels", ())),
        deny=GlobSet.of(section.get("denyModels", ())),
        groups={g: GlobSet.of(p) for g, p in (section.get("groupModels") or {}).items()},
        max_output_tokens=section.get("maxOutputTokens"),
        clamp=section.get("onMaxOutputTokens", "block") == "clamp",
        max_body_bytes=parse_size(max_body) if max_body is not None else None,
    ))


SPEC = GuardSpec("access", SCHEMA, compile_access,
                 "Model allow-lists per policy, group and key; output-token caps; body size.")
