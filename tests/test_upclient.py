"""The edge's upstream request path (proxy/upclient.py) on the wire, against raw socket servers:
the bytes it writes are those ClientSession.request wrote, the answers it reads (chunked,
close-delimited, bodiless, malformed, oversized), and when a connection is reused or closed."""
from __future__ import annotations

import asyncio
import ssl
from types import SimpleNamespace

import aiohttp
import pytest
import yarl
from multidict import CIMultiDict

from proxy import upclient
from proxy.upclient import UpstreamClient, UpstreamResponse
from proxy.upstream import UpstreamPool
from tests.resilience.test_reachability import _self_signed

pytestmark = pytest.mark.timeout(30)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5, sock_read=5)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class RawServer:
    """An HTTP/1.1 server on a bare asyncio socket: records each request's bytes and the
    connection it came on, and answers with ``answer(index, request_bytes)``: bytes to send, or
    None to close the connection without answering. ``close_after`` closes each connection once
    it has answered that many requests."""

    def __init__(self, answer, close_after: int | None = None, interim: bytes = b"") -> None:
        self.answer = answer
        self.close_after = close_after
        self.interim = interim          # sent once the head is in, before the body is read
        self.requests: list[tuple[int, bytes]] = []     # (connection number, raw request)
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, ssl_context=None) -> "RawServer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        answered = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if self.interim:
                    writer.write(self.interim)
                raw = head + (await reader.readexactly(length) if length else b"")
                self.requests.append((number, raw))
                reply = self.answer(len(self.requests) - 1, raw)
                if reply is None:
                    return
                writer.write(reply)
                await writer.drain()
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    return
        finally:
            writer.close()

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


def _ok_or_head(index: int, raw: bytes) -> bytes:
    return OK if not raw.startswith(b"HEAD ") else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"


def _client(pool: UpstreamPool, port: int, scheme: str = "http", host: str = "127.0.0.1") -> UpstreamClient:
    return pool.client(SimpleNamespace(base_url=f"{scheme}://{host}:{port}", max_connections=4))


async def _get(client: UpstreamClient, port: int, path: str = "/v1/models", method: str = "GET",
               headers=None, body: bytes = b"", host: str = "127.0.0.1") -> tuple[int, bytes]:
    resp = await client.send(method, f"http://{host}:{port}{path}", CIMultiDict(headers or {}), body, TIMEOUT)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


@pytest.fixture
async def pool():
    p = UpstreamPool()
    yield p
    await p.close()


# --- what goes on the wire -------------------------------------------------------------

WIRE_CASES = [
    ("POST", "/v1/chat/completions", {"Content-Type": "application/json", "Authorization": "Bearer k",
                                      "Accept-Encoding": "gzip"}, b'{"model":"m"}'),
    ("POST", "/v1/chat/completions", {"Authorization": "Bearer k"}, b"raw body"),      # no type
    ("POST", "/v1/files", {"Accept": "application/json"}, b""),                         # no body
    ("GET", "/v1/models?limit=2&after=a%2Fb", {"X-Dup": "1"}, b""),
    ("DELETE", "/v1/files/f-1", {}, b""),
    ("HEAD", "/v1/models", {}, b""),
    ("GET", "/v1/models", {"Content-Type": "text/plain"}, b"a body on a GET"),
    ("PUT", "/v1/x", {}, b""),
    ("OPTIONS", "/v1/x", {"X-Dup": "1"}, b""),
    ("patch", "/v1/x", {}, b"x"),                                                       # upper-cased
]


