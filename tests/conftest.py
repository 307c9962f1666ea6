"""Shared fixtures: a fake provider and an aifw proxy running in the test's event loop.

    async def test_x(fake, start_proxy):
        proxy = await start_proxy(POLICY_YAML)            # policy text; ${FAKE_URL} etc. filled in
        client = openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-test")

``start_proxy(policy_text, env=None, files=None)`` writes the policy (and any extra ``files``:
name -> text) into a temp dir, interpolates ``${VAR}`` from ``env`` plus FAKE_URL (the fake's
root) and FAKE_OPENAI_URL (root + /v1), and returns a ``RunningProxy`` with ``url``,
``openai_url``, ``holder`` (the PolicyHolder), ``policy_path`` and ``dir``.
``minimal_policy(**overrides)`` builds a small YAML policy pointing at the fake.
"""
from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from hypothesis import settings as hypothesis_settings

from proxy.app import create_app
from proxy.reload import PolicyHolder
from proxy.runtime import attach_subsystems
from proxy.server import make_runner
from tests.fakes.provider import run_fake_provider

# CI replays the same examples on every run, so a merge is judged on what it changed, not on
# the examples a random seed happens to draw; local runs keep exploring new ones (and keep
# what they find in .hypothesis/).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


def pytest_configure(config) -> None:
    # Compiled rule sets go to a cache directory of this session, not the user's ~/.cache
    # (proxy/precompiled.py reads the variable when it loads a rule file, not at import).
    os.environ.setdefault("AIFW_CACHE_DIR", tempfile.mkdtemp(prefix="aifw-test-cache-"))


@dataclass
class RunningProxy:
    url: str
    openai_url: str
    holder: PolicyHolder
    policy_path: str
    dir: Path
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


# lets tests read /readyz detail (tests/e2e/helpers.readiness)
READINESS_TOKEN = "test-readiness-token-0123456789"


def minimal_policy(**overrides) -> str:
    policy = {
        "version": 1,
        "name": "test",
        "server": {"readinessToken": READINESS_TOKEN},
        "upstreams": {
            "openai": {"provider": "openai", "baseUrl": "${FAKE_OPENAI_URL}",
                       "timeouts": {"connect": "2s", "firstByte": "5s", "streamIdle": "5s", "total": "10s"}},
            "anthropic": {"provider": "anthropic", "baseUrl": "${FAKE_URL}",
                          "timeouts": {"connect": "2s", "firstByte": "5s", "streamIdle": "5s", "total": "10s"}},
        },
        "routes": [{"models": ["claude-*"], "upstream": "anthropic"}, {"models": ["*"], "upstream": "openai"}],
        "identity": {"mode": "passthrough", "fingerprintSecret": "test-secret"},
        "guards": {"access": {}},
    }
    for key, value in overrides.items():
        policy[key] = value
    return yaml.safe_dump(policy, sort_keys=False)


@pytest.fixture
def restore_logging():
    """For tests that call proxy.telemetry.logs.setup_logging: undo it afterwards."""
    yield
    import logging
    import structlog
    root = logging.getLogger()
    for h in [h for h in root.handlers if h.get_name() == "aifw"]:
        root.removeHandler(h)
    structlog.reset_defaults()


@pytest.fixture
def log_stream(restore_logging):
    """The real logging setup (JSON, DEBUG) writing into a StringIO."""
    import gc
    import io
    import logging
    from proxy.telemetry.logs import setup_logging
    # Earlier tests' garbage (SDK clients never closed, whose loop is gone) logs asyncio errors
    # when collected: collect it now, so the stream holds this test's lines only.
    gc.collect()
    stream = io.StringIO()
    setup_logging("json", stream, level=logging.DEBUG)
    return stream


@pytest.fixture
async def fake():
    async with run_fake_provider() as provider:
        yield provider


@pytest.fixture
async def start_proxy(fake, tmp_path, monkeypatch):
    running: list[RunningProxy] = []
    # the audit log's default directory comes from the process environment: keep it per test
    monkeypatch.setenv("AIFW_AUDIT_DIR", str(tmp_path / "audit"))

    async def start(policy_text: str | None = None, env: dict | None = None,
                    files: dict | None = None, name: str = "policy.yaml") -> RunningProxy:
        policy_text = policy_text if policy_text is not None else minimal_policy()
        for fname, text in (files or {}).items():
            (tmp_path / fname).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / fname).write_text(text)
        path = tmp_path / name
        path.write_text(policy_text)
        full_env = dict(os.environ)
        full_env.update({"FAKE_URL": fake.url, "FAKE_OPENAI_URL": fake.openai_url})
        full_env.update(env or {})
        holder = PolicyHolder(str(path), env=full_env)
        attach_subsystems(holder)
        app = create_app(holder)
        runner = make_runner(app, holder.policy, max_shutdown_timeout=2.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        proxy = RunningProxy(url, url + "/v1", holder, str(path), tmp_path, runner)
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        await proxy.stop()
