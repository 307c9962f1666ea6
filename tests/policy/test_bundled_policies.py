"""Every policy shipped in policies/ passes `aifw policy check` (as the Docker build runs it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "policies").glob("*.yaml"))


def test_there_are_bundled_policies():
    assert {p.name for p in POLICIES} >= {"default.yaml", "strict.yaml"}


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_bundled_policy_passes_check(policy, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "build-check", "ANTHROPIC_API_KEY": "build-check",
           "AIFW_AUDIT_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "proxy", "policy", "check", str(policy)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{policy}: ok"