@pytest.mark.parametrize("method,path,headers,body", WIRE_CASES)
async def test_the_request_bytes_are_those_client_session_wrote(pool, method, path, headers, body):
    server = await RawServer(_ok_or_head).start()
    try:
        hdrs = CIMultiDict(headers)
        if "X-Dup" in hdrs:
            hdrs.add("X-Dup", "2")      # a repeated header stays repeated, in order
        client = _client(pool, server.port)
        url = f"http://127.0.0.1:{server.port}{path}"
        resp = await client.send(method, url, hdrs, body, TIMEOUT)
        assert isinstance(resp, UpstreamResponse)
        await resp.read()
        resp.release()
        # the plain path, configured as the edge configured it (UpstreamPool.session)
        async with pool.session(SimpleNamespace(base_url=f"http://127.0.0.1:{server.port}",
                                                max_connections=4)).request(
                method, yarl.URL(url, encoded=True), data=body or None, headers=hdrs,
                allow_redirects=False, timeout=TIMEOUT) as plain:
            await plain.read()
    finally:
        await server.stop()
    (_, fast), (_, slow) = server.requests
    assert fast == slow
    assert fast.startswith(f"{method.upper()} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())


@pytest.mark.parametrize("name,value", [
    ("X-Bad", "a\r\nX-Injected: 1"), ("X-Bad", "a\nb"), ("X-Bad", "a\x00b"), ("X-Bad\r\nX-Injected", "1"),
    ("X-Bad:", "1\rb"),
])
async def test_control_characters_in_a_header_are_refused_before_anything_is_sent(pool, name, value):
    server = await RawServer(lambda i, raw: OK).start()
    try:
        with pytest.raises(ValueError, match="control character"):
            await _get(_client(pool, server.port), server.port, headers={name: value})
        assert await _get(_client(pool, server.port), server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert len(server.requests) == 1 and b"Injected" not in server.requests[0][1]


@pytest.mark.parametrize("method", ["GET /other HTTP/1.1", "GET\tX", "PO(ST"])
async def test_a_method_that_is_not_a_token_is_refused(pool, method):
    server = await RawServer(lambda i, raw: OK).start()
    try:
        with pytest.raises(ValueError, match="non-token"):
            await _get(_client(pool, server.port), server.port, method=method)
    finally:
        await server.stop()
    assert server.requests == []


@pytest.mark.parametrize("header", [("Expect", "100-continue"), ("expect", "100-continue"),
                                    ("Host", "elsewhere"), ("content-length", "4")])
async def test_a_request_that_sets_expect_host_or_framing_goes_the_plain_way(pool, header):
    # ClientSession holds the body back until the 100 Continue, and lets a given Host or
    # Content-Length stand: the fast path does neither
    server = await RawServer(lambda i, raw: OK, interim=b"HTTP/1.1 100 Continue\r\n\r\n").start()
    try:
        resp = await _client(pool, server.port).send(
            "POST", f"http://127.0.0.1:{server.port}/v1/x", CIMultiDict([header]), b"body", TIMEOUT)
        try:
            assert isinstance(resp, aiohttp.ClientResponse) and resp.status == 200
            assert await resp.read() == b"{}"
        finally:
            resp.release()
    finally:
        await server.stop()


async def test_credentials_in_the_base_url_go_the_plain_way(pool):
    server = await RawServer(lambda i, raw: OK).start()
    try:
        base = f"http://user:pw@127.0.0.1:{server.port}"
        client = pool.client(SimpleNamespace(base_url=base, max_connections=4))
        resp = await client.send("GET", base + "/v1/models", CIMultiDict(), b"", TIMEOUT)
        assert isinstance(resp, aiohttp.ClientResponse) and await resp.read() == b"{}"
        resp.release()
    finally:
        await server.stop()
    assert b"\r\nAuthorization: Basic dXNlcjpwdw==\r\n" in server.requests[0][1]


# --- reading the answer ----------------------------------------------------------------

async def test_chunked_answer_with_extensions_and_trailers_keeps_the_connection(pool):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
               b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = await RawServer(lambda i, raw: chunked if i == 0 else OK).start()
    try:
        client = _client(pool, server.port)
        resp = await client.send("GET", f"http://127.0.0.1:{server.port}/a", CIMultiDict(), b"", TIMEOUT)
        assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]     # duplicates kept
        assert await resp.read() == b"hello world"
        resp.release()
        assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 1]      # trailers read: the connection is reused


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 OK\r\nConnection: close", b"HTTP/1.0 200 OK"])
async def test_close_delimited_answer_is_read_to_the_end_and_not_reused(pool, status_line):
    server = await RawServer(lambda i, raw: status_line + b"\r\n\r\nuntil the end" if i == 0 else OK,
                             close_after=1).start()
    try:
        client = _client(pool, server.port)
        assert await _get(client, server.port) == (200, b"until the end")
        assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 2]


async def test_keep_alive_connections_are_reused(pool):
    server = await RawServer(lambda i, raw: OK).start()
    try:
        client = _client(pool, server.port)
        for _ in range(5):
            assert await _get(client, server.port, method="POST", body=b"x") == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1] * 5


