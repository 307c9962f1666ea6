"""The breaker state machine: the per-process store and the Redis script must agree, step by step."""
from __future__ import annotations

import pytest

from proxy.limits.config import RedisSettings
from proxy.resilience.breaker import CLOSED, HALF_OPEN, OPEN, MemoryBreakers
from proxy.resilience.config import BreakerPolicy, compile_breaker
from proxy.resilience.redis_breaker import RedisBreakers
from proxy.services import Services

T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    if request.param == "memory":
        yield MemoryBreakers()
        return
    url = request.getfixturevalue("redis_url")
    s = RedisBreakers(RedisSettings(url=url, timeout=5, connect_timeout=5), MemoryBreakers(), Services())
    yield s
    await s.close()


async def test_consecutive_failures_open_then_cool_down_then_probe_closes(store):
    policy = BreakerPolicy(failures=3, cool_down=10.0)
    for i in range(2):
        assert (await store.allow("p", policy, T0 + i)).allowed
        await store.record("p", policy, False, False, T0 + i)
    await store.record("p", policy, True, False, T0 + 2)          # a success resets the count
    for i in range(3):
        assert (await store.allow("p", policy, T0 + 3)).allowed
        state = await store.record("p", policy, False, False, T0 + 3)
    assert state == OPEN and store.view("p", T0 + 3) == OPEN
    refused = await store.allow("p", policy, T0 + 5)
    assert not refused.allowed and refused.retry_after == pytest.approx(8.0, abs=0.01)
    assert store.view("p", T0 + 13) == HALF_OPEN                   # cool-down over
    probe = await store.allow("p", policy, T0 + 13)
    assert probe.allowed and probe.probe
    assert not (await store.allow("p", policy, T0 + 13.1)).allowed  # one probe at a time
    assert await store.record("p", policy, True, True, T0 + 14) == CLOSED
    assert (await store.allow("p", policy, T0 + 14)).allowed


async def test_failed_probe_opens_again_and_a_lost_probe_frees_its_slot(store):
    policy = BreakerPolicy(failures=1, cool_down=5.0)
    await store.record("p", policy, False, False, T0)
    assert (await store.allow("p", policy, T0 + 5)).probe
    assert await store.record("p", policy, False, True, T0 + 6) == OPEN
    assert not (await store.allow("p", policy, T0 + 10)).allowed
    assert (await store.allow("p", policy, T0 + 11)).probe          # its answer never comes back
    assert not (await store.allow("p", policy, T0 + 12)).allowed
    assert (await store.allow("p", policy, T0 + 16.5)).probe        # the lease ran out


async def test_error_rate_over_a_window(store):
    policy = BreakerPolicy(failures=100, error_rate=0.5, min_requests=4, window=60.0)
    outcomes = [True, False, True, False]                            # 2 of 4 failed: opens
    for i, ok in enumerate(outcomes[:-1]):
        assert await store.record("p", policy, ok, False, T0 + i) == CLOSED
    assert await store.record("p", policy, outcomes[-1], False, T0 + 3) == OPEN
    other = BreakerPolicy(failures=100, error_rate=0.5, min_requests=4, window=2.0)
    for i, ok in enumerate([False, True, False, True, True]):        # the window restarts at t=2
        assert await store.record("q", other, ok, False, T0 + i) == CLOSED


async def test_upstreams_have_separate_breakers(store):
    policy = BreakerPolicy(failures=1)
    await store.record("a", policy, False, False, T0)
    assert store.view("a", T0) == OPEN and store.view("b", T0) == CLOSED
    assert (await store.allow("b", policy, T0)).allowed


def test_upstream_breaker_merges_over_policy_default():
    base = compile_breaker({"failures": 3, "coolDown": "1m"}, None)
    assert compile_breaker({"probes": 2}, base) == BreakerPolicy(failures=3, cool_down=60.0, probes=2)
    assert compile_breaker({"enabled": False}, base) is None
    assert compile_breaker(None, base) is base and compile_breaker(None, None) is None


async def test_redis_outage_falls_back_to_process_breakers(redis_server):
    local = MemoryBreakers()
    services = Services()
    s = RedisBreakers(RedisSettings(url="redis://127.0.0.1:1/0", timeout=0.2, connect_timeout=0.2), local, services)
    policy = BreakerPolicy(failures=1)
    await s.record("p", policy, False, False, T0)
    assert local.view("p", T0) == OPEN and not (await s.allow("p", policy, T0)).allowed
    assert "unreachable" in services.health["resilience"]
    await s.close()
