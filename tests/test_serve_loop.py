"""`aifw serve` runs on uvloop when it is installed (the `speed` extra), on asyncio's own loop
when asked (`--loop asyncio` / AIFW_EVENT_LOOP), and refuses a loop it cannot have."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxy.serve import loop_factory
from tests.serve_proc import free_port, stop_once_healthy

ROOT = Path(__file__).resolve().parent.parent


def test_auto_prefers_uvloop_when_installed():
    import uvloop                      # installed with `make install` (.[test,speed])
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None


def test_without_uvloop(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)      # as if not installed
    assert loop_factory("auto") is None
    with pytest.raises(ValueError, match=r"aifw\[speed\]"):
        loop_factory("uvloop")
    with pytest.raises(ValueError, match="unknown event loop"):
        loop_factory("trio")


@pytest.mark.parametrize("choice, expected", [(None, "uvloop"), ("asyncio", "asyncio")])
def test_serve_says_which_loop_it_runs_on(tmp_path, choice, expected):
    policy = {"version": 1, "name": "loop",
              "upstreams": {"openai": {"provider": "openai", "baseUrl": "http://127.0.0.1:9/v1"}},
              "guards": {"access": {}}}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    port = free_port()
    env = {**os.environ, "AIFW_AUDIT_DIR": str(tmp_path / "audit")}
    env.pop("AIFW_EVENT_LOOP", None)
    if choice:
        env["AIFW_EVENT_LOOP"] = choice
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--policy", str(path),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err = stop_once_healthy(proc, port)
    assert proc.returncode == 0, err
    assert f"event loop {expected}" in err, err
