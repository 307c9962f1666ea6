"""A private redis-server for tests: a free port on 127.0.0.1, a temp dir, no persistence.

Never the shared server on 6379. When no redis-server binary can be found the tests that need
it are skipped, except under CI=true, where they fail (CI must install redis-server).
Use as a fixture (``redis_server`` / ``redis_url`` in tests/limits/conftest.py) or directly::

    with RedisServer() as server:
        server.url            # redis://127.0.0.1:PORT/0
        server.stop(); server.start()   # same port: a restart clients can reconnect to
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ENV_BINARY = "AIFW_REDIS_SERVER"


def find_binary() -> str | None:
    candidates = [os.environ.get(ENV_BINARY), shutil.which("redis-server"),
                  "/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def require_binary() -> str:
    path = find_binary()
    if path is None:
        message = f"redis-server not found (install it, or set {ENV_BINARY})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, binary: str | None = None, port: int | None = None,
                 password: str | None = None) -> None:
        self.binary = binary or require_binary()
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="aifw-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n" if not self.password else
                              f"AUTH {self.password}\r\nPING\r\n".encode())
                    if b"PONG" in s.recv(64) or b"PONG" in s.recv(64):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
