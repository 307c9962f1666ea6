"""Completing an exchange (PolicyHolder.finish): guards' on_complete hooks run in a loop
callback as far as they go without waiting, and a hook that waits goes on in a tracked task
from where it stopped. Compared with ``await holder.complete(ex)``, which a task ran before."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from proxy.exchange import Exchange
from proxy.reload import PolicyHolder
from proxy.guards.base import Guard


class Holder(PolicyHolder):
    """A holder without a policy: only what finish/complete/record use."""

    def __init__(self) -> None:   # noqa: D107 - no compile
        self._tasks = set()
        self.recorded: list[tuple[str, list[str]]] = []

    def record(self, ex) -> None:
        self.recorded.append((ex.request_id, list(ex.state.get("log", ()))))


def _log(ex, what: str) -> None:
    ex.state.setdefault("log", []).append(what)


class Counts(Guard):
    """Like the PII guard's and the in-memory limits' hooks: no await that waits."""

    name = "counts"

    async def on_complete(self, ex) -> None:
        await asyncio.sleep(0) if ex.state.get("yield") else None
        _log(ex, "counts")


class Waits(Guard):
    """Like the Redis limits' hook: waits for a future (its value goes back into the hook)."""

    name = "waits"

    def __init__(self) -> None:
        self.futures: list[asyncio.Future] = []

    async def on_complete(self, ex) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        try:
            value = await fut
            _log(ex, f"waited:{value}")
            value = await asyncio.sleep(0, "again")     # a bare yield, then a value
            _log(ex, f"then:{value}")
        except asyncio.CancelledError:
            _log(ex, "cancelled")
            raise


class Fails(Guard):
    name = "fails"

    async def on_complete(self, ex) -> None:
        raise RuntimeError("boom")


def _exchange(rid: str, *guards: Guard) -> Exchange:
    ex = Exchange(rid, "POST", "/v1/chat/completions", "", {}, None, None)
    ex.scope = SimpleNamespace(complete_guards=guards, name="base")
    return ex


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_hooks_that_do_not_wait_complete_in_the_callback_without_a_task():
    holder = Holder()
    ex = _exchange("a", Counts(), Counts())
    holder.finish(ex)
    assert holder.recorded == []          # not before the edge is done with it
    await asyncio.sleep(0)
    assert holder.recorded == [("a", ["counts", "counts"])]
    assert not holder._tasks
    assert ex.cost == 0.0 and set(ex.guard_seconds) == {"counts"}


async def test_a_hook_that_waits_goes_on_in_a_tracked_task():
    holder = Holder()
    waits = Waits()
    ex = _exchange("b", Counts(), waits, Counts())
    holder.finish(ex)
    await _turns()
    assert holder.recorded == []
    assert len(holder._tasks) == 1 and len(waits.futures) == 1
    waits.futures[0].set_result(7)
    await _turns()
    assert holder.recorded == [("b", ["counts", "waited:7", "then:again", "counts"])]
    assert not holder._tasks              # the task is done and no longer tracked


async def test_a_bare_yield_first_goes_on_in_a_task_too():
    holder = Holder()
    ex = _exchange("c", Counts())
    ex.state["yield"] = True
    holder.finish(ex)
    await asyncio.sleep(0)
    assert holder.recorded == [] and len(holder._tasks) == 1
    await asyncio.gather(*holder._tasks)
    assert holder.recorded == [("c", ["counts"])]


@pytest.mark.parametrize("how", ["cancel_waiter", "cancel_task"])
async def test_cancelling_the_task_reaches_the_waiting_hook(how):
    holder = Holder()
    waits = Waits()
    ex = _exchange("d", waits, Counts())
    holder.finish(ex)
    await _turns()
    (task,) = holder._tasks
    if how == "cancel_waiter":
        waits.futures[0].cancel()
    else:
        task.cancel()
    await _turns()
    assert task.done()
    # a cancellation is no fault of the hook's: it ends the completion, which records it
    assert holder.recorded == [("d", ["cancelled"])]


class Yields(Guard):
    """Yields to the loop (bare yields): a task cancelled meanwhile throws into its coroutine."""

    name = "yields"

    async def on_complete(self, ex) -> None:
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            _log(ex, "yielded")
        except asyncio.CancelledError:
            _log(ex, "cancelled")
            raise


async def test_a_cancellation_thrown_into_the_task_goes_on_into_the_hook():
    holder = Holder()
    ex = _exchange("g", Yields(), Counts())
    holder.finish(ex)
    await asyncio.sleep(0)      # the callback ran: the hook yielded once, a task took over
    (task,) = holder._tasks
    await asyncio.sleep(0)      # the task's first step: the hook yielded again (no future)
    task.cancel()
    await _turns()
    assert task.cancelled()
    assert holder.recorded == [("g", ["cancelled"])]
    other = Holder()
    ex = _exchange("h", Yields(), Counts())
    other.finish(ex)
    await _turns(6)
    assert other.recorded == [("h", ["yielded", "counts"])]


async def test_same_hooks_and_record_as_awaiting_complete():
    for guards in ([Counts()], [Counts(), Fails(), Counts()], [Fails()]):
        old, new = Holder(), Holder()
        ex_old, ex_new = _exchange("e", *guards), _exchange("e", *guards)
        await old.complete(ex_old)
        new.finish(ex_new)
        await _turns()
        assert new.recorded == old.recorded
        assert ex_new.uninspected == ex_old.uninspected == (
            ["fails.on_complete: RuntimeError"] if any(isinstance(g, Fails) for g in guards) else [])
        assert set(ex_new.guard_seconds) == set(ex_old.guard_seconds)


async def test_stop_waits_for_a_waiting_completion():
    holder = Holder()
    waits = Waits()
    ex = _exchange("f", waits)
    holder.finish(ex)
    await _turns()
    asyncio.get_running_loop().call_later(0.05, waits.futures[0].set_result, 1)
    await asyncio.gather(*holder._tasks)     # what stop() does first
    assert holder.recorded == [("f", ["waited:1", "then:again"])]


def test_the_record_and_the_metrics_get_the_upstream_duration_of_the_exchange():
    """PolicyHolder.record walks the spans once and hands the duration to both."""
    from proxy.durations import upstream_seconds
    from proxy.resilience.reachability import Reachability
    from tests.audit.helpers import make_exchange

    got = []

    class Sink:
        def submit(self, ex, upstream):
            got.append(("audit", upstream))

        def observe(self, ex, upstream):
            got.append(("metrics", upstream))

    holder = PolicyHolder.__new__(PolicyHolder)
    holder.reachability, holder.audit, holder.telemetry = Reachability(), Sink(), Sink()
    for i in range(3):
        ex = make_exchange(i)
        if i == 1:
            ex.spans.append(("upstream", ex.started, ex.started + 0.5))
        if i == 2:
            ex.spans = []
        want = upstream_seconds(ex)
        got.clear()
        PolicyHolder.record(holder, ex)
        assert got == [("audit", want), ("metrics", want)]
