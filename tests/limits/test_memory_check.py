"""MemoryBackend.check against a plain spelling of it (``PlainBackend`` below): the same outcomes
(verdicts, remaining, resets, retry-after) and the same counters over generated traffic, on the
backend itself and through the guard (headers, refusals, reservations). test_limits_now compares
two paths that both run ``check``; this compares ``check`` with a second implementation."""
from __future__ import annotations

import math
import random

import pytest

from proxy.exchange import Identity
from proxy.limits import memory
from proxy.limits.backend import NEVER, ItemResult, Outcome
from proxy.limits.charges import build_charges
from proxy.limits.clock import ManualClock
from proxy.limits.config import compile_limits
from proxy.limits.memory import CONCURRENCY_RETRY, MemoryBackend

from .helpers import backend_state, complete_one, make_exchange
from .test_limits_guard import guard_on

SECTION = {"limits": [
    {"name": "req", "scope": "user", "requests": ["4/second", "30/minute"]},
    {"name": "twin", "scope": "key", "requests": ["3/second", "3/second"]},     # one counter twice
    {"name": "tok", "scope": "user", "tokens": ["2000/minute", "900/second"]},
    {"name": "day", "scope": "key", "budget": ["20000/day", "300000/month"]},
    {"name": "pool", "scope": "group", "tokens": "5000/minute", "budget": "9000/day"},
    {"name": "each", "scope": "group", "perMember": True, "requests": "6/second", "concurrency": 2},
    {"name": "inflight", "scope": "key", "concurrency": 3},
    {"name": "all", "scope": "global", "concurrency": 7, "requests": "50/minute"},
    {"name": "gpt", "scope": "user", "models": ["gpt-4*"], "perModel": True, "requests": "5/second"},
], "concurrencyLeaseSeconds": 20}
# on the backend only: the guard would need prices for it
SPEND = {"name": "usd", "scope": "user", "spend": "0.002USD/day"}
# small enough for a request to need exactly what is left
SMALL = {"name": "small", "scope": "user", "models": ["gpt-4"], "budget": "40/day", "tokens": "16/second"}


class PlainBackend(MemoryBackend):
    """``check`` spelled out: each charge judged on its own against the counters as they were
    before the request, then every charge applied in order when all passed. Everything else
    (adjust, prune) is MemoryBackend's own; a subclass, so the guard awaits it."""

    def check(self, charges, member, now):
        self._ops += 1
        if self._ops % memory._PRUNE_EVERY == 0:
            self.prune(now)
        judged = [self._judge(ch, now) for ch in charges]
        allowed = all(item.allowed for item, _ in judged)
        if allowed:
            for ch, (_, value) in zip(charges, judged):
                self._apply(ch, value, member)
        return Outcome(allowed, [item for item, _ in judged])

    def _judge(self, ch, now):
        """(the charge's result, what applying it writes)"""
        kind, amount = ch.limit.kind, ch.limit.amount
        if kind in ("budget", "spend"):
            entry = self.used.get(ch.key)
            if entry is not None and entry[1] <= now:      # the window is over: starts again
                del self.used[ch.key]
                entry = None
            used = entry[0] if entry is not None else 0.0
            left = amount - used
            reset = ch.param - now
            if ch.cost <= left:
                return ItemResult(True, int(left - ch.cost), reset, 0.0), float(ch.cost)
            retry = NEVER if ch.cost > amount else reset
            return ItemResult(False, max(0, int(left)), reset, retry), None
        if kind == "concurrency":
            holders = self.slots.get(ch.key, {})
            for m in [m for m, end in holders.items() if end <= now]:     # leases run out
                del holders[m]
            count = len(holders)
            if count < amount:
                return ItemResult(True, amount - count - 1, 0.0, 0.0), now + ch.param
            return ItemResult(False, 0, 0.0, CONCURRENCY_RETRY), None
        window = ch.param
        interval = window / amount
        tat = max(self.tat.get(ch.key, now), now)
        new_tat = tat + ch.cost * interval
        if ch.cost <= amount and new_tat - window <= now:
            return ItemResult(True, max(0, _floor((window - (new_tat - now)) / interval)), new_tat - now, 0.0), new_tat
        retry = NEVER if ch.cost > amount else new_tat - window - now
        return ItemResult(False, max(0, _floor((window - (tat - now)) / interval)), tat - now, retry), None

    def _apply(self, ch, value, member):
        kind = ch.limit.kind
        if kind in ("budget", "spend"):
            if ch.key in self.used:
                self.used[ch.key][0] += value
            else:
                self.used[ch.key] = [value, ch.param]
        elif kind == "concurrency":
            self.slots.setdefault(ch.key, {})[member] = value
        else:
            self.tat[ch.key] = value


def _floor(units: float) -> int:
    """Whole units, forgiving the clock's rounding dust (MemoryBackend's _DUST)."""
    return math.floor(units + memory._DUST)


IDENTITIES = [Identity(key_id=k, user=u, groups=g) for k in ("key-1", "key-2", "a:b") for u, g in (
    ("alice", ()), ("bob", ("interns",)), (None, ("interns", "staff")), ("carol", ("staff", "staff")),
    ("a|b", ("interns",)))]


def _step(rng) -> float:
    # exact leases (20 s) and rate intervals (1/4 s, 1 s) too: counters end exactly on the clock
    return rng.choice([0.0, 0.0, 1e-3, rng.random() * 0.3, rng.random() * 3, 25.0, 20.0, 20.0,
                       0.25, 1.0, rng.random() * 40_000, 86_400.0 * rng.randrange(1, 3)])


