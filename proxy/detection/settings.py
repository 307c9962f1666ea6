"""The injection guard's policy section: JSON Schema and compile into frozen settings."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Mapping

import regex

from ..policy.sources import SourceRecorder, read_plain
from . import context as context_mod
from . import matcher
from . import escalation as escalation_mod
from . import modelcheck
from ..policy.loader import SectionError
from .rules import DEFAULT_RULES_DIR, Rule, load_rules
from .scanner import DetectorConfig

SCANNABLE_ROLES = ("system", "developer", "user", "assistant", "tool", "document", "prompt", "input", "definition")
DEFAULT_ROLES = ("user", "tool", "document", "prompt", "input")
DEFAULT_SETS = ("injection", "jailbreak", "evasion", "context", "indirect")
# The model tips a rule score over the threshold; it never blocks alone. At weight 1 it adds at
# most ~1.6 points (p / p_op, p_op >= 0.6): weight 3 let it turn a single framing cue into a
# block on benign families it never saw (leave-one-family-out, train/lofo_report.md).
DEFAULT_MODEL_WEIGHT = 1.0

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ruleSets": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                     "description": "Rule sets to use (file 'set' names in the rules directory). "
                                    "Default: injection, jailbreak, evasion, context, indirect."},
        "rulesDir": {"type": "string",
                     "description": "Directory of rule YAML files, relative to the policy file. "
                                    "Default: the rules/ folder shipped with aifw."},
        "paranoiaLevel": {"type": "integer", "minimum": 1, "maximum": 4,
                          "description": "Enable rules up to this paranoia level (default 1). Higher "
                                         "catches more and blocks more benign text."},
        "threshold": {"type": "number", "exclusiveMinimum": 0,
                      "description": "Anomaly score at which a slot counts as an attack (default 5)."},
        "disabledRules": {"type": "array", "items": {"type": "string"},
                          "description": "Rule ids to switch off (exclusions)."},
        "roles": {"type": "array", "items": {"enum": list(SCANNABLE_ROLES)}, "uniqueItems": True,
                  "description": "Slot roles to scan. Default: user, tool, document, prompt, input "
                                 "(system/developer prompts are the application's own; 'definition' is "
                                 "the text of declared tools and output schemas)."},
        "model": {
            "type": "object", "additionalProperties": False,
            "description": "The second signal: a linear n-gram model combined with the rule score.",
            "properties": {
                "enabled": {"type": "boolean", "description": "Use the model (default true)."},
                "weight": {"type": "number", "minimum": 0,
                           "description": "Points the model adds at its operating point (default 1); "
                                          "capped at twice this."},
                "path": {"type": "string", "description": "Model .npz file (default: the shipped one)."},
            },
        },
        "escalation": escalation_mod.SCHEMA,
        "response": {
            "type": "object", "additionalProperties": False,
            "description": "Checks on the model's answer, streamed answers included.",
            "properties": {
                "canaries": {"type": "array", "items": {"type": "string", "minLength": 4},
                             "description": "Strings that must never appear in an answer (e.g. a "
                                            "marker planted in the system prompt)."},
                "exfiltration": {"type": "boolean",
                                 "description": "Block markdown images/links that carry data to hosts "
                                                "not in allowedHosts (default true)."},
                "allowedHosts": {"type": "array", "items": {"type": "string"},
                                 "description": "Hosts (or *.suffix) answers may link or embed images from."},
                "holdBack": {"type": "integer", "minimum": 16, "maximum": 4096,
                             "description": "Most characters of a stream held back while they could still be "
                                            "the start of a canary or of open markup (only that suffix is held; "
                                            "default: max(256, 2x the longest canary))."},
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class ResponseSettings:
    canaries: tuple[str, ...]
    canary_pattern: Any            # compiled regex over normalized answer text, or None
    exfiltration: bool
    allowed_hosts: tuple[str, ...]
    hold_back: int

    @property
    def active(self) -> bool:
        return bool(self.canaries) or self.exfiltration

    @property
    def longest_canary(self) -> int:
        return max((len(c.casefold()) for c in self.canaries), default=0)


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    detector: DetectorConfig
    roles: frozenset[str]
    rules_by_role: Mapping[str, tuple[Rule, ...]]
    response: ResponseSettings
    paranoia: int
    rule_sets: tuple[str, ...]


def _resolve(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base or ".", path)


def _check_rule_ids(ids, sets) -> None:
    """An id that names no rule switches nothing off: a typo would leave the rule on."""
    known = sorted({r.id for rules in sets.values() for r in rules})
    problems = []
    for i, rule_id in enumerate(ids):
        if rule_id not in known:
            hint = difflib.get_close_matches(rule_id, known, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append((("disabledRules", i), f"unknown rule id {rule_id!r}{extra}"))
    if problems:
        raise SectionError(problems)


def compile_settings(section: Mapping[str, Any], policy_dir: str = ".",
                     sources: SourceRecorder | None = None, serve: bool = True) -> InjectionSettings:
    """``sources``: the policy compile's recorder; the rule files, the model and the rules
    directory join the policy's digest and hot reload through it. ``serve``: build everything
    the first scanned text would otherwise build (the rules' prefilters, ruleaids.py); False
    (`aifw policy check`) validates only: the model file is checked to load (modelcheck.py),
    not loaded (``detector.model`` is None), and the character model is not imported."""
    read = sources.read if sources is not None else read_plain
    rules_dir = _resolve(section["rulesDir"], policy_dir) if section.get("rulesDir") else DEFAULT_RULES_DIR
    if sources is not None:
        sources.watch_dir(str(rules_dir))
    sets = load_rules(rules_dir, read, aids=serve)
    wanted = tuple(section.get("ruleSets") or DEFAULT_SETS)
    missing = [s for s in wanted if s not in sets]
    if missing:
        raise ValueError(f"unknown rule sets {missing}; available: {sorted(sets)}")
    paranoia = int(section.get("paranoiaLevel", 1))
    disabled = set(section.get("disabledRules") or ())
    _check_rule_ids(section.get("disabledRules") or (), sets)
    rules = tuple(r for s in wanted for r in sets[s]
                  if r.paranoia <= paranoia and r.id not in disabled and r.direction == "request")
    model_cfg = section.get("model") or {}
    model = None
    if model_cfg.get("enabled", True):
        path = _resolve(model_cfg["path"], policy_dir) if model_cfg.get("path") else None
        if serve:
            model = modelcheck.load(path, read)
        else:
            modelcheck.check(path, read)
    context_rules = tuple(r for r in rules if r.context is not None)
    detector = DetectorConfig(rules=rules, model=model,
                              model_weight=float(model_cfg.get("weight", DEFAULT_MODEL_WEIGHT)),
                              threshold=float(section.get("threshold", 5.0)),
                              context_rules=context_rules,
                              context_vocab=context_mod.load_vocab(str(rules_dir), read)
                              if context_rules else None)
    roles = frozenset(section.get("roles") or DEFAULT_ROLES)
    by_role = {role: tuple(r for r in rules
                           if (r.roles is None or role in r.roles) and r.context is None)
               for role in SCANNABLE_ROLES}
    resp = section.get("response") or {}
    canaries = tuple(resp.get("canaries") or ())
    canary_pattern = (regex.compile("|".join(regex.escape(c.casefold()) for c in canaries))
                      if canaries else None)
    longest = max((len(c) for c in canaries), default=0)
    hold_back = int(resp.get("holdBack", max(256, 2 * longest)))
    response = ResponseSettings(canaries, canary_pattern, bool(resp.get("exfiltration", True)),
                                tuple(h.lower() for h in resp.get("allowedHosts") or ()), hold_back)
    if serve:
        matcher.warm(rules)
        # what `aifw policy check` leaves out (numpy, the character model), imported before a
        # start is ready, so no request pays for an import
        from ..lazyimport import load
        from . import normalize, scanviews
        load(vars(normalize), "charlm")
        load(vars(normalize), "indirect")
        load(vars(scanviews), "np")
    return InjectionSettings(detector, roles, by_role, response, paranoia, wanted)
