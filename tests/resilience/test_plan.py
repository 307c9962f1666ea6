"""The attempt plan without sockets: order, repeats, waits, deadline, budget, open breakers."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from proxy.errors import ProxyError
from proxy.resilience.breaker import MemoryBreakers
from proxy.resilience.config import BreakerPolicy, RetryPolicy
from proxy.resilience.plan import AttemptPlan
from proxy.resilience.retry import RetryBudget, exception_failure, status_failure
from proxy.resilience.routes import Route, Target
from proxy.globs import GlobSet


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def up(name, breaker=None):
    return SimpleNamespace(name=name, breaker=breaker, dialect="openai",
                           timeouts=SimpleNamespace(connect=2.0, first_byte=10.0))


def plan(targets, retry=RetryPolicy(), breakers=None, budget=None):
    clock = Clock()
    runtime = SimpleNamespace(breakers=breakers or MemoryBreakers(), budget=budget or RetryBudget(), now=clock)
    ex = SimpleNamespace(model="gpt-4o", attempts=[], body={"model": "gpt-4o"}, upstream=None, upstream_model=None)
    route = Route(GlobSet.of(["*"]), tuple(Target(t) for t in targets), retry)
    return AttemptPlan(ex, route, runtime, clock=clock, sleep=clock.sleep), ex, clock


async def run(p, outcomes):
    """Drive the plan: each outcome is a Failure (the attempt fails) or None (it is served)."""
    target = await p.first()
    tried = []
    for failure in outcomes:
        attempt = p.start(target)
        tried.append(target.upstream.name)
        if failure is None:
            await p.served(attempt, target, 200)
            return tried
        target = await p.failed(attempt, target, failure)
        if target is None:
            return tried
    return tried


async def test_fallbacks_in_order_then_wrap_only_when_safe():
    p, ex, clock = plan([up("a"), up("b")], RetryPolicy(attempts=4))
    timeout = exception_failure("timeout")
    assert await run(p, [timeout, timeout, None]) == ["a", "b"]     # a timeout is not repeated
    p, ex, clock = plan([up("a"), up("b")], RetryPolicy(attempts=4, backoff_initial=0.5))
    connect = exception_failure("connect")
    assert await run(p, [connect, connect, connect, None]) == ["a", "b", "a", "b"]
    assert len(clock.slept) == 2 and all(0 <= s <= 1.0 for s in clock.slept)   # backoff before repeats
    assert [a.error for a in ex.attempts] == ["connect", "connect", "connect", None]


async def test_retry_after_is_waited_and_a_long_one_is_not():
    p, ex, clock = plan([up("a")], RetryPolicy(attempts=3, max_retry_after=5.0))
    assert await run(p, [status_failure(429, {"retry-after": "2"}, b""), None]) == ["a", "a"]
    assert clock.slept[0] >= 2.0
    p, ex, clock = plan([up("a")], RetryPolicy(attempts=3, max_retry_after=5.0))
    assert await run(p, [status_failure(429, {"retry-after": "30"}, b"")]) == ["a"]


async def test_deadline_stops_new_attempts_and_cuts_the_running_one():
    p, ex, clock = plan([up("a"), up("b")], RetryPolicy(attempts=3, deadline=5.0))
    target = await p.first()
    p.start(target)
    assert p.timeout(target.upstream) == 5.0            # 2s + 10s cut to the deadline
    clock.t += 6
    assert await p.failed(ex.attempts[0], target, exception_failure("timeout")) is None


async def test_quota_is_final():
    p, ex, clock = plan([up("a"), up("b")], RetryPolicy(attempts=3))
    assert await run(p, [status_failure(429, {}, b'{"code":"insufficient_quota"}')]) == ["a"]


async def test_budget_refuses_repeats_of_a_hammered_upstream():
    budget = RetryBudget()
    policy = RetryPolicy(attempts=3, budget_ratio=0.0, budget_min=0)
    p, ex, clock = plan([up("a")], policy, budget=budget)
    assert await run(p, [exception_failure("connect"), None]) == ["a"]


async def test_open_breakers_are_skipped_then_503():
    breakers = MemoryBreakers()
    bp = BreakerPolicy(failures=1, cool_down=30.0)
    p, ex, clock = plan([up("a", bp), up("b", bp)], breakers=breakers)
    await breakers.record("a", bp, False, False, clock())
    assert await run(p, [None]) == ["b"]
    assert [(a.upstream, a.error) for a in ex.attempts] == [("a", "breaker_open"), ("b", None)]
    await breakers.record("b", bp, False, False, clock())
    p, ex, clock = plan([up("a", bp), up("b", bp)], breakers=breakers)
    with pytest.raises(ProxyError) as info:
        await p.first()
    assert info.value.status == 503 and info.value.code == "upstream_unavailable"
    assert 1 <= int(info.value.headers["retry-after"]) <= 30


async def test_rename_needs_a_new_body_only_when_the_name_differs():
    p, ex, clock = plan([up("a")])
    assert not p.rebody(Target(up("a")))
    assert p.rebody(Target(up("a"), "prod-4o")) and not p.rebody(Target(up("a"), "gpt-4o"))


def _state(p, ex):
    return (p._pos, p._made, p._retries, p._probe, dict(p.runtime.budget._rows), p._skipped,
            [(a.upstream, a.served, a.status, a.ended, a.error) for a in ex.attempts])


@pytest.mark.parametrize("retry", [RetryPolicy(), RetryPolicy(attempts=3)])
async def test_the_edge_s_at_once_steps_match_first_and_served(retry):
    # the edge takes the first target and records its answer without coroutines when the
    # target has no breaker: the plan must end in exactly the state first()/served() leave
    quick, quick_ex, _ = plan([up("a"), up("b")], retry)
    slow, slow_ex, _ = plan([up("a"), up("b")], retry)
    target = quick.first_at_once()
    assert target is not None and target == await slow.first()
    assert _state(quick, quick_ex) == _state(slow, slow_ex)
    for p, t in ((quick, target), (slow, target)):
        p.start(t)
    assert quick.served_at_once(quick_ex.attempts[-1], target, 200)
    await slow.served(slow_ex.attempts[-1], target, 200)
    assert _state(quick, quick_ex) == _state(slow, slow_ex)


async def test_a_target_with_a_breaker_goes_the_awaited_way():
    p, ex, _ = plan([up("a", BreakerPolicy())])
    assert p.first_at_once() is None
    target = await p.first()
    attempt = p.start(target)
    assert not p.served_at_once(attempt, target, 200)
    assert attempt.served is False
