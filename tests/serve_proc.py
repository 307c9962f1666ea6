"""`aifw serve` as a real subprocess (for signals, SIGKILL and --workers), fronting the fake
provider that runs in the test's event loop. Poll with async sleeps only: a blocking wait would
stall the fake provider in the same loop."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = 60) -> None:
    """Block until a synchronous test's `aifw serve` answers /healthz (its stderr on death)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                assert resp.status == 200
                return
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "aifw serve did not come up"
            time.sleep(0.1)


def stop_once_healthy(proc: subprocess.Popen, port: int) -> str:
    """Wait until a synchronous test's `aifw serve` answers, then stop it with SIGTERM (also when
    it never came up); its stderr."""
    try:
        wait_healthy(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    return err


def policy_file(tmp_path: Path, fake, *, audit: dict | None = None, guards: dict | None = None,
                name: str = "policy.yaml") -> Path:
    policy = {
        "version": 1, "name": "served",
        "upstreams": {"openai": {"provider": "openai", "baseUrl": fake.openai_url}},
        "routes": [{"models": ["*"], "upstream": "openai"}],
        "identity": {"mode": "passthrough", "fingerprintSecret": "test-secret"},
        "guards": guards or {"access": {}},
        "audit": {"path": str(tmp_path / "audit"), "flushInterval": 0.05, **(audit or {})},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(policy))
    return path


class Served:
    def __init__(self, policy: Path, *args: str, port: int | None = None, env: dict | None = None,
                 stdout: Path | None = None):
        """``stdout``: a file for the process's standard output (a stdout audit sink can write
        more than a pipe holds before the test reads it)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", "--policy", str(policy), "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            cwd=ROOT, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE if stdout is None else stdout.open("wb"),
            stderr=subprocess.PIPE, text=True)

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc.poll() is None, self.proc.stderr.read()
                try:
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "aifw serve did not come up"
                await asyncio.sleep(0.1)

    async def chat(self, text: str = "hello", **headers: str) -> int:
        """One request on a fresh connection (so SO_REUSEPORT can pick any worker)."""
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.post(self.url + "/v1/chat/completions", json=body,
                                 headers={"Authorization": "Bearer sk-test", **headers}) as resp:
                await resp.read()
                return resp.status

    async def wait(self, timeout: float = 60) -> tuple[int, str, str]:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "aifw serve did not exit"
            await asyncio.sleep(0.05)
        out, err = self.proc.communicate()
        return self.proc.returncode, out, err

    async def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return await self.wait()


async def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
