"""Which failures are tried again, where, and after how long; and the per-upstream retry budget.

An attempt that failed before the first byte reached the client may go to the next upstream of
its route (a fallback). The same upstream is tried again (a retry) only when that is safe: the
request never reached it (a connect error), or it said so (429/5xx with retry-after, or
``x-should-retry: true``; never with ``x-should-retry: false``). An ``insufficient_quota`` 429
is final: it is the account's state, and trying elsewhere would move the spend silently.
"""
from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Mapping

from .config import RetryPolicy

QUOTA_MARK = b"insufficient_quota"


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str                      # connect | timeout | broken | status | insufficient_quota
    status: int | None = None
    retry_after: float | None = None
    same_ok: bool = False          # this upstream may be tried again in the same exchange
    final: bool = False            # no other attempt at all

    @property
    def counts_against_upstream(self) -> bool:
        """Breakers count the upstream's health, not the account's quota."""
        return self.kind != "insufficient_quota"


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asked to wait: ``retry-after-ms`` (OpenAI), else ``retry-after``
    as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def status_failure(status: int, headers: Mapping[str, str], body: bytes) -> Failure:
    """Classify a 429 or 5xx answer (``body``: the first bytes of the error body)."""
    if status == 429 and QUOTA_MARK in body:
        return Failure("insufficient_quota", status, final=True)
    wait = retry_after(headers)
    should = (headers.get("x-should-retry") or "").strip().lower()
    same_ok = should != "false" and (wait is not None or should == "true")
    return Failure("status", status, wait, same_ok=same_ok)


def exception_failure(kind: str) -> Failure:
    """A connect error never reached the provider: safe to repeat. A timeout or a broken
    connection may have: only another upstream is tried."""
    return Failure(kind, same_ok=kind == "connect")


def backoff(policy: RetryPolicy, retry_number: int, rand=random.random) -> float:
    """Exponential backoff with full jitter (retry_number counts from 0)."""
    ceiling = min(policy.backoff_max, policy.backoff_initial * (2 ** retry_number))
    return ceiling * rand()


class RetryBudget:
    """Per upstream and process: retries may be at most ``ratio`` of requests over the last
    ~10 seconds (two 10 s buckets, the older one weighted by how much of it is still in the
    window), plus ``minRetries`` per window for low traffic."""

    WINDOW = 10.0

    def __init__(self) -> None:
        # upstream -> [bucket start, requests, retries, previous requests, previous retries]
        self._rows: dict[str, list[float]] = {}

    def _row(self, upstream: str, now: float) -> list[float]:
        row = self._rows.get(upstream)
        if row is None:
            row = self._rows[upstream] = [now, 0, 0, 0, 0]
        elapsed = now - row[0]
        if elapsed >= 2 * self.WINDOW:
            row[:] = [now, 0, 0, 0, 0]
        elif elapsed >= self.WINDOW:
            row[:] = [row[0] + self.WINDOW, 0, 0, row[1], row[2]]
        return row

    def count(self, upstream: str, retry: bool, now: float) -> None:
        row = self._row(upstream, now)
        row[1] += 1
        if retry:
            row[2] += 1

    def allows(self, upstream: str, policy: RetryPolicy, now: float) -> bool:
        row = self._row(upstream, now)
        weight = max(0.0, 1 - (now - row[0]) / self.WINDOW)
        requests = row[1] + row[3] * weight
        retries = row[2] + row[4] * weight
        return retries < max(policy.budget_min, policy.budget_ratio * requests)
