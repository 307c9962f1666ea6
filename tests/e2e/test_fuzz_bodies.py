"""Fuzzed bodies through the real proxy on every inspected endpoint: the answer is a documented
4xx from the proxy or the request is forwarded; never a 5xx of the proxy's own, never a crash."""
from __future__ import annotations

import asyncio
import json
import socket
import threading

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.app import create_app
from proxy.reload import PolicyHolder
from proxy.runtime import attach_subsystems
from proxy.server import make_runner
from tests.conftest import minimal_policy
from tests.fakes.provider import FakeState, make_provider_app
from tests.parsing.test_request_shapes import _BODY

pytestmark = pytest.mark.timeout(600)

ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
             "/openai/deployments/gpt-4o/chat/completions"]
# the proxy's own refusals a malformed body may get (README wire contract)
DOCUMENTED = {(400, "invalid_json"), (400, "invalid_request"), (400, "content_filter"), (400, "model_not_allowed"),
              (403, "model_not_allowed"), (415, "unsupported_media_type")}


class LiveProxy:
    """A fake provider and a proxy on their own event loop in a thread, so that hypothesis (which
    drives plain functions) can send them requests."""

    def __init__(self, tmp) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.state = FakeState()
        self.tmp = tmp
        self.run(self._start())

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _site(self, app_runner) -> str:
        await app_runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(app_runner, sock).start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def _start(self) -> None:
        self.fake_runner = web.AppRunner(make_provider_app(self.state), access_log=None, shutdown_timeout=0.5)
        fake_url = await self._site(self.fake_runner)
        text = minimal_policy(guards={"access": {}, "injection": {}}, audit={"path": str(self.tmp / "audit")})
        text = text.replace("${FAKE_OPENAI_URL}", fake_url + "/v1").replace("${FAKE_URL}", fake_url)
        (self.tmp / "policy.yaml").write_text(text)
        holder = PolicyHolder(str(self.tmp / "policy.yaml"), env={})
        attach_subsystems(holder)
        self.runner = make_runner(create_app(holder), holder.policy, max_shutdown_timeout=2.0)
        self.url = await self._site(self.runner)
        self.session = aiohttp.ClientSession()

    async def _post(self, path: str, raw: bytes) -> tuple[int, bytes]:
        headers = {"content-type": "application/json", "authorization": "Bearer sk-test"}
        if "deployments" in path:
            headers = {"content-type": "application/json", "api-key": "sk-test"}
        async with self.session.post(self.url + path, data=raw, headers=headers) as r:
            return r.status, await r.read()

    def post(self, path: str, raw: bytes) -> tuple[int, bytes]:
        return self.run(self._post(path, raw))

    def close(self) -> None:
        async def stop():
            await self.session.close()
            await self.runner.cleanup()
            await self.fake_runner.cleanup()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    proxy = LiveProxy(tmp_path_factory.mktemp("fuzz"))
    yield proxy
    proxy.close()


def _check(live: LiveProxy, path: str, raw: bytes) -> None:
    before = len(live.state.requests)
    status, body = live.post(path, raw)
    forwarded = len(live.state.requests) > before
    if forwarded:
        return   # the upstream's answer, whatever it is, passes through
    error = orjson.loads(body)["error"]
    assert (status, error["code"]) in DOCUMENTED, (path, raw[:200], status, body[:300])


def _dumps(value) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:   # integers beyond 64 bits
        return json.dumps(value).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(ENDPOINTS), body=_BODY, model=st.sampled_from([None, "gpt-4o-mini", "claude-3-haiku"]))
def test_fuzz_shaped_bodies(live, path, body, model):
    if model and isinstance(body, dict):
        body = {**body, "model": model}
    _check(live, path, _dumps(body))


_RAW = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"messages"', b'"content"', b":", b",", b'"x"', b"1",
                              b"null", b"\\u003a", b'"\\ud800"', b"\xff", b"\xef\xbb\xbf", b"NaN", b"1e999",
                              b"12345678901234567890123"]), max_size=30).map(b"".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(ENDPOINTS), raw=_RAW)
def test_fuzz_raw_bodies(live, path, raw):
    _check(live, path, raw)
