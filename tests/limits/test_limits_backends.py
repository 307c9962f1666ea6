"""The two backends must count identically: every test runs against memory and a real Redis."""
from __future__ import annotations

import asyncio
import math
import socket

import pytest
import redis.asyncio as aioredis

from proxy.exchange import Identity
from proxy.limits.backend import NEVER
from proxy.limits.charges import build_charges
from proxy.limits.config import RedisSettings, compile_limits
from proxy.limits.memory import MemoryBackend
from proxy.limits.redis_backend import RedisBackend

ALICE = Identity(key_id="k1", user="alice", groups=("eng",))
BOB = Identity(key_id="k2", user="bob", groups=("eng",))
ROUTE = ("chat.completions", "/v1/chat/completions")


@pytest.fixture(params=["memory", "redis"])
async def backend(request):
    if request.param == "memory":
        yield MemoryBackend()
        return
    url = request.getfixturevalue("redis_url")
    b = RedisBackend(RedisSettings(url=url, timeout=5, connect_timeout=5))
    yield b
    await b.close()


def config(*limits, **extra):
    return compile_limits({"limits": list(limits), **extra})


def charges(cfg, tokens=0, who=ALICE, now=0.0, model="gpt-4o"):
    return build_charges(cfg, who, model, ROUTE, tokens, now)


async def test_request_rate_refuses_then_refills(backend, clock):
    cfg = config({"name": "rps", "requests": "3/second"})
    for i in range(3):
        out = await backend.reserve(charges(cfg, now=clock()), f"m{i}", clock())
        assert out.allowed and out.items[0].remaining == 2 - i
    out = await backend.reserve(charges(cfg, now=clock()), "m4", clock())
    assert not out.allowed
    assert out.items[0].retry_after == pytest.approx(1 / 3, abs=0.002)
    clock.advance(0.34)
    assert (await backend.reserve(charges(cfg, now=clock()), "m5", clock())).allowed
    assert not (await backend.reserve(charges(cfg, now=clock()), "m6", clock())).allowed
    clock.advance(1.0)   # a full window later the whole burst is back
    outs = [await backend.reserve(charges(cfg, now=clock()), f"n{i}", clock()) for i in range(4)]
    assert [o.allowed for o in outs] == [True, True, True, False]


async def test_counters_are_per_user(backend, clock):
    cfg = config({"name": "u", "requests": "1/minute"})
    assert (await backend.reserve(charges(cfg, who=ALICE), "a", clock())).allowed
    assert (await backend.reserve(charges(cfg, who=BOB), "b", clock())).allowed
    assert not (await backend.reserve(charges(cfg, who=ALICE), "c", clock())).allowed


@pytest.mark.parametrize("kind", ["requests", "budget"])
async def test_exact_admission_under_concurrency(backend, clock, kind):
    spec = {"requests": "10/hour"} if kind == "requests" else {"budget": "10/day"}
    cfg = config({"name": "ten", "scope": "global", **spec})
    cost = 1
    chs = charges(cfg, tokens=cost, now=clock())
    outs = await asyncio.gather(*(backend.reserve(chs, f"m{i}", clock()) for i in range(100)))
    assert sum(o.allowed for o in outs) == 10


async def test_concurrency_slots_exact_and_released(backend, clock):
    cfg = config({"name": "inflight", "scope": "key", "concurrency": 3})
    chs = charges(cfg, now=clock())
    outs = await asyncio.gather(*(backend.reserve(chs, f"m{i}", clock()) for i in range(50)))
    winners = [f"m{i}" for i, o in enumerate(outs) if o.allowed]
    assert len(winners) == 3
    assert not (await backend.reserve(chs, "late", clock())).allowed
    await backend.settle(chs, [0], winners[0], clock())
    assert (await backend.reserve(chs, "late", clock())).allowed


async def test_concurrency_lease_frees_a_vanished_holder(backend, clock):
    cfg = config({"name": "inflight", "concurrency": 1}, concurrencyLeaseSeconds=30)
    chs = charges(cfg, now=clock())
    assert (await backend.reserve(chs, "crashed", clock())).allowed
    assert not (await backend.reserve(chs, "next", clock())).allowed
    clock.advance(31)
    assert (await backend.reserve(chs, "next", clock())).allowed


