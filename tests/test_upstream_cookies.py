"""The upstream session is shared by every client: it keeps no cookies between exchanges."""
from types import SimpleNamespace

from aiohttp import web

from proxy.upstream import UpstreamPool


async def test_a_cookie_an_upstream_sets_is_not_sent_on_later_requests():
    seen = []

    async def answer(request):
        seen.append(request.headers.get("Cookie"))
        resp = web.json_response({})
        resp.set_cookie("session", "set-for-the-first-caller")
        return resp
    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    # a host name, not an address: aiohttp's default jar keeps cookies only for names
    url = f"http://localhost:{port}/"
    pool = UpstreamPool()
    try:
        session = pool.session(SimpleNamespace(base_url=f"http://localhost:{port}", max_connections=4))
        for headers in ({}, {}, {"Cookie": "own=1"}):
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["Set-Cookie"].startswith("session=")   # still reaches the client
    finally:
        await pool.close()
        await runner.cleanup()
    assert seen == [None, None, "own=1"]
