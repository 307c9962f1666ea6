"""The current policy, hot reload, and the per-process runtime around it.

Reload builds a new compiled Policy and swaps one reference; exchanges already running keep the
one they started with. A bad file keeps the last good policy and says why (log, /readyz, metric).
Files are polled by (inode, mtime, size) of their resolved target, which also catches
Kubernetes' ConfigMap update (an atomic swap of the ``..data`` symlink): the policy file, the
files it references (term lists, rule files and their directory, the model: see
proxy/policy/sources.py) and the keys file.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
import types
from typing import Any

from . import pipeline
from .cost import exchange_cost
from .durations import upstream_seconds
from .outcome import settle
from .policy.compile import Policy, PolicyError, compile_policy
from .policy.sources import stamp
from .resilience.reachability import Reachability
from .resilience.status import any_route_serves, breaker_states
from .services import Services

log = logging.getLogger("aifw.reload")

POLL_SECONDS = 1.0


@types.coroutine
def _resume(coro, waiting):
    """The rest of a coroutine that was started outside a task and yielded ``waiting`` (the
    future it awaits, or None for a bare yield), as a task's coroutine: the task waits for
    ``waiting`` as it would have had it run ``coro`` from the start, then sends on, and what the
    task throws in (a cancellation) goes on into ``coro``."""
    while True:
        try:
            yield waiting
        except BaseException as exc:  # noqa: BLE001 - forwarded, as a task throws into its coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            return stop.value


class PolicyHolder:
    def __init__(self, path: str, services: Services | None = None, *, env=None) -> None:
        self.path = path
        self.env = env
        self.services = services or Services()
        self.policy: Policy = compile_policy(path, self.services, env)   # raises PolicyError
        self.loaded_at = time.time()
        self.last_error: str | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._stamps = self._take_stamps(self.policy)
        self._watcher: asyncio.Task | None = None
        self.reachability = Reachability()
        self._prober: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._retired: list[Policy] = []
        # optional subsystems, attached by proxy.runtime
        self.audit: Any = None
        self.telemetry: Any = None

    # --- reload -----------------------------------------------------------------------
    def _take_stamps(self, policy: Policy) -> dict[str, tuple | None]:
        # a file the compile read keeps the stamp of the bytes it read: an edit made while the
        # policy compiled differs from it and is picked up at the next poll
        read = {f.path: f.stamp for f in policy.sources}
        return {p: read[p] if p in read else stamp(p) for p in policy.watched_files}

    def reload(self) -> bool:
        try:
            new = compile_policy(self.path, self.services, self.env, reload=True)
        except PolicyError as exc:
            self.last_error = str(exc)
            self.reloads_failed += 1
            # do not retry until something changes, including a file only the failed policy
            # names (a term list it needs that does not exist yet)
            self._stamps = {p: stamp(p) for p in (*self._stamps, *exc.watched)}
            log.error("policy reload failed; keeping policy %s (%s):\n%s", self.policy.name,
                      self.policy.digest[:19], exc)
            if self.telemetry is not None:
                self.telemetry.count_reload(False)
            return False
        old, self.policy = self.policy, new
        self._retired.append(old)
        self.loaded_at = time.time()
        self.last_error = None
        self.reloads_ok += 1
        self._stamps = self._take_stamps(new)
        if self.audit is not None and "audit" in new.sections:
            self.audit.reconfigure(new.sections["audit"])
        if self.telemetry is not None:
            self.telemetry.count_reload(True)
        log.info("policy reloaded: %s %s", new.name, new.digest)
        return True

    def changed(self) -> bool:
        return any(stamp(p) != s for p, s in self._stamps.items())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if self.changed():
                    self.reload()
                await self._close_retired()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("policy watcher error")

    async def _close_retired(self) -> None:
        # A retired policy's guards are closed once no exchange can still be using them; the
        # grace period bounds how long a stream may hold a policy.
        keep = []
        for policy in self._retired:
            if time.time() - self.loaded_at > self.policy.server.shutdown_grace + 60:
                await policy.close()
            else:
                keep.append(policy)
        self._retired = keep

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self.audit is not None:
            await self.audit.start()
        self._watcher = asyncio.create_task(self._watch())
        self._prober = asyncio.create_task(self.reachability.run(lambda: self.policy))
        await self.services.prime()
        self.services.warm_up()
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):
            pass   # not the main thread (tests) or no signals on this platform

    async def stop(self) -> None:
        for task in (self._watcher, self._prober):
            if task is not None:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.audit is not None:
            await self.audit.close()
        if self.telemetry is not None:
            await self.telemetry.close()
        for policy in (*self._retired, self.policy):
            await policy.close()
        await self.services.close()

    def track(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- per exchange -----------------------------------------------------------------
    def refusal(self) -> str | None:
        return self.audit.refusal() if self.audit is not None else None

    def prepare(self, ex) -> None:
        if self.audit is not None:
            self.audit.prepare(ex)

    def finish(self, ex) -> None:
        """Complete ``ex`` once the edge is done with it, without holding up its answer: in a
        plain callback on the next turn of the loop (a task per exchange costs about twice as
        much). Guards' ``on_complete`` hooks run there as far as they go without waiting, which
        in-memory ones (PII counts, in-memory limits) do to their end; hooks that wait (a Redis
        round trip) go on in a task from there (``_complete_hooks``). Either runs even when the
        client went away and the handler was cancelled."""
        scope = ex.scope
        if scope is not None and scope.complete_guards:
            asyncio.get_running_loop().call_soon(self._complete_hooks, ex)
        else:
            asyncio.get_running_loop().call_soon(self._complete_now, ex)

    def _complete_hooks(self, ex) -> None:
        """``complete(ex)`` stepped here, outside a task: most often it ends without waiting.
        When it waits, a tracked task takes it over from there (``stop`` waits for it)."""
        coro = self.complete(ex)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        self.track(asyncio.ensure_future(_resume(coro, waiting)))

    async def complete(self, ex) -> None:
        try:
            ex.cost = exchange_cost(ex)   # usage is final: spend limits settle it, audit records it
            await pipeline.run_complete(ex)
        finally:
            self.record(ex)

    def _complete_now(self, ex) -> None:
        try:
            ex.cost = exchange_cost(ex)
        finally:
            self.record(ex)

    def record(self, ex) -> None:
        """The last step of every exchange: settle what the client got, then the audit record
        and the metrics."""
        if ex.finished is None:
            ex.finished = time.monotonic()
        settle(ex)        # the record and the metrics say what the client got
        self.reachability.observe(ex.attempts)
        # once for both: a walk over the exchange's spans
        upstream = upstream_seconds(ex) if self.audit is not None or self.telemetry is not None else None
        if self.audit is not None:
            self.audit.submit(ex, upstream)
        if self.telemetry is not None:
            self.telemetry.observe(ex, upstream)

    # --- status -------------------------------------------------------------------------
    def breaker_states(self) -> dict[str, str]:
        return breaker_states(self.policy)

    def upstreams_reachable(self) -> dict[str, bool]:
        return self.reachability.reachable(self.policy)

    def readiness(self) -> tuple[bool, dict]:
        problems = {k: v for k, v in self.services.health.items() if v}
        refusal = self.refusal()
        if refusal:
            problems["audit"] = refusal
        breakers = self.breaker_states()
        if breakers and not any_route_serves(self.policy, breakers):
            problems["upstreams"] = "every route's upstreams have open circuit breakers"
        details = {
            "ready": not problems,
            "policy": {"name": self.policy.name, "digest": self.policy.digest, "path": self.policy.path,
                       "loadedAt": self.loaded_at,
                       "files": [{"path": f.path, "sha256": f.sha256} for f in self.policy.sources]},
            "reloads": {"ok": self.reloads_ok, "failed": self.reloads_failed},
            "lastReloadError": self.last_error,
            "backends": problems,
            "breakers": breakers,
            # information, not a readiness condition: see docs/deployment.md
            "upstreams": self.reachability.report(self.policy, breakers),
        }
        return not problems, details

    def metrics_text(self) -> tuple[bytes, str]:
        if self.telemetry is None:   # subsystems not attached: nothing is counted
            return b"", "text/plain; version=0.0.4"
        return self.telemetry.prometheus_text()