async def test_all_or_nothing(backend, clock):
    cfg = config({"name": "wide", "requests": "5/minute"}, {"name": "narrow", "scope": "global", "requests": "1/minute"})
    assert (await backend.reserve(charges(cfg, who=ALICE), "a", clock())).allowed
    out = await backend.reserve(charges(cfg, who=BOB), "b", clock())
    assert not out.allowed and out.items[0].allowed and not out.items[1].allowed
    # bob's own counter was not charged by the refused request
    cfg_wide = config({"name": "wide", "requests": "5/minute"})
    out = await backend.reserve(charges(cfg_wide, who=BOB), "c", clock())
    assert out.items[0].remaining == 4


async def test_token_rate_settlement_refunds_and_overcharges(backend, clock):
    cfg = config({"name": "tpm", "tokens": "1000/minute"})
    chs = charges(cfg, tokens=600, now=clock())
    assert (await backend.reserve(chs, "a", clock())).allowed
    assert not (await backend.reserve(charges(cfg, tokens=600), "b", clock())).allowed
    await backend.settle(chs, [100 - 600], "a", clock())        # it used only 100
    out = await backend.reserve(charges(cfg, tokens=600), "c", clock())
    assert out.allowed and out.items[0].remaining == 300
    # an answer longer than reserved is charged after the fact: the bucket goes into debt
    await backend.settle(chs, [500], "c", clock())
    out = await backend.reserve(charges(cfg, tokens=1), "d", clock())
    assert not out.allowed
    # 1200 of 1000 used: 201 tokens must refill, at 60ms each
    assert out.items[0].retry_after == pytest.approx(12.06, abs=0.002)


async def test_refund_cannot_overfill(backend, clock):
    cfg = config({"name": "tpm", "tokens": "100/minute"})
    chs = charges(cfg, tokens=50)
    assert (await backend.reserve(chs, "a", clock())).allowed
    clock.advance(120)
    await backend.settle(chs, [-50], "a", clock())
    out = await backend.reserve(charges(cfg, tokens=100), "b", clock())
    assert out.allowed and out.items[0].remaining == 0


async def test_budget_is_spent_until_the_calendar_window_ends(backend, clock):
    cfg = config({"name": "daily", "budget": "1000/day"})
    clock.set(1_750_032_000.0 - 3600)   # 23:00 UTC
    chs = charges(cfg, tokens=800, now=clock())
    assert (await backend.reserve(chs, "a", clock())).allowed
    out = await backend.reserve(charges(cfg, tokens=300, now=clock()), "b", clock())
    assert not out.allowed
    assert out.items[0].remaining == 200
    assert out.items[0].retry_after == pytest.approx(3600, abs=0.01)
    await backend.settle(chs, [-600], "a", clock())            # used 200 of 800
    assert (await backend.reserve(charges(cfg, tokens=300, now=clock()), "c", clock())).allowed
    clock.advance(3600)                                         # midnight: a new day, a new budget
    out = await backend.reserve(charges(cfg, tokens=1000, now=clock()), "d", clock())
    assert out.allowed and out.items[0].remaining == 0


async def test_request_larger_than_the_limit_never_passes(backend, clock):
    cfg = config({"name": "tpm", "tokens": "100/minute"}, {"name": "b", "budget": "50/day"})
    out = await backend.reserve(charges(cfg, tokens=120, now=clock()), "a", clock())
    assert not out.allowed
    assert out.items[0].retry_after == NEVER and out.items[1].retry_after == NEVER


async def test_reset_and_remaining_report(backend, clock):
    cfg = config({"name": "rpm", "requests": "60/minute"})
    out = None
    for i in range(6):
        out = await backend.reserve(charges(cfg), f"m{i}", clock())
    assert out.items[0].remaining == 54
    assert out.items[0].reset == pytest.approx(6.0, abs=0.002)   # 6 used = 6s to refill


async def test_redis_keys_share_a_hash_tag_and_all_expire(redis_url, clock):
    cfg = config({"name": "rpm", "requests": "60/minute", "tokens": "1000/minute", "budget": "5000/month",
                  "concurrency": 2})
    backend = RedisBackend(RedisSettings(url=redis_url, timeout=5, connect_timeout=5))
    try:
        chs = charges(cfg, tokens=10, now=clock())
        assert (await backend.reserve(chs, "m1", clock())).allowed
        client = aioredis.Redis.from_url(redis_url)
        keys = await client.keys("*")
        assert len(keys) == 4
        for key in keys:
            assert key.startswith(b"{aifw}:rl:")
            assert await client.pttl(key) > 0
        await client.aclose()
    finally:
        await backend.close()


