"""Redis limiter backend: shared by every worker and replica.

One round trip per check-and-reserve (EVALSHA of a script loaded with SCRIPT LOAD; reloaded
when Redis restarts and forgets it); concurrent requests of one process share round trips. All keys of one prefix share a hash tag ``{prefix}``, so a
request's keys live in one Cluster slot and the script may touch them all atomically.

While Redis is unreachable the backend fails fast (no connect timeout per request), reports
``services.health["ratelimit"]`` and probes Redis in the background until it answers again.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, Sequence

from .backend import NEVER, BackendUnavailable, ItemResult, Outcome
from .charges import Charge
from .config import RedisSettings
from .redis_scripts import RESERVE, SETTLE
from ..lazyimport import lazy

# Used once serving (where aiohttp has imported it); `aifw policy check` never needs it.
asyncio = lazy("asyncio", globals(), "asyncio")

log = logging.getLogger("aifw.limits")
HEALTH_KEY = "ratelimit"
SETTLE_LINGER = 0.002
_KIND = {"requests": "r", "tokens": "r", "budget": "b", "spend": "b", "concurrency": "c"}


# redis-py (~0.15 s to import, OpenTelemetry included) is imported when the backend first talks
# to Redis, not when a policy naming it compiles: `aifw policy check` never needs it.
@functools.lru_cache(maxsize=1)
def unreachable() -> tuple[type[BaseException], ...]:
    """Faults that mean "Redis is not there": anything else (a script error) is a bug, not an
    outage."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ReadOnlyError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    return (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError, asyncio.TimeoutError)


def _no_script_error() -> type[BaseException]:
    from redis.exceptions import NoScriptError
    return NoScriptError


def make_client(settings: RedisSettings) -> "aioredis.Redis":
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    kwargs: dict[str, Any] = dict(
        # No socket_timeout: redis-py implements it with asyncio.wait_for, which costs a task
        # switch per command (~0.5 ms measured on the bench machine). The backend bounds each
        # whole call with asyncio.timeout instead.
        socket_timeout=None,
        socket_connect_timeout=settings.connect_timeout,
        # One immediate retry heals a pooled connection that a Redis restart closed; more
        # retries with backoff would only make every request wait while Redis is down.
        retry=Retry(NoBackoff(), 1),
        decode_responses=False,
    )
    if settings.password is not None:
        kwargs["password"] = settings.password
    if settings.url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = "required" if settings.verify else "none"
        if settings.ca_file:
            kwargs["ssl_ca_certs"] = settings.ca_file
        if settings.cert_file:
            kwargs["ssl_certfile"] = settings.cert_file
        if settings.key_file:
            kwargs["ssl_keyfile"] = settings.key_file
        if not settings.verify:
            kwargs["ssl_check_hostname"] = False
    return aioredis.Redis.from_url(settings.url, **kwargs)


def _spec(charges: Sequence[Charge], values: Sequence[int], now: float) -> str:
    """One request's script argument: "now kind amount param value ..." (see redis_scripts)."""
    parts = [str(int(now * 1000))]
    for ch, value in zip(charges, values):
        parts += (_KIND[ch.limit.kind], str(ch.limit.amount), repr(ch.param * 1000), str(int(value)))
    return " ".join(parts)


class _Batcher:
    """Auto-pipelining: requests that arrive while a call is being prepared or is in flight
    go to Redis together in the next call (one round trip for many; see redis_scripts)."""

    MAX_BATCH = 64
    MAX_IN_FLIGHT = 2

    def __init__(self, run, linger: float = 0.0) -> None:
        self._run = run                      # async (list of jobs) -> list of results
        self._linger = linger
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._in_flight = 0
        self._scheduled = False

    async def submit(self, job: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((job, fut))
        if not self._scheduled:
            self._scheduled = True
            if self._linger:
                loop.call_later(self._linger, self._flush)
            else:
                loop.call_soon(self._flush)  # after the other tasks ready in this loop turn
        return await fut

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self.MAX_IN_FLIGHT:
            batch, self._pending = self._pending[:self.MAX_BATCH], self._pending[self.MAX_BATCH:]
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._call(batch))

    async def _call(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            results = await self._run([job for job, _ in batch])
        except BaseException as exc:   # noqa: BLE001 - every waiter must learn of the fault
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else BackendUnavailable("cancelled"))
            if not isinstance(exc, Exception):
                raise                  # cancellation (shutdown) goes on up
        else:
            for (_, fut), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._flush()


