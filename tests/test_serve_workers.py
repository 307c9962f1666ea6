"""`aifw serve --workers N`: refused where per-process state would weaken the policy, else served."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _policy(tmp_path: Path, **extra) -> Path:
    policy = {"version": 1, "name": "workers",
              "upstreams": {"openai": {"provider": "openai", "baseUrl": "http://127.0.0.1:9/v1"}},
              "guards": {"access": {}}, **extra}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _serve(path: Path, *args: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "AIFW_AUDIT_DIR": str(tmp_path / "audit")}
    return subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--policy", str(path), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_in_memory_limits_with_several_workers_are_refused(tmp_path):
    path = _policy(tmp_path, audit={"sink": "stdout"}, guards={"ratelimit": {
        "limits": [{"name": "r", "scope": "user", "requests": "10/second"}]}})
    proc = _serve(path, "--workers", "2", "--port", "0", tmp_path=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "in-memory rate-limit backend" in err and "redis" in err


def test_file_audit_sink_with_several_workers_is_refused(tmp_path):
    proc = _serve(_policy(tmp_path), "--workers", "2", "--port", "0", tmp_path=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "sink: stdout" in err


def test_two_workers_share_the_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _serve(_policy(tmp_path, audit={"sink": "stdout"}), "--workers", "2", "--port", str(port),
                  tmp_path=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "workers did not come up"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.count("aifw listening on") == 2, err
