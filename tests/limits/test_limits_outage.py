"""Redis killed and restarted mid-test, under both failure modes."""
from __future__ import annotations

import asyncio

import pytest

from .helpers import make_exchange
from proxy.guards.base import CompileContext
from proxy.guards.ratelimit import compile_guard
from proxy.limits.backend import BackendUnavailable
from proxy.pipeline import run_request
from proxy.services import Services


def redis_guard(server, clock, failure_mode, services):
    services.set("ratelimit.clock", clock)
    section = {"backend": "redis", "redis": {"url": server.url, "retryIntervalMs": 50, "timeoutMs": 500},
               "limits": [{"name": "rpm", "requests": "2/minute"}, {"name": "tpm", "tokens": "1000000/minute"}]}
    guard = compile_guard(section, CompileContext(policy_dir=".", services=services))
    guard.failure_mode = failure_mode
    return guard


async def wait_healthy(services, timeout=10.0):
    # waits for the background reconnect, not for a limit window
    deadline = asyncio.get_running_loop().time() + timeout
    while "ratelimit" in services.health:
        assert asyncio.get_running_loop().time() < deadline, "limiter did not reconnect"
        await asyncio.sleep(0.02)


async def test_closed_fails_with_503_then_reconnects(private_redis, clock):
    services = Services()
    guard = redis_guard(private_redis, clock, "closed", services)
    try:
        assert await guard.on_request(make_exchange()) is None
        private_redis.stop()
        ex = make_exchange()
        with pytest.raises(BackendUnavailable):
            await guard.on_request(ex)
        assert any("unreachable" in r for r in ex.uninspected)
        assert "ratelimit" in services.health
        # through the core's pipeline the fault becomes 503 guardrail_unavailable
        scope = type("Scope", (), {"request_guards": (guard,)})()
        ex2 = make_exchange()
        ex2.scope = scope
        verdict = await run_request(ex2)
        assert (verdict.status, verdict.code) == (503, "guardrail_unavailable")
        private_redis.start()
        await wait_healthy(services)
        ok = make_exchange()
        assert await guard.on_request(ok) is None
        assert not ok.uninspected
    finally:
        await services.close()


async def test_open_falls_back_to_process_limits_then_returns(private_redis, clock):
    services = Services()
    guard = redis_guard(private_redis, clock, "open", services)
    try:
        before = make_exchange()
        assert await guard.on_request(before) is None
        private_redis.stop()
        fallback = [make_exchange() for _ in range(3)]
        verdicts = [await guard.on_request(ex) for ex in fallback]
        # the per-process fallback still enforces the limit (its counters start empty)
        assert verdicts[:2] == [None, None] and verdicts[2].code == "rate_limit_exceeded"
        assert all(any("fallback" in r for r in ex.uninspected) for ex in fallback)
        assert any(f.rule_ids == ("ratelimit.fallback",) for f in fallback[0].findings)
        assert services.health["ratelimit"].startswith("redis unreachable")
        # settling a reservation Redis holds cannot happen now: recorded, not raised
        before.upstream_started, before.status = 1.0, 200
        await guard.on_complete(before)
        assert any("not settled" in r for r in before.uninspected)
        private_redis.start()
        await wait_healthy(services)
        back = make_exchange()
        assert await guard.on_request(back) is None
        assert not back.uninspected and not back.findings
    finally:
        await services.close()


async def test_reload_shares_the_backend(private_redis, clock):
    services = Services()
    try:
        a = redis_guard(private_redis, clock, "closed", services)
        b = redis_guard(private_redis, clock, "closed", services)
        assert a.limiter.primary is b.limiter.primary
        assert await a.on_request(make_exchange()) is None
        assert await b.on_request(make_exchange()) is None
        assert (await a.on_request(make_exchange())).code == "rate_limit_exceeded"
    finally:
        await services.close()


async def test_every_waiter_of_a_batch_learns_of_the_outage(private_redis, clock):
    from proxy.limits.config import RedisSettings, compile_limits
    from proxy.limits.charges import build_charges
    from proxy.limits.redis_backend import RedisBackend
    from proxy.exchange import Identity
    services = Services()
    backend = RedisBackend(RedisSettings(url=private_redis.url, retry_interval=0.05), services)
    try:
        cfg = compile_limits({"limits": [{"name": "rpm", "requests": "100/minute"}]})
        chs = build_charges(cfg, Identity(key_id="k"), "gpt-4o", (None, None), 0, clock())
        assert (await backend.reserve(chs, "a", clock())).allowed
        private_redis.stop()
        results = await asyncio.gather(*(backend.reserve(chs, f"m{i}", clock()) for i in range(10)),
                                       return_exceptions=True)
        assert all(isinstance(r, BackendUnavailable) for r in results)
        private_redis.start()
        await wait_healthy(services)
        outs = await asyncio.gather(*(backend.reserve(chs, f"n{i}", clock()) for i in range(10)))
        assert all(o.allowed for o in outs)
    finally:
        await backend.close()