class RedisBackend:
    name = "redis"

    def __init__(self, settings: RedisSettings, services: Any = None,
                 client: "aioredis.Redis | None" = None) -> None:
        self.settings = settings
        self.services = services
        if services is not None:
            services.monitored.add(HEALTH_KEY)
        self._client = client
        self._sha: dict[str, str] = {}
        self._reserves = _Batcher(self._reserve_batch)
        # Settlement runs after the client has its answer: waiting 2 ms to gather more of them
        # into one round trip costs nobody anything (a freed concurrency slot shows 2 ms later).
        self._settles = _Batcher(self._settle_batch, linger=SETTLE_LINGER)
        self.down = False
        self._next_try = 0.0
        self._probe: asyncio.Task | None = None
        self.outages = 0           # times Redis became unreachable (for metrics)

    def warm(self) -> None:
        """Import redis-py off the event loop (Services.warm_up, at start)."""
        unreachable()
        import redis.asyncio  # noqa: F401

    @property
    def client(self) -> "aioredis.Redis":
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    # -- script calls ---------------------------------------------------------------------
    def _fail_fast(self) -> None:
        # While Redis is down, answer at once instead of waiting for a connect timeout.
        if self.down and time.monotonic() < self._next_try:
            raise BackendUnavailable("redis unreachable")

    async def _run(self, script: str, keys: list[str], args: list) -> Any:
        # The client is made (redis-py imported, maybe waiting on the warm-up thread's import)
        # before the command's timeout starts: a slow import is not an unreachable Redis.
        client = self.client
        try:
            async with asyncio.timeout(self.settings.timeout):
                sha = self._sha.get(script)
                if sha is None:
                    sha = self._sha[script] = await client.script_load(script)
                try:
                    result = await client.evalsha(sha, len(keys), *keys, *args)
                except _no_script_error():
                    # Redis restarted (or failed over) and forgot the script.
                    sha = self._sha[script] = await client.script_load(script)
                    result = await client.evalsha(sha, len(keys), *keys, *args)
        except unreachable() as exc:
            self._mark_down(exc)
            raise BackendUnavailable(f"redis unreachable: {type(exc).__name__}") from None
        if self.down:
            self._mark_up()
        return result

    async def prime(self) -> None:
        """At start, before traffic: connect and load the scripts, so the first request does not
        pay for them inside its command timeout. Unreachable is the usual outage state."""
        client = self.client
        try:
            async with asyncio.timeout(self.settings.connect_timeout + self.settings.timeout):
                for script in (RESERVE, SETTLE):
                    self._sha[script] = await client.script_load(script)
        except unreachable() as exc:
            self._mark_down(exc)

    async def reserve(self, charges: Sequence[Charge], member: str, now: float) -> Outcome:
        if not charges:
            return Outcome(True, [])
        self._fail_fast()
        return await self._reserves.submit((charges, member, _spec(charges, [c.cost for c in charges], now)))

    async def settle(self, charges: Sequence[Charge], deltas: Sequence[int], member: str,
                     now: float) -> None:
        if charges:
            self._fail_fast()
            await self._settles.submit((charges, member, _spec(charges, deltas, now)))

    async def _reserve_batch(self, jobs: list) -> list[Outcome]:
        keys = [c.key for charges, _, _ in jobs for c in charges]
        args = [a for _, member, spec in jobs for a in (member, spec)]
        raw = [int(v) for v in (await self._run(RESERVE, keys, args)).split()]
        outcomes, pos = [], 0
        for charges, _, _ in jobs:
            allowed = bool(raw[pos])
            items = []
            for i in range(len(charges)):
                ok, remaining, reset_ms, retry_ms = raw[pos + 1 + 4 * i: pos + 5 + 4 * i]
                retry = NEVER if retry_ms < 0 else retry_ms / 1000
                items.append(ItemResult(bool(ok), int(remaining), reset_ms / 1000, retry))
            outcomes.append(Outcome(allowed, items))
            pos += 1 + 4 * len(charges)
        return outcomes

    async def _settle_batch(self, jobs: list) -> list[None]:
        keys = [c.key for charges, _, _ in jobs for c in charges]
        args = [a for _, member, spec in jobs for a in (member, spec)]
        await self._run(SETTLE, keys, args)
        return [None] * len(jobs)

    # -- outage handling -------------------------------------------------------------------
    def _mark_down(self, exc: BaseException) -> None:
        self._next_try = time.monotonic() + self.settings.retry_interval
        if not self.down:
            self.down = True
            self.outages += 1
            log.warning("ratelimit: redis unreachable (%s); retrying every %.1fs",
                        type(exc).__name__, self.settings.retry_interval)
        if self.services is not None:
            self.services.health[HEALTH_KEY] = f"redis unreachable ({type(exc).__name__})"
        if self._probe is None or self._probe.done():
            try:
                self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())
            except RuntimeError:
                self._probe = None

    def _mark_up(self) -> None:
        self.down = False
        log.warning("ratelimit: redis reachable again")
        if self.services is not None:
            self.services.health.pop(HEALTH_KEY, None)

    async def _probe_until_up(self) -> None:
        # Without traffic nobody would notice Redis coming back, and /readyz would keep the
        # replica out of its Service forever: so probe in the background.
        while self.down:
            await asyncio.sleep(self.settings.retry_interval)
            try:
                async with asyncio.timeout(self.settings.timeout):
                    await self.client.ping()
            except unreachable():
                continue
            except Exception:   # noqa: BLE001 - the probe must never die of a surprise
                log.exception("ratelimit: redis probe failed")
                continue
            if self.down:
                self._mark_up()

    async def ping(self) -> bool:
        try:
            await self.client.ping()
            return True
        except unreachable():
            return False

    async def close(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            try:
                await self._probe
            except (asyncio.CancelledError, Exception):   # noqa: BLE001
                pass
        self._probe = None
        if self._client is not None:
            await self._client.aclose()
