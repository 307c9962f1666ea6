"""proxy/deadline.py and the upstream connections' read timeout: asyncio.timeout's behaviour with
one timer for many phases (the edge's upstream timeouts rely on both)."""
import asyncio
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler

from proxy.deadline import Deadline
from proxy.upstream import LazyReadTimeout, UpstreamPool


async def test_a_section_past_its_deadline_raises_timeout_error():
    deadline = Deadline()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        with deadline.after(0.05):
            await asyncio.sleep(5)
    assert asyncio.get_running_loop().time() - started < 1
    assert asyncio.current_task().cancelling() == 0      # the cancellation was taken back
    deadline.close()


async def test_a_deadline_moved_later_fires_at_the_later_time_without_a_new_timer():
    loop = asyncio.get_running_loop()
    deadline = Deadline()
    with deadline.after(0.05):
        await asyncio.sleep(0.01)
    handle = deadline._handle
    started = loop.time()
    with pytest.raises(TimeoutError):
        with deadline.after(0.3):          # later than the armed timer: the same timer, re-armed when it fires
            assert deadline._handle is handle
            await asyncio.sleep(5)
    assert 0.25 < loop.time() - started < 1.5
    deadline.close()


async def test_a_deadline_moved_earlier_fires_at_the_earlier_time():
    loop = asyncio.get_running_loop()
    deadline = Deadline()
    with deadline.after(60):
        await asyncio.sleep(0)
    started = loop.time()
    with pytest.raises(TimeoutError):
        with deadline.after(0.05):
            await asyncio.sleep(5)
    assert loop.time() - started < 1
    deadline.close()


async def test_nothing_is_cancelled_outside_a_section():
    deadline = Deadline()
    with deadline.after(0.02):
        pass
    await asyncio.sleep(0.1)               # the timer fires here: no section, nothing happens
    with deadline.after(5):
        await asyncio.sleep(0.01)
    deadline.close()
    assert deadline._handle is None


async def test_another_cancellation_is_not_turned_into_a_timeout():
    async def work():
        deadline = Deadline()
        try:
            with deadline.after(5):
                await asyncio.sleep(5)
        finally:
            deadline.close()

    task = asyncio.create_task(work())
    await asyncio.sleep(0.01)
    task.cancel()                          # the client went away
    with pytest.raises(asyncio.CancelledError):
        await task


async def _server(handler):
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def test_upstream_connections_time_reads_with_one_timer_each():
    async def answer(request):
        if request.query.get("stall"):
            await asyncio.sleep(2)
        return web.json_response({})
    runner, port = await _server(answer)
    pool = UpstreamPool()
    base = f"http://127.0.0.1:{port}"
    try:
        session = pool.session(SimpleNamespace(base_url=base, max_connections=1))
        timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
        assert session.connector._factory.func is LazyReadTimeout
        for _ in range(5):
            async with session.get(base + "/", timeout=timeout) as resp:
                assert resp.status == 200
                await resp.read()
        loop = asyncio.get_running_loop()
        # cancelled ones too: aiohttp's own protocol leaves two per request on the loop's heap
        timers = [h for h in loop._scheduled if isinstance(getattr(h._callback, "__self__", None), ResponseHandler)]
        assert len(timers) <= 1            # one keep-alive connection, one timer, five requests
        started = loop.time()
        with pytest.raises(aiohttp.ServerTimeoutError):
            async with session.get(base + "/?stall=1", timeout=aiohttp.ClientTimeout(total=None, sock_read=0.2)) as resp:
                await resp.read()
        assert loop.time() - started < 1.5     # the read timeout still fires on time
    finally:
        await pool.close()
        await runner.cleanup()
