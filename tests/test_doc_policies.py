"""Every complete policy shown in the docs (a yaml block starting with `version: 1`) passes
`aifw policy check`."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.policy.compile import check_files

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```yaml\n(version: 1\n.*?)```", re.S)
DOCS = ("limits.md", "resilience.md", "detection.md", "agents.md")


def examples():
    for name in DOCS:
        for i, text in enumerate(BLOCK.findall((ROOT / "docs" / name).read_text())):
            yield pytest.param(text, id=f"{name}#{i}")


@pytest.mark.parametrize("text", list(examples()))
def test_doc_policy_passes_policy_check(text, tmp_path):
    (tmp_path / "keys.yaml").write_text("keys: []\n")
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    env = {"OPENAI_API_KEY": "sk-x", "AZURE_OPENAI_API_KEY": "az-x", "ANTHROPIC_API_KEY": "sk-ant-x",
           "AIFW_REDIS_URL": "redis://127.0.0.1:1/0", "HOOK_TOKEN": "hk-x"}
    assert check_files([str(path)], env) == []


def test_the_docs_show_policies():
    assert len(list(examples())) >= len(DOCS)
