"""Breakers shared by every replica: the state machine of breaker.py as one Lua script per call,
so an upstream one replica saw failing is skipped by all. Each call is one round trip.

While Redis cannot be reached the replica falls back to its own per-process breakers (a breaker
is a protection for the upstream and the caller, not a policy decision: going on without the
shared view is safer than failing requests), and says so in /readyz.
"""
from __future__ import annotations

import asyncio
import logging

from ..limits.config import RedisSettings
from ..limits.redis_backend import make_client, unreachable
from .breaker import CLOSED, HALF_OPEN, OPEN, Decision, MemoryBreakers
from .config import BreakerPolicy

log = logging.getLogger("aifw.resilience")
HEALTH_KEY = "resilience"
_STATES = {0: CLOSED, 1: OPEN, 2: HALF_OPEN}

# KEYS[1]: the upstream's hash. ARGV: op (a = allow, r = record), now_ms, ok (1/0), probe (1/0),
# failures, error_rate (0 = off), min_requests, window_ms, cool_down_ms, probes.
# Hash fields: s state (0 closed, 1 open, 2 half-open), f consecutive failures, ws/wt/wf window
# start/total/failed, ou open until, p probes in flight, pe probe lease end, c probe successes.
# Returns {allowed, probe, retry_after_ms, state}.
SCRIPT = """
local k = KEYS[1]
local op, now, ok, probe = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4] == '1'
local nfail, rate, minreq = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local window, cool, nprobes = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local h = redis.call('HMGET', k, 's', 'f', 'ws', 'wt', 'wf', 'ou', 'p', 'pe', 'c')
local s, f, ws, wt, wf = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0
local ou, p, pe, c = tonumber(h[6]) or 0, tonumber(h[7]) or 0, tonumber(h[8]) or 0, tonumber(h[9]) or 0
local function save()
  redis.call('HSET', k, 's', s, 'f', f, 'ws', ws, 'wt', wt, 'wf', wf, 'ou', ou, 'p', p, 'pe', pe, 'c', c)
  redis.call('PEXPIRE', k, math.max(window, cool) * 2 + 60000)
end
local function trip()
  s, ou, f, wt, wf, p, c, ws = 1, now + cool, 0, 0, 0, 0, 0, now
end
if op == 'a' then
  if s == 1 then
    if now < ou then return {0, 0, ou - now, 1} end
    s, p, c = 2, 0, 0
  end
  if s == 2 then
    if now >= pe then p = 0 end
    if p >= nprobes then save() return {0, 0, math.max(0, math.min(1000, pe - now)), 2} end
    p, pe = p + 1, now + cool
    save()
    return {1, 1, 0, 2}
  end
  return {1, 0, 0, 0}
end
if probe then
  if s ~= 2 then return {1, 0, 0, s} end
  p = math.max(0, p - 1)
  if not ok then trip() else
    c = c + 1
    if c >= nprobes then s, f, c, ws, wt, wf = 0, 0, 0, now, 0, 0 end
  end
  save()
  return {1, 0, 0, s}
end
if s ~= 0 then return {1, 0, 0, s} end
if now - ws >= window then ws, wt, wf = now, 0, 0 end
wt = wt + 1
if ok then f = 0 else
  f, wf = f + 1, wf + 1
  if f >= nfail or (rate > 0 and wt >= minreq and wf >= rate * wt) then trip() end
end
save()
return {1, 0, 0, s}
"""


class RedisBreakers:
    name = "redis"

    def __init__(self, settings: RedisSettings, local: MemoryBreakers, services=None, clock=None) -> None:
        self.settings = settings
        self.local = local
        self.services = services
        if services is not None:
            services.monitored.add(HEALTH_KEY)
        self.client = make_client(settings)
        self.script = self.client.register_script(SCRIPT)
        self.prefix = "{" + settings.key_prefix + "}:br:"
        self.seen: dict[str, tuple[str, float]] = {}    # upstream -> (state, open until), as last answered

    def _args(self, op: str, policy: BreakerPolicy, now: float, ok: bool = False, probe: bool = False) -> list:
        return [op, int(now * 1000), int(ok), int(probe), policy.failures, policy.error_rate or 0,
                policy.min_requests, int(policy.window * 1000), int(policy.cool_down * 1000), policy.probes]

    async def _run(self, upstream: str, args: list) -> list | None:
        try:
            async with asyncio.timeout(self.settings.timeout):
                out = await self.script(keys=[self.prefix + upstream], args=args)
        except unreachable() as exc:
            self._health(f"breaker store unreachable ({type(exc).__name__}); per-process breakers in use")
            return None
        self._health("")
        return out

    def _health(self, problem: str) -> None:
        if self.services is not None:
            self.services.health[HEALTH_KEY] = problem

    def _note(self, upstream: str, state_code: int, now: float, retry_ms: int) -> str:
        state = _STATES[int(state_code)]
        self.seen[upstream] = (state, now + int(retry_ms) / 1000 if state == OPEN else 0.0)
        return state

    async def allow(self, upstream: str, policy: BreakerPolicy, now: float) -> Decision:
        out = await self._run(upstream, self._args("a", policy, now))
        if out is None:
            return await self.local.allow(upstream, policy, now)
        allowed, probe, retry_ms, code = (int(x) for x in out)
        state = self._note(upstream, code, now, retry_ms)
        return Decision(bool(allowed), bool(probe), retry_ms / 1000, state)

    async def record(self, upstream: str, policy: BreakerPolicy, ok: bool, probe: bool, now: float) -> str:
        out = await self._run(upstream, self._args("r", policy, now, ok, probe))
        if out is None:
            return await self.local.record(upstream, policy, ok, probe, now)
        return self._note(upstream, int(out[3]), now, int(policy.cool_down * 1000))

    def view(self, upstream: str, now: float) -> str:
        state, until = self.seen.get(upstream, (CLOSED, 0.0))
        if state == OPEN and now >= until:
            return HALF_OPEN
        return state

    async def close(self) -> None:
        await self.client.aclose()
