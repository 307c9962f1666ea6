"""The pii policy section: JSON Schema and its compilation into frozen runtime config."""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import regex

from ..policy.sources import Reader, read_plain
from .detector import BUILTIN_ENTITIES, AllowList, Detector, builtin_recognizers
from .operators import OPERATORS, Keys, load_key
from .recognizers.context import Context
from .recognizers.custom import PatternRecognizer, TermListRecognizer, load_validator
from .recognizers.phone import DEFAULT_REGIONS

ENTITY_NAME = r"^[A-Z][A-Z0-9_]*$"
_OP = {"enum": list(OPERATORS), "description": "replace | redact | mask | hash | encrypt | block | none"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "restore": {"type": "boolean", "description": "Put values masked in the request back into the answer (default true)."},
        "defaultOperator": {**_OP, "description": "Operator for built-in entities not listed in `entities`, both directions (default replace; none = only listed entities)."},
        "entities": {
            "type": "object",
            "description": "Entity type -> operator, or {request, response} operators per direction.",
            "propertyNames": {"pattern": ENTITY_NAME},
            "additionalProperties": {"oneOf": [
                _OP,
                {"type": "object", "additionalProperties": False,
                 "properties": {"request": {**_OP, "description": "Operator for prompts."},
                                "response": {**_OP, "description": "Operator for answers the model produces."}}},
            ]},
        },
        "phoneRegions": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                         "description": "Regions whose national phone numbers count without a contact word when written with the region's trunk prefix or digit grouping (default US, GB, DE, FR, IN; replaces the default). International numbers count in any region."},
        "allowList": {
            "type": "object", "additionalProperties": False,
            "description": "Values that are never masked (e.g. the company's own support address).",
            "properties": {
                "values": {"type": "array", "items": {"type": "string"}, "description": "Exact values, case-insensitive."},
                "patterns": {"type": "array", "items": {"type": "string"}, "description": "Regexes a whole value must match."},
            },
        },
        "custom": {
            "type": "array", "description": "Custom entities recognised by a pattern.",
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "pattern"],
                "properties": {
                    "name": {"type": "string", "pattern": ENTITY_NAME, "description": "Entity type, e.g. EMPLOYEE_ID."},
                    "pattern": {"type": "string", "description": "Regex of one value."},
                    "validator": {"type": "string", "description": "luhn, mod97 or a python-stdnum module such as stdnum.de.idnr."},
                    "context": {"type": "array", "items": {"type": "string"}, "description": "Words of which one must stand near a match."},
                    "contextWindow": {"type": "integer", "minimum": 1, "maximum": 500, "description": "Characters searched for context before a match (default 40)."},
                    "ignoreCase": {"type": "boolean", "description": "Match the pattern case-insensitively (default false)."},
                },
            },
        },
        "termLists": {
            "type": "array", "description": "Entities given as term lists in files, one term a line (# comments).",
            "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "file"],
                "properties": {
                    "name": {"type": "string", "pattern": ENTITY_NAME, "description": "Entity type, e.g. PROJECT_CODENAME."},
                    "file": {"type": "string", "description": "Path, relative to the policy file."},
                    "caseSensitive": {"type": "boolean", "description": "Match case exactly (default false)."},
                },
            },
        },
        "hashKeyEnv": {"type": "string", "description": "Environment variable holding the HMAC key for `hash` (default AIFW_PII_HASH_KEY)."},
        "encryptKeyEnv": {"type": "string", "description": "Environment variable holding the 16/24/32-byte AES key for `encrypt` (default AIFW_PII_ENCRYPTION_KEY)."},
        "streamHoldBack": {"type": "integer", "minimum": 8, "maximum": 1024, "description": "How far back from the end of a streamed answer words that could belong to an entity spanning white space (digits, symbols, capitals) are held (default 32); the last word is held until white space ends it when it could still begin a value the answer is scanned for (every word, when e-mail addresses are)."},
        "maxHold": {"type": "integer", "minimum": 256, "maximum": 1048576, "description": "Most characters held back while waiting for an entity to end (default 8192)."},
    },
}


