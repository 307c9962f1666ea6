"""The in-memory backend answered without a coroutine (Limiter.reserve_now / settle_now) against
the awaited path (reserve / settle), which a MemoryBackend subclass still takes: the same
verdicts, headers, reservations and counters over generated traffic."""
from __future__ import annotations

import random

from proxy.limits.clock import ManualClock
from proxy.limits.memory import MemoryBackend

from .helpers import backend_state, complete_one, make_exchange
from .test_limits_guard import guard_on

SECTION = {"limits": [
    {"name": "req", "scope": "user", "requests": ["5/second", "40/minute"]},
    {"name": "tok", "scope": "user", "tokens": "3000/minute"},
    {"name": "day", "scope": "key", "budget": "20000/day"},
    {"name": "inflight", "scope": "key", "concurrency": 3},
]}


class Awaited(MemoryBackend):
    """The same backend, but not the in-memory type itself: reserve/settle are awaited."""


async def test_answered_at_once_as_when_awaited():
    rng = random.Random(14)
    clock_now, clock_then = ManualClock(), ManualClock()
    now_backend, then_backend = MemoryBackend(), Awaited()
    now, then = guard_on(clock_now, now_backend, **SECTION), guard_on(clock_then, then_backend, **SECTION)
    assert now.limiter.reserve_now([], "x") is not None and then.limiter.reserve_now([], "x") is None
    open_now, open_then = [], []
    for i in range(600):
        step = rng.random() * 0.4
        clock_now.advance(step)
        clock_then.advance(step)
        if open_now and rng.random() < 0.5:     # complete one in flight, with or without usage
            await complete_one(rng, (now, then), (open_now, open_then))
        else:
            user = rng.choice(["alice", "bob", None])
            words = " ".join(rng.choice(["alpha", "beta", "gamma"]) for _ in range(rng.randrange(1, 300)))
            extra = rng.choice([{}, {"max_tokens": rng.randrange(1, 900)}])
            ex_now = make_exchange(user=user, messages=(words,), body_extra=extra)
            ex_then = make_exchange(user=user, messages=(words,), body_extra=extra)
            ex_then.request_id = ex_now.request_id      # the concurrency slots' member
            v_now, v_then = await now.on_request(ex_now), await then.on_request(ex_then)
            assert (v_now is None) == (v_then is None)
            if v_now is not None:
                assert (v_now.message, v_now.rule_ids, v_now.headers) == (v_then.message, v_then.rule_ids, v_then.headers)
            else:
                assert ex_now.response_headers == ex_then.response_headers
                assert ex_now.usage.reserved_tokens == ex_then.usage.reserved_tokens
                open_now.append(ex_now)
                open_then.append(ex_then)
        assert backend_state(now_backend) == backend_state(then_backend), i
    for ex_now, ex_then in zip(open_now, open_then):
        await now.on_complete(ex_now)
        await now.on_complete(ex_now)          # settled once only
        await then.on_complete(ex_then)
    assert backend_state(now_backend) == backend_state(then_backend)
    assert not now_backend.slots
