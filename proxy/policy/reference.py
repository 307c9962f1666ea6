"""Render the policy JSON Schema as a Markdown reference (docs/policy.md is this output)."""
from __future__ import annotations

from typing import Any

from .schema import build_schema

HEADER = """# Policy reference

Generated from `policies/policy.schema.json` by `aifw policy schema --markdown`; a test keeps the
two in step. Keys are camelCase; unknown keys are errors. Durations are numbers of seconds or
strings like `250ms`, `10s`, `5m`; sizes are bytes or strings like `512KiB`, `10MiB`.
`${VAR}` and `${VAR:-default}` are read from the environment.

| key | type | description |
|---|---|---|
"""


def _type(schema: dict) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    t = schema.get("type")
    if t == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if t == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
        return f"map of {_type(schema['additionalProperties'])}"
    return t or "any"


def _rows(schema: dict, path: str, out: list[str]) -> None:
    for name, sub in (schema.get("properties") or {}).items():
        if name == "$schema":
            continue
        key = f"{path}.{name}" if path else name
        desc = (sub.get("description") or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{key}` | {_type(sub)} | {desc} |")
        if sub.get("type") == "object":
            _rows(sub, key, out)
            extra = sub.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("properties"):
                _rows(extra, key + ".<name>", out)
        elif sub.get("type") == "array" and isinstance(sub.get("items"), dict) and sub["items"].get("properties"):
            _rows(sub["items"], key + "[]", out)


def render_markdown() -> str:
    rows: list[str] = []
    _rows(build_schema(), "", rows)
    return HEADER + "\n".join(rows) + "\n"