async def test_two_limiters_share_one_redis_limit(redis_url, clock):
    cfg = config({"name": "shared", "scope": "global", "requests": "20/minute"})
    a = RedisBackend(RedisSettings(url=redis_url, timeout=5, connect_timeout=5))
    b = RedisBackend(RedisSettings(url=redis_url, timeout=5, connect_timeout=5))
    try:
        chs = charges(cfg, now=clock())
        outs = await asyncio.gather(*(
            (a if i % 2 else b).reserve(chs, f"m{i}", clock()) for i in range(60)))
        assert sum(o.allowed for o in outs) == 20
        # one after the other, each sees what the other spent
        clock.advance(60)
        seq = [await (a if i % 2 else b).reserve(chs, f"s{i}", clock()) for i in range(22)]
        assert [o.allowed for o in seq] == [True] * 20 + [False, False]
        assert seq[19].items[0].remaining == 0
    finally:
        await a.close()
        await b.close()


async def test_script_reloaded_after_redis_forgets_it(redis_url, clock):
    cfg = config({"name": "rpm", "requests": "60/minute"})
    backend = RedisBackend(RedisSettings(url=redis_url, timeout=5, connect_timeout=5))
    try:
        assert (await backend.reserve(charges(cfg), "a", clock())).allowed
        await backend.client.script_flush()
        out = await backend.reserve(charges(cfg), "b", clock())
        assert out.allowed and out.items[0].remaining == 58
    finally:
        await backend.close()


async def test_redis_password(clock):
    from .redis_server import RedisServer
    with RedisServer(password="s3cret") as server:
        noauth = RedisBackend(RedisSettings(url=f"redis://127.0.0.1:{server.port}/0"))
        authed = RedisBackend(RedisSettings(url=f"redis://127.0.0.1:{server.port}/0", password="s3cret"))
        try:
            cfg = config({"name": "rpm", "requests": "60/minute"})
            with pytest.raises(Exception) as info:
                await noauth.reserve(charges(cfg), "a", clock())
            assert "s3cret" not in str(info.value)
            assert (await authed.reserve(charges(cfg), "b", clock())).allowed
        finally:
            await noauth.close()
            await authed.close()


def test_memory_prune_drops_idle_counters(clock):
    backend = MemoryBackend()
    cfg = config({"name": "rpm", "requests": "60/minute", "budget": "100/day", "concurrency": 1})
    for i in range(50):
        who = Identity(key_id=f"k{i}", user=f"u{i}")
        chs = charges(cfg, tokens=1, who=who, now=clock())
        assert backend.check(chs, "m", clock()).allowed
        backend.adjust(chs, [0, 0, 0], "m", clock())
    assert backend.size() == 100          # rates and budgets; released slots are gone already
    clock.advance(86400 * 2)
    backend.prune(clock())
    assert backend.size() == 0
    assert not math.isnan(clock())


async def test_spend_budget_counts_micro_dollars_and_settles(backend, clock):
    cfg = config({"name": "usd", "scope": "user", "spend": "1USD/day"})
    (lim,) = cfg.limits
    assert lim.kind == "spend" and lim.amount == 1_000_000
    first = charges(cfg, now=clock())
    first[0].cost = 600_000                                   # reserved: the most it may cost
    assert (await backend.reserve(first, "a", clock())).allowed
    second = charges(cfg, now=clock())
    second[0].cost = 600_000
    out = await backend.reserve(second, "b", clock())
    assert not out.allowed and out.items[0].remaining == 400_000
    await backend.settle(first, [50_000 - 600_000], "a", clock())   # it cost 5 cents
    assert (await backend.reserve(second, "b", clock())).allowed
    third = charges(cfg, now=clock())
    third[0].cost = 2_000_000
    out = await backend.reserve(third, "c", clock())
    assert not out.allowed and math.isinf(out.items[0].retry_after)   # more than the budget itself


async def test_prime_connects_and_loads_scripts_before_traffic(redis_url):
    """Services.prime at start: the first request pays no connect or script load inside its
    command timeout (a worker answered 503 to its first request when it did)."""
    from proxy.limits.redis_scripts import RESERVE, SETTLE
    from proxy.services import Services
    services = Services()
    backend = services.set("ratelimit.redis", RedisBackend(RedisSettings(url=redis_url, timeout=5, connect_timeout=5)))
    await services.prime()
    try:
        assert set(backend._sha) == {RESERVE, SETTLE} and not backend.down
    finally:
        await backend.close()


async def test_prime_marks_an_unreachable_redis_down_without_raising():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]            # nothing listens there
    backend = RedisBackend(RedisSettings(url=f"redis://127.0.0.1:{port}/0", timeout=0.5, connect_timeout=0.5))
    await backend.prime()
    try:
        assert backend.down and backend.outages == 1
    finally:
        await backend.close()