@pytest.mark.parametrize("grid", [False, True], ids=["any-time", "on-a-grid"])
def test_check_answers_and_counts_as_the_plain_spelling(monkeypatch, grid):
    """On the backend: generated charges of every kind (many keys, a counter charged twice by
    one request, costs over a limit), clock steps from none to days (windows and leases run
    out, budgets start again), settlements of every sign and concurrency released; pruning
    every 50 operations. ``grid``: the clock moves by whole 1/64 s, so a counter can end exactly
    when a request comes (a rate's next slot, a lease) and every boundary test is taken."""
    monkeypatch.setattr(memory, "_PRUNE_EVERY", 50)
    config = compile_limits({**SECTION, "limits": [*SECTION["limits"], SPEND, SMALL]})
    rng = random.Random(14)
    fast, plain = MemoryBackend(), PlainBackend()
    now = 1_750_000_000.0 - 3_000
    held: list[tuple[list, list, str]] = []      # reserved: (charges for fast, for plain, member)
    refused = allowed = 0
    seen = set()       # (kind, allowed, never enough) of every item answered
    for i in range(6_000):
        step = _step(rng) if rng.random() < 0.3 else rng.random() * 0.05
        now += round(step * 64) / 64 if grid else step
        if held and rng.random() < 0.4:
            c_fast, c_plain, member = held.pop(rng.randrange(len(held)))
            deltas = [rng.choice([0, 0, rng.randrange(-300, 300), -10_000, 10_000]) for _ in c_fast]
            fast.adjust(c_fast, deltas, member, now)
            plain.adjust(c_plain, deltas, member, now)
        else:
            identity = rng.choice(IDENTITIES)
            model = rng.choice(["gpt-4o", "gpt-4", "claude-3", None])
            tokens = rng.choice([0, 1, rng.randrange(1, 9), rng.randrange(1, 600), rng.randrange(600, 3000), 400_000])
            c_fast = build_charges(config, identity, model, (None, "/v1/chat/completions"), tokens, now)
            c_plain = build_charges(config, identity, model, (None, "/v1/chat/completions"), tokens, now)
            rng.shuffle(order := list(range(len(c_fast))))
            c_fast, c_plain = [c_fast[k] for k in order], [c_plain[k] for k in order]
            member = f"req-{i}"
            got, want = fast.check(c_fast, member, now), plain.check(c_plain, member, now)
            assert got == want, i
            seen.update((ch.limit.kind, item.allowed, item.retry_after == NEVER) for ch, item in zip(c_fast, got.items))
            if got.allowed:
                allowed += 1
                held.append((c_fast, c_plain, member))
            else:
                refused += 1
        assert backend_state(fast) == backend_state(plain), i
        assert fast._ops == plain._ops
    assert allowed > 500 and refused > 1_000          # both paths taken often
    assert {(k, ok) for k, ok, _ in seen} == {(k, ok) for k in ("requests", "tokens", "budget", "spend", "concurrency")
                                              for ok in (True, False)}
    assert {k for k, _, never in seen if never} == {"tokens", "budget", "spend"}
    assert fast.tat and fast.used


async def test_guard_answers_as_with_the_plain_spelling():
    """Through the guard (the in-memory backend answered at once, the plain one awaited): the
    same verdicts, rate-limit headers, reservations and counters."""
    rng = random.Random(15)
    clock_fast, clock_plain = ManualClock(), ManualClock()
    fast_backend, plain_backend = MemoryBackend(), PlainBackend()
    fast, plain = guard_on(clock_fast, fast_backend, **SECTION), guard_on(clock_plain, plain_backend, **SECTION)
    open_fast, open_plain = [], []
    refusals = completed = 0
    for i in range(2_000):
        step = _step(rng) if rng.random() < 0.1 else rng.random() * 0.2
        clock_fast.advance(step)
        clock_plain.advance(step)
        if open_fast and rng.random() < 0.45:     # complete one in flight, with or without usage
            await complete_one(rng, (fast, plain), (open_fast, open_plain))
            completed += 1
        else:
            who = rng.choice(IDENTITIES)
            words = " ".join(rng.choice(["alpha", "beta", "gamma"]) for _ in range(rng.randrange(1, 400)))
            extra = rng.choice([{}, {"max_tokens": rng.randrange(1, 900)}, {"max_tokens": 5000}])
            model = rng.choice(["gpt-4o", "gpt-4", "claude-3"])
            made = [make_exchange(user=who.user, key_id=who.key_id, groups=who.groups, model=model,
                                  messages=(words,), body_extra=extra) for _ in range(2)]
            ex_fast, ex_plain = made
            ex_plain.request_id = ex_fast.request_id      # the concurrency slots' member
            v_fast, v_plain = await fast.on_request(ex_fast), await plain.on_request(ex_plain)
            assert (v_fast is None) == (v_plain is None), i
            if v_fast is not None:
                refusals += 1
                assert (v_fast.message, v_fast.rule_ids, v_fast.headers, v_fast.status, v_fast.code) == \
                    (v_plain.message, v_plain.rule_ids, v_plain.headers, v_plain.status, v_plain.code), i
            else:
                assert ex_fast.response_headers == ex_plain.response_headers, i
                assert ex_fast.usage.reserved_tokens == ex_plain.usage.reserved_tokens
                r_fast, r_plain = ex_fast.state["ratelimit"], ex_plain.state["ratelimit"]
                assert [(c.key, c.cost, c.param) for c in r_fast.charges] == \
                    [(c.key, c.cost, c.param) for c in r_plain.charges]
                open_fast.append(ex_fast)
                open_plain.append(ex_plain)
        assert backend_state(fast_backend) == backend_state(plain_backend), i
    assert refusals > 200 and completed > 200
    for ex_fast, ex_plain in zip(open_fast, open_plain):
        await fast.on_complete(ex_fast)
        await plain.on_complete(ex_plain)
    assert backend_state(fast_backend) == backend_state(plain_backend)
