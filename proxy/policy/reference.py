"""Render the policy JSON Schema as a Markdown reference (docs/policy.md is this output)."""
from __future__ import annotations

from typing import Any

from .schema import build_schema

HEADER = """# Policy reference

Generated from `policies/policy.schema.json` by `aifw policy schema --markdown`; a test keeps the
two in step. Keys are camelCase; unknown keys are errors. Durations are numbers of seconds or
strings like `250ms`, `10s`, `5m`; sizes are bytes or strings like `512KiB`, `10MiB`.
`${VAR}` and `${VAR:-default}` are read from the environment.

## Digest and hot reload

Every audit record, `/readyz` and the reload log name the policy by its **digest**
(`sha256:...`). It covers the policy file and every file the policy makes aifw read to judge
traffic: term lists (`guards.pii.termLists[].file`), the injection rule files (every
`*.yaml` in `guards.injection.rulesDir`, or in the shipped `rules/` folder) and the injection
model (`guards.injection.model.path`, or the shipped one). A policy that references no file
has the SHA-256 of its bytes as digest; otherwise the digest is the SHA-256 of the policy's
bytes followed by each referenced file's SHA-256, in the order they are read, so the same files
give the same digest on every host, wherever they lie, and an upgrade of aifw that ships
changed rules gives a new digest. `/readyz` detail for operators lists the files
(`policy.files`: path and SHA-256).

The same watcher that reloads the policy file (a poll each second, no SIGHUP needed, and a
Kubernetes ConfigMap swap is seen) watches each of these files and the rules directory (a rule
file added or removed): adding a name to a term list reloads the policy, the next request is
judged with the new list, and its audit record carries the new digest. Results the scan cache
holds for the old list are never used for the new one (its key is a digest of the compiled
settings). A file edited while the policy compiles is read again at the next poll; a reload
that failed because a referenced file is missing is retried when the file appears.

Not in the digest: the keys file (`identity.keysFile`) is watched and reloads in place, but
issuing or revoking a key does not change the policy (the keys file has its own digest); the
Redis TLS files are credentials, read by the client that connects; environment variables are
read at start only.

## Keys

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
