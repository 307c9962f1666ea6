"""A fake operator guard hook (proxy/hooks/contract.py): an aiohttp server whose answer a test
scripts. ``hook.answer`` is a function of the received contract body returning what to send:
a dict (JSON), bytes (sent as they are: garbage), or an int (that HTTP status, empty body);
``hook.delay`` (seconds) is slept before answering, to make aifw's timeout fire. Every received
body and its headers are kept in ``hook.calls``; ``hook.peak`` is the most calls in flight at
once (for the concurrency cap). ``add_hook_routes`` puts an always-allowing hook on the fake
provider's app (``/hook/allow``), for the benchmark."""
from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import orjson
from aiohttp import web


@dataclass
class FakeHook:
    url: str = ""
    answer: Callable[[dict], Any] = lambda body: {"action": "allow"}
    delay: float = 0.0
    calls: list[tuple[dict, dict]] = field(default_factory=list)    # (body, headers)
    in_flight: int = 0
    peak: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.calls.append((body, dict(request.headers)))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            out = self.answer(body)
        finally:
            self.in_flight -= 1
        if isinstance(out, int):
            return web.Response(status=out)
        if isinstance(out, bytes):
            return web.Response(body=out, content_type="application/json")
        return web.json_response(out)

    @property
    def bodies(self) -> list[dict]:
        return [b for b, _ in self.calls]


async def allow_everything(request: web.Request) -> web.Response:
    """An operator hook that reads the contract body and allows: the benchmark's hook."""
    await request.read()
    return web.json_response({"action": "allow"})


def add_hook_routes(app: web.Application) -> None:
    app.router.add_post("/hook/allow", allow_everything)


@contextlib.asynccontextmanager
async def run_fake_hook(path: str = "/v1/check") -> AsyncIterator[FakeHook]:
    hook = FakeHook()
    app = web.Application()
    app.router.add_post(path, hook.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    hook.url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    try:
        yield hook
    finally:
        await runner.cleanup()