async def test_a_connection_whose_answer_was_not_read_is_closed_not_reused(pool):
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 2000000
    server = await RawServer(lambda i, raw: big if i == 0 else OK).start()
    try:
        client = _client(pool, server.port)
        resp = await client.send("GET", f"http://127.0.0.1:{server.port}/a", CIMultiDict(), b"", TIMEOUT)
        assert len(await resp.content.readany()) < 2000000
        resp.release()
        assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 2]


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
])
async def test_bodiless_answers_end_at_their_headers(pool, answer):
    server = await RawServer(lambda i, raw: answer if i == 0 else OK).start()
    try:
        client = _client(pool, server.port)
        status, body = await _get(client, server.port)
        assert (status, body) == (int(answer[9:12]), b"")
        assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 1]


async def test_head_answer_has_no_body_whatever_its_length(pool):
    server = await RawServer(lambda i, raw: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" if i == 0 else OK).start()
    try:
        client = _client(pool, server.port)
        assert await _get(client, server.port, method="HEAD") == (200, b"")
        assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 1]


async def test_interim_answers_are_skipped(pool):
    server = await RawServer(lambda i, raw: b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK).start()
    try:
        assert await _get(_client(pool, server.port), server.port) == (200, b"{}")
    finally:
        await server.stop()


async def test_an_idle_connection_the_server_closed_is_not_used(pool):
    server = await RawServer(lambda i, raw: OK, close_after=1).start()
    try:
        client = _client(pool, server.port)
        assert await _get(client, server.port, method="POST", body=b"1") == (200, b"{}")
        for _ in range(50):        # the close reaches the pooled connection
            await asyncio.sleep(0.01)
            if server.requests and not pool.session(SimpleNamespace(
                    base_url=f"http://127.0.0.1:{server.port}", max_connections=4)).connector._conns:
                break
        assert await _get(client, server.port, method="POST", body=b"2") == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 2]


@pytest.mark.parametrize("method,retried", [("GET", True), ("POST", False)])
async def test_only_idempotent_requests_are_sent_again_when_the_connection_drops(pool, method, retried):
    # as ClientSession: the first connection closes without answering
    server = await RawServer(lambda i, raw: None if i == 0 else OK).start()
    try:
        client = _client(pool, server.port)
        if retried:
            assert await _get(client, server.port, method=method) == (200, b"{}")
        else:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await _get(client, server.port, method=method)
    finally:
        await server.stop()
    assert len(server.requests) == (2 if retried else 1)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",              # malformed status line
    b"NOT HTTP\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",    # a header over aiohttp's 8190
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
])
async def test_a_malformed_answer_is_a_client_error_and_the_connection_is_dropped(pool, answer):
    server = await RawServer(lambda i, raw: answer if i == 0 else OK).start()
    try:
        client = _client(pool, server.port)
        with pytest.raises(aiohttp.ClientResponseError):
            await _get(client, server.port, method="POST")
        assert await _get(client, server.port, method="POST") == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1, 2]


async def test_a_silent_upstream_hits_the_first_byte_timeout(pool):
    server = await RawServer(lambda i, raw: b"").start()     # reads the request, never answers
    try:
        client = _client(pool, server.port)
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5, sock_read=0.2)
        with pytest.raises(aiohttp.SocketTimeoutError):
            await client.send("POST", f"http://127.0.0.1:{server.port}/a", CIMultiDict(), b"x", timeout)
    finally:
        await server.stop()


async def test_a_refused_connection_is_a_connector_error_and_not_tried_again(pool):
    sock_server = await RawServer(lambda i, raw: OK).start()
    port = sock_server.port
    await sock_server.stop()
    client = _client(pool, port)
    connector = client._connector
    tries = []

    async def counted(*args, **kwargs):
        tries.append(1)
        return await type(connector).connect(connector, *args, **kwargs)
    connector.connect = counted
    with pytest.raises(aiohttp.ClientConnectorError):
        await _get(client, port)           # a GET: sent again on a dropped connection, not here
    assert len(tries) == 1


async def test_tls_verifies_the_certificate_and_sends_the_host_name(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    names: list = []
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)
    server = await RawServer(lambda i, raw: OK).start(server_ctx)
    url = f"https://localhost:{server.port}/v1/models"
    pool = UpstreamPool()
    trusting = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(cert))))
    try:
        # the edge's pool verifies against the system's roots: a self-signed certificate fails
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _client(pool, server.port, "https", "localhost").send("GET", url, CIMultiDict(), b"", TIMEOUT)
        client = UpstreamClient(trusting, f"https://localhost:{server.port}")
        for _ in range(2):
            resp = await client.send("GET", url, CIMultiDict(), b"", TIMEOUT)
            assert (resp.status, await resp.read()) == (200, b"{}")
            resp.release()
    finally:
        await trusting.close()
        await pool.close()
        await server.stop()
    assert len(names) >= 2 and set(names) == {"localhost"}      # SNI on every handshake
    assert [n for n, _ in server.requests] == [1, 1]   # the TLS connection is reused
    assert server.requests[0][1].startswith(b"GET /v1/models HTTP/1.1\r\nHost: localhost:")


