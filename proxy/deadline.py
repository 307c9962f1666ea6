"""A task's deadline that moves without a new timer: asyncio.timeout's behaviour for the phases
of one exchange (sending until the answer's headers, reading a whole answer, each gap of a
stream) at the cost of about one timer per exchange instead of one or more per phase.

``asyncio.timeout`` makes a Timeout object and a TimerHandle per use, pushes it onto the loop's
heap (Python-level comparisons under asyncio's own loop) and cancels it on exit; a stream paid
that for every chunk. A Deadline keeps one armed timer: moving the deadline later only records
the new time, and the timer, when it fires early, re-arms itself for it; moving it earlier (or
arming with none pending) schedules a timer. Outside a guarded section (``with deadline.at(t)``)
nothing is timed: a timer that fires then does nothing, so the task is never cancelled while it
does something the deadline does not cover.

Expiry works as in asyncio.timeout: the task is cancelled, and the ``with`` block it was in
turns that CancelledError into TimeoutError, unless someone else cancelled the task too (the
client went away), whose cancellation then propagates.
"""
from __future__ import annotations

import asyncio


class Deadline:
    __slots__ = ("_loop", "_task", "_when", "_handle", "_armed_at", "_expired", "_cancelling")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._when: float | None = None      # loop time; None: nothing is timed now
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._expired = False
        self._cancelling = 0

    def at(self, when: float) -> "Deadline":
        """Time the ``with`` block that follows until ``when`` (loop time)."""
        self._when = when
        self._expired = False
        if self._handle is None or when < self._armed_at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(when, self._fire)
            self._armed_at = when
        return self

    def after(self, delay: float) -> "Deadline":
        return self.at(self._loop.time() + delay)

    def __enter__(self) -> "Deadline":
        self._cancelling = self._task.cancelling()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._when = None          # the armed timer stays, for the next section or until close()
        if self._expired:
            self._expired = False
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if when is None:
            return
        if self._loop.time() < when:     # moved later since the timer was armed
            self._handle = self._loop.call_at(when, self._fire)
            self._armed_at = when
            return
        self._when = None
        self._expired = True
        self._task.cancel()

    def close(self) -> None:
        """Drop the pending timer (the exchange is done with the deadline)."""
        self._when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
