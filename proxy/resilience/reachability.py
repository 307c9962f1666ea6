"""Is each upstream reachable? For /readyz and /metrics, without a provider call per probe.

Active: every ``server.upstreamProbeInterval`` one TCP connect per upstream host (plus the TLS
handshake, verified as aiohttp verifies it, for https), then the connection is closed without a
request: no HTTP request, no key, no tokens, nothing billed. The result is cached until the
next round, so a probe of /readyz costs nothing. Passive: what real traffic says, the failed
attempts of recent exchanges (connect, timeout, status, ...) and when one last succeeded.

A connect that works does not prove the provider answers (a 5xx, a bad key, an exhausted quota
all come after it); the passive side and the circuit breakers say that.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

RECENT_SECONDS = 300.0     # "recent" upstream errors: the last five minutes
RECENT_KEEP = 256          # error times kept per upstream (the count is capped there)
IDLE_RECHECK = 5.0         # probing off: how often to look whether a reload turned it on

log = logging.getLogger("aifw.reachability")


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    tls: bool


@dataclass(frozen=True, slots=True)
class ProbeResult:
    reachable: bool
    checked_at: float           # wall clock
    seconds: float              # connect (and handshake) time
    error: str | None = None    # dns | connect | timeout | tls


def target_of(base_url: str) -> Target:
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    return Target(parts.hostname or "", parts.port or (443 if tls else 80), tls)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return "tls"
    return "connect"


async def probe(target: Target, timeout: float, context: ssl.SSLContext | None = None) -> ProbeResult:
    """One TCP connect (and TLS handshake) to ``target``; never raises."""
    started, wall = time.monotonic(), time.time()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            tls = (context or ssl.create_default_context()) if target.tls else None
            _, writer = await asyncio.open_connection(
                target.host, target.port, ssl=tls, server_hostname=target.host if tls else None)
        return ProbeResult(True, wall, time.monotonic() - started)
    except (OSError, TimeoutError, ssl.CertificateError) as exc:
        return ProbeResult(False, wall, time.monotonic() - started, _error_kind(exc))
    finally:
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(timeout):
                    await writer.wait_closed()
            except (OSError, TimeoutError, ssl.SSLError):
                pass   # the answer is known; a rough close changes nothing


class Reachability:
    """Per process: probe results by target and recent attempt outcomes by upstream name; both
    survive policy reloads (an upstream is looked up by name and base URL each time)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.results: dict[Target, ProbeResult] = {}
        self.errors: dict[str, deque] = {}            # upstream -> times of failed attempts
        self.last_error: dict[str, tuple[str, float]] = {}
        self.last_ok: dict[str, float] = {}
        self.rounds = 0

    # --- active ---------------------------------------------------------------------------
    async def probe_round(self, policy: Any) -> None:
        """Probe every upstream host of ``policy`` once, concurrently (one connect per host and
        port, however many upstreams share it), bounded by each one's connect timeout."""
        timeouts: dict[Target, float] = {}
        for up in policy.upstreams.values():
            target = target_of(up.base_url)
            timeouts[target] = min(timeouts.get(target, up.timeouts.connect), up.timeouts.connect)
        context = ssl.create_default_context() if any(t.tls for t in timeouts) else None
        found = await asyncio.gather(*(probe(t, s, context) for t, s in timeouts.items()))
        self.results = dict(zip(timeouts, found))   # targets a reload removed are dropped
        self.rounds += 1

    async def run(self, current_policy: Callable[[], Any]) -> None:
        """Probe at the current policy's interval until cancelled (the interval and the
        upstreams are read again each round, so a reload applies)."""
        while True:
            policy = current_policy()
            interval = policy.server.upstream_probe_interval
            if interval <= 0:
                self.results = {}
                await asyncio.sleep(IDLE_RECHECK)
                continue
            try:
                await self.probe_round(policy)
            except Exception:  # noqa: BLE001 - the prober must survive anything; /readyz shows stale times
                log.exception("upstream reachability probe failed")
            await asyncio.sleep(interval)

    # --- passive --------------------------------------------------------------------------
    def observe(self, attempts: Any) -> None:
        """The attempts of one finished exchange."""
        now = self.clock()
        for attempt in attempts:
            if attempt.error is None:
                if attempt.status is not None:
                    self.last_ok[attempt.upstream] = now
                continue
            if attempt.error == "breaker_open":
                continue    # not a new fact about the upstream: the breaker state says it
            self.errors.setdefault(attempt.upstream, deque(maxlen=RECENT_KEEP)).append(now)
            self.last_error[attempt.upstream] = (attempt.error, now)

    def recent_errors(self, upstream: str) -> int:
        since = self.clock() - RECENT_SECONDS
        return sum(1 for t in self.errors.get(upstream, ()) if t >= since)

    # --- what /readyz and /metrics show -----------------------------------------------------
    def reachable(self, policy: Any) -> dict[str, bool]:
        """upstream name -> reachable, for upstreams probed already."""
        out = {}
        for name, up in policy.upstreams.items():
            result = self.results.get(target_of(up.base_url))
            if result is not None:
                out[name] = result.reachable
        return out

    def report(self, policy: Any, breakers: dict[str, str]) -> dict[str, dict]:
        out = {}
        for name, up in policy.upstreams.items():
            target = target_of(up.base_url)
            result = self.results.get(target)
            entry: dict[str, Any] = {
                "host": f"{target.host}:{target.port}",
                "reachable": result.reachable if result is not None else None,   # None: not probed yet
                "checkedAt": result.checked_at if result is not None else None,
                "connectMs": round(result.seconds * 1000, 1) if result is not None else None,
                "probeError": result.error if result is not None else None,
                "breaker": breakers.get(name),
                "recentErrors": self.recent_errors(name),
                "lastError": None,
                "lastOkAt": self.last_ok.get(name),
            }
            if name in self.last_error:
                kind, at = self.last_error[name]
                entry["lastError"] = {"error": kind, "at": at}
            out[name] = entry
        return out