SEQUENCE = [   # (method, answer) on one keep-alive connection
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"),
    ("POST", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("HEAD", b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
    ("POST", b"HTTP/1.1 429 Too Many\r\nContent-Length: 2\r\nRetry-After: 1\r\n\r\n{}"),
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
]


async def test_answers_read_on_one_connection_match_those_with_a_new_parser_each(pool):
    # the fast path keeps a connection's parser from one answer to the next; ClientSession
    # makes a new one per request
    results = {}
    for way in ("fast", "plain"):
        answers = iter([a for _, a in SEQUENCE])
        server = await RawServer(lambda i, raw: next(answers)).start()
        base = f"http://127.0.0.1:{server.port}"
        got = []
        try:
            for method, _ in SEQUENCE:
                if way == "fast":
                    resp = await _client(pool, server.port).send(method, base + "/a", CIMultiDict(), b"", TIMEOUT)
                else:
                    resp = await pool.session(SimpleNamespace(base_url=base, max_connections=4)).request(
                        method, base + "/a", allow_redirects=False, timeout=TIMEOUT)
                got.append((resp.status, list(resp.headers.items()), await resp.read()))
                resp.release()
        finally:
            await server.stop()
        assert {n for n, _ in server.requests} == {1}
        results[way] = got
    assert results["fast"] == results["plain"]


async def test_a_side_call_on_a_pooled_connection_leaves_it_fit_for_the_fast_path(pool):
    # post_json goes through the session (its own parser, a total timeout) on the same pool
    server = await RawServer(_ok_or_head).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        client = _client(pool, server.port)
        session = pool.session(SimpleNamespace(base_url=base, max_connections=4))
        for method in ("POST", "HEAD"):      # a HEAD's parser expects no body: it must not stay
            assert await _get(client, server.port) == (200, b"{}")
            async with session.request(method, base + "/side", data=b"{}",
                                       timeout=aiohttp.ClientTimeout(total=5)) as r:
                assert await r.read() == (b"{}" if method == "POST" else b"")
            assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1] * 6


async def test_the_connection_is_back_in_the_pool_once_the_body_is_read(pool):
    # a pool of one: the answer is still held (a guard, a repair) when the next request goes
    server = await RawServer(lambda i, raw: OK).start()
    try:
        client = pool.client(SimpleNamespace(base_url=f"http://127.0.0.1:{server.port}", max_connections=1))
        url = f"http://127.0.0.1:{server.port}/a"
        held = []
        for _ in range(3):
            resp = await asyncio.wait_for(client.send("POST", url, CIMultiDict(), b"x", TIMEOUT), 3)
            assert await resp.read() == b"{}"
            held.append(resp)
        for resp in held:
            resp.release()
            resp.close()         # a no-op once the connection went back
        assert await _get(client, server.port) == (200, b"{}")
    finally:
        await server.stop()
    assert [n for n, _ in server.requests] == [1] * 4


async def test_an_aiohttp_without_the_internals_it_builds_on_gets_client_session(pool, monkeypatch):
    server = await RawServer(lambda i, raw: OK).start()
    try:
        up = SimpleNamespace(base_url=f"http://127.0.0.1:{server.port}", max_connections=4)
        session = pool.session(up)
        assert upclient._internals_present(session)          # this aiohttp has them
        lacking = SimpleNamespace(**{n: getattr(session, n) for n in (
            "_loop", "_read_bufsize", "_max_line_size", "_max_field_size")}, connector=session.connector)
        assert not upclient._internals_present(lacking)      # no _max_headers
        monkeypatch.setattr(upclient, "_internals_present", lambda session: False)
        resp = await UpstreamClient(session, up.base_url).send("GET", up.base_url + "/a", CIMultiDict(), b"",
                                                               TIMEOUT)
        assert isinstance(resp, aiohttp.ClientResponse) and await resp.read() == b"{}"
        resp.release()
    finally:
        await server.stop()
