"""End-to-end fixtures on top of tests/conftest.py."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_audit_dir(tmp_path, monkeypatch):
    # The audit log defaults to ./var/audit with one writer per directory: tests (and other
    # engineers' test runs) must not share it, or the second writer fails closed with 503.
    monkeypatch.setenv("AIFW_AUDIT_DIR", str(tmp_path / "audit"))
