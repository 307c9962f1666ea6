"""Files generated from code must match it: the published schema and the policy reference."""
from __future__ import annotations

import json
from pathlib import Path

from proxy.policy.reference import render_markdown
from proxy.policy.schema import build_schema

ROOT = Path(__file__).resolve().parent.parent


def test_policy_schema_file_is_current():
    committed = json.loads((ROOT / "policies" / "policy.schema.json").read_text())
    assert committed == build_schema(), "regenerate: python -m proxy policy schema > policies/policy.schema.json"


def test_policy_reference_is_current():
    committed = (ROOT / "docs" / "policy.md").read_text()
    assert committed == render_markdown(), "regenerate: python -m proxy policy schema --markdown > docs/policy.md"


def test_every_schema_property_is_described():
    missing: list[str] = []

    def walk(schema, path):
        for name, sub in (schema.get("properties") or {}).items():
            if name != "$schema" and not sub.get("description"):
                missing.append(f"{path}.{name}")
            walk(sub, f"{path}.{name}")
            if isinstance(sub.get("items"), dict):
                walk(sub["items"], f"{path}.{name}[]")
            if isinstance(sub.get("additionalProperties"), dict):
                walk(sub["additionalProperties"], f"{path}.{name}.*")
    walk(build_schema(), "$")
    assert not missing, f"schema properties without a description: {missing}"