@dataclass(frozen=True, slots=True)
class PiiConfig:
    request_detector: Detector | None
    response_detector: Detector | None
    request_ops: Mapping[str, str]
    response_ops: Mapping[str, str]
    redactor_detector: Detector | None
    redactor_ops: Mapping[str, str]      # for audit text: nothing restorable, nothing blocks
    restore: bool
    keys: Keys
    hold_back: int
    max_hold: int


def _directional(section: Mapping[str, Any], custom_names: list[str]) -> tuple[dict, dict]:
    default = section.get("defaultOperator", "replace")
    req: dict[str, str] = {e: default for e in BUILTIN_ENTITIES}
    resp: dict[str, str] = dict(req)
    for name in custom_names:
        req[name] = resp[name] = "replace"
    for name, op in (section.get("entities") or {}).items():
        if isinstance(op, str):
            req[name] = resp[name] = op
        else:
            req[name] = op.get("request", req.get(name, default))
            resp[name] = op.get("response", resp.get(name, default))
    return ({k: v for k, v in req.items() if v != "none"}, {k: v for k, v in resp.items() if v != "none"})


def compile_config(section: Mapping[str, Any], policy_dir: str, read: Reader = read_plain) -> PiiConfig:
    """``read`` reads the term lists (a policy compile passes its SourceRecorder's: the lists
    join the policy's digest and its hot reload)."""
    recognizers: list = builtin_recognizers(tuple(section.get("phoneRegions") or DEFAULT_REGIONS))
    custom_names: list[str] = []
    for item in section.get("custom") or ():
        flags = regex.I if item.get("ignoreCase") else 0
        try:
            pattern = regex.compile(item["pattern"], flags)
        except regex.error as exc:
            raise ValueError(f"pii.custom {item['name']}: bad pattern: {exc}") from None
        validator = load_validator(item["validator"]) if item.get("validator") else None
        context = Context.of(item["context"], before=item.get("contextWindow", 40)) if item.get("context") else None
        recognizers.append(PatternRecognizer(item["name"], pattern, validator, context))
        custom_names.append(item["name"])
    for item in section.get("termLists") or ():
        path = os.path.join(policy_dir, item["file"])
        try:
            terms = read(path).decode("utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"pii.termLists {item['name']}: cannot read {item['file']}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"pii.termLists {item['name']}: {item['file']} is not UTF-8 text") from None
        recognizers.append(TermListRecognizer.build(item["name"], terms, bool(item.get("caseSensitive"))))
        custom_names.append(item["name"])
    known = set(BUILTIN_ENTITIES) | set(custom_names)
    unknown = sorted(set(section.get("entities") or {}) - known)
    if unknown:
        raise ValueError(f"pii.entities: unknown entity types {', '.join(unknown)}")
    req_ops, resp_ops = _directional(section, custom_names)
    allow_raw = section.get("allowList") or {}
    allow = AllowList(frozenset(v.casefold() for v in allow_raw.get("values", ())),
                      tuple(regex.compile(p) for p in allow_raw.get("patterns", ())))
    recs = tuple(recognizers)
    used = set(req_ops.values()) | set(resp_ops.values())
    keys = Keys(
        hash_key=load_key(section.get("hashKeyEnv", "AIFW_PII_HASH_KEY"), "hash") if "hash" in used else None,
        encrypt_key=load_key(section.get("encryptKeyEnv", "AIFW_PII_ENCRYPTION_KEY"), "encrypt", aes=True)
        if "encrypt" in used else None,
    )
    redactor_ops = {e: ("replace" if op == "block" else op) for e, op in {**resp_ops, **req_ops}.items()}
    return PiiConfig(
        request_detector=Detector(recs, frozenset(req_ops), allow) if req_ops else None,
        response_detector=Detector(recs, frozenset(resp_ops), allow) if resp_ops else None,
        request_ops=MappingProxyType(req_ops),
        response_ops=MappingProxyType(resp_ops),
        redactor_detector=Detector(recs, frozenset(redactor_ops), allow) if redactor_ops else None,
        redactor_ops=MappingProxyType(redactor_ops),
        restore=section.get("restore", True),
        keys=keys,
        hold_back=section.get("streamHoldBack", 32),
        max_hold=section.get("maxHold", 8192),
    )
