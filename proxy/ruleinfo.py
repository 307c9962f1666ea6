"""One line about every rule id aifw can report, for the people who read a verdict.

Detection rules carry their line as data (``message`` in rules/*.yaml, required there). The
ids guards compute (PII entities, tool, access and limit rules, the model's own ids) are
described below, as data too. ``describe`` answers for any id a finding or verdict can hold.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Mapping

# Ids no rule file defines: the guard that reports each says what it means.
FIXED: Mapping[str, str] = {
    "ML-9001": "The injection model's probability carried the slot's score over the threshold",
    "ML-9101": "The policy's escalation classifier judged the slot an attack",
    "RS-4001": "The answer repeats a canary planted in the system prompt (prompt leak)",
    "RS-4002": "The answer holds markup that would send data to an outside host (image or link exfiltration)",
    "access.model": "The model is not allowed by the policy (allowModels / denyModels)",
    "access.key_model": "The caller's key may not use this model",
    "access.group_model": "The caller's group may not use this model",
    "access.max_output_tokens": "The requested output tokens exceed the policy's cap",
    "access.body_size": "The request body is larger than the access guard allows",
    "tools.request.denied": "The request offers a tool the policy denies",
    "tools.request.not_allowed": "The request offers a tool the policy does not allow",
    "tools.call.denied": "The model called a tool the policy denies",
    "tools.call.not_allowed": "The model called a tool the policy does not allow",
    "tools.args.invalid_json": "The model's tool-call arguments are not valid JSON",
    "tools.args.schema": "The model's tool-call arguments break the schema the request declared",
    "structured_output.invalid_json": "The answer to a request for JSON output is not valid JSON",
    "structured_output.schema_violation": "The answer breaks the JSON Schema (or json_object) the request asked for",
    "structured_output.repaired": "A broken structured answer was corrected by asking the model again",
    "structured_output.repair_failed": "Asking the model again did not give a valid structured answer",
    "structured_output.too_large": "A streamed structured answer was longer than the guard holds for judging",
    "ratelimit.cutoff": "The answer reached the output tokens reserved for it",
    "ratelimit.backend_unavailable": "The shared limit store was unreachable",
    "ratelimit.fallback": "Per-process fallback limits were used (limit store unreachable)",
}

# Computed ids by prefix: "<prefix><name>" -> the text with {name} filled in.
PREFIXES: tuple[tuple[str, str], ...] = (
    ("pii.", "Personal data or a secret of type {name}"),
    ("tools.args.", "The model's tool-call arguments break the policy's rule '{name}'"),
    ("ratelimit.requests.", "Request-rate limit '{name}'"),
    ("ratelimit.tokens.", "Token-rate limit '{name}'"),
    ("ratelimit.budget.", "Token budget '{name}'"),
    ("ratelimit.spend.", "Spend budget '{name}'"),
    ("ratelimit.concurrency.", "Concurrent-request limit '{name}'"),
)


@functools.lru_cache(maxsize=8)
def rule_messages(rules_dir: str | None = None) -> Mapping[str, str]:
    """id -> message of every rule in a rules directory (default: the shipped rules/). Read as
    plain YAML: no pattern is compiled, so a report can name rules cheaply."""
    from . import yamlfast
    from .detection.rules import DEFAULT_RULES_DIR
    out: dict[str, str] = {}
    for path in sorted(Path(rules_dir or DEFAULT_RULES_DIR).glob("*.yaml")):
        doc = yamlfast.safe_load(path.read_text(encoding="utf-8")) or {}
        for rule in doc.get("rules") or ():
            if isinstance(rule, dict) and "id" in rule and "message" in rule:
                out[str(rule["id"])] = " ".join(str(rule["message"]).split())
    return out


def describe(rule_id: str, messages: Mapping[str, str] | None = None) -> str:
    """The one-line description of ``rule_id``; ``messages``: the rule files' id -> message
    (default: the shipped rules). An id nobody describes says so rather than guessing."""
    found = (messages if messages is not None else rule_messages()).get(rule_id) or FIXED.get(rule_id)
    if found:
        return found
    if rule_id.endswith(".fault"):
        return f"The {rule_id[:-len('.fault')]} guard failed on this exchange"
    for prefix, text in PREFIXES:
        if rule_id.startswith(prefix) and len(rule_id) > len(prefix):
            return text.format(name=rule_id[len(prefix):])
    return "(no description)"
