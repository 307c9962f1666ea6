"""One upstream request without ``ClientSession._request``: aiohttp's pool, connection protocol
and C response parser, with the request bytes built here.

``ClientSession.request`` pays per request for machinery the edge never uses (redirects,
cookies, auth, proxies, traces, middlewares, payload objects, a writer task for the body, a
timeout handle, a ClientRequest and its header multidict). ``UpstreamClient.send`` keeps what
matters to the wire and to the pool: the session's connector hands out a pooled connection (or
opens one, TLS and connect timeout included), the request goes out as one write, and the
connection's ResponseHandler parses the answer with aiohttp's own parser. The answer is an
``UpstreamResponse`` with the part of ClientResponse the edge reads.

What goes on the wire is what ClientSession.request wrote for the same call (the test in
tests/test_upclient.py compares the bytes): Host first, then the given headers in order, then
``Accept: */*`` unless given, ``Content-Length`` (``0`` for a bodiless method that carries one),
and ``Content-Type: application/octet-stream`` for a body sent without one. A request with an
``Expect`` header (ClientSession waits for the 100 Continue before the body), one that sets
its own Host or framing, and every request to a base URL with credentials in it (ClientSession
turns them into Basic auth) go through ClientSession.request.
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Union

import aiohttp
import yarl
from multidict import CIMultiDict, CIMultiDictProxy
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.helpers import HeadersMixin, TimerNoop
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_writer import _serialize_headers

# ClientRequest's split: methods that carry no Content-Length when sent without a body, and
# those that get a default Content-Type
_BODILESS = frozenset(ClientRequest.GET_METHODS)
_POST_METHODS = frozenset(ClientRequest.POST_METHODS)
_TIMER = TimerNoop()
_METHODS = frozenset(ClientRequest.ALL_METHODS)
_NOT_TOKEN = re.compile(r"[^-!#$%&'*+.^_`|~0-9a-zA-Z]")    # RFC 9110 5.6.2 tchar
# headers that change how ClientSession frames or sends the request: such a request goes its way
_HANDED_ON = ("Expect", "Host", "Content-Length", "Transfer-Encoding")
# what ClientSession sends once more on a connection that drops before the answer
_IDEMPOTENT = getattr(aiohttp.client, "IDEMPOTENT_METHODS",
                      frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}))


def _internals_present(session: aiohttp.ClientSession) -> bool:
    """Whether this aiohttp has the internals the fast path builds on (those of 3.14): with one
    that lacks any, every request goes through ClientSession.request."""
    try:
        params = inspect.signature(ResponseHandler.set_response_params).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return ({"max_headers", "read_timeout", "skip_payload", "timeout_ceil_threshold"} <= params.keys()
            and all(hasattr(session, n) for n in ("_loop", "_read_bufsize", "_max_line_size",
                                                   "_max_field_size", "_max_headers"))
            and hasattr(session.connector, "_timeout_ceil_threshold")
            and all(hasattr(ResponseHandler, n) for n in ("_drain_helper", "writing_paused", "start_timeout",
                                                          "read", "_parser", "read_timeout")))


class _Pairs(list):
    """Header pairs for aiohttp's header serializer, which iterates ``headers.items()``."""

    def items(self):
        return self


class UpstreamResponse(HeadersMixin):
    """An upstream answer once its headers are in: what the edge reads of a ClientResponse.

    The connection goes back to the pool when the body has been read to its end; ``release``
    before that closes it (the connector closes one whose payload is not at EOF, or that the
    answer or a parse error marked for closing), and so does ``close``."""

    def __init__(self, message, payload, connection) -> None:
        self.status: int = message.code
        self.reason: str = message.reason
        self.version = message.version
        self._headers = self.headers = message.headers     # HeadersMixin reads _headers
        self.content = payload
        self.connection = connection
        self._body: bytes | None = None
        # as ClientResponse: the connection goes back to the pool as soon as the body is in,
        # not when the edge is done with the answer (a guard's side call or a repair on a pool
        # of one must not wait for it)
        payload.on_eof(self._at_eof)

    def _at_eof(self) -> None:
        conn = self.connection
        if conn is not None and not conn.protocol.upgraded:
            self.release()

    async def read(self) -> bytes:
        if self._body is None:
            try:
                self._body = await self.content.read()
            except BaseException:
                self.close()
                raise
        return self._body

    def release(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.release()

    def close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.close()


# what UpstreamClient.send returns: the fast path's answer, or ClientSession's for what it hands on
Answer = Union[UpstreamResponse, aiohttp.ClientResponse]


class UpstreamClient:
    """Requests to one upstream origin over ``session``'s connector (its pool, limit, TLS)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._connector = session.connector
        origin = yarl.URL(base_url, encoded=True)
        # credentials in the base URL become ClientSession's Basic auth: left to it
        self._plain = bool(origin.raw_user or origin.raw_password) or not _internals_present(session)
        if self._plain:
            return
        # one ClientRequest stands for every request of this origin when the connector picks or
        # opens a connection: it reads only where to connect (host, port, TLS, SNI, proxy)
        self._target = ClientRequest("GET", origin.origin(), loop=session._loop, ssl=True)
        self._host = origin.host_port_subcomponent
        self._parser_params = dict(
            timer=_TIMER, read_until_eof=True, auto_decompress=False,
            read_bufsize=session._read_bufsize,
            timeout_ceil_threshold=self._connector._timeout_ceil_threshold,
            max_line_size=session._max_line_size, max_field_size=session._max_field_size,
            max_headers=session._max_headers)

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def send(self, method: str, url: str, headers, body: bytes,
                   timeout: aiohttp.ClientTimeout):
        """Send one request and return its answer once the headers are in. ``url`` must be on
        this client's origin (upstream_url's result); ``headers`` a CIMultiDict. Raises what
        ClientSession.request raises."""
        method = method.upper()      # as ClientSession, which also refuses a method not a token
        if method not in _METHODS and _NOT_TOKEN.search(method):
            raise ValueError(f"Method cannot contain non-token characters {method!r}")
        if not self._plain and not any(name in headers for name in _HANDED_ON):   # case-insensitive
            head = self._head(method, _path_qs(url), headers, body)
        else:
            return await self._session.request(
                method, _encoded_url(url), data=body or None, headers=headers,
                allow_redirects=False, timeout=timeout)
        retry = method in _IDEMPOTENT     # as ClientSession: once, on a stale connection
        while True:
            try:
                return await self._exchange(method, head, body, timeout)
            except aiohttp.ClientConnectorError:     # no connection at all: nothing to retry
                raise
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                if not retry:
                    raise
                retry = False
            except aiohttp.ClientError:
                raise
            except OSError as exc:
                if exc.errno is None and isinstance(exc, TimeoutError):
                    raise
                raise aiohttp.ClientOSError(*exc.args) from exc

    def _head(self, method: str, path_qs: str, headers, body: bytes) -> bytes:
        pairs = _Pairs([("Host", self._host)])
        pairs.extend(headers.items())
        if "Accept" not in headers:
            pairs.append(("Accept", "*/*"))
        if body:
            pairs.append(("Content-Length", str(len(body))))
            if "Content-Type" not in headers:
                pairs.append(("Content-Type", "application/octet-stream"))
        elif method not in _BODILESS:
            pairs.append(("Content-Length", "0"))
            if method in _POST_METHODS and "Content-Type" not in headers:
                pairs.append(("Content-Type", "application/octet-stream"))
        # raises ValueError for a control character (CR, LF, NUL...) in any name or value
        return _serialize_headers(f"{method} {path_qs} HTTP/1.1", pairs)

    async def _exchange(self, method: str, head: bytes, body: bytes, timeout: aiohttp.ClientTimeout):
        try:
            conn = await self._connector.connect(self._target, [], timeout)
        except TimeoutError as exc:
            raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {self._target.url}") from exc
        try:
            protocol = conn.protocol
            self._set_parser(protocol, method == "HEAD", timeout.sock_read)
            protocol.transport.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                protocol.transport.write(body)
            if protocol.writing_paused:
                await protocol._drain_helper()
            protocol.start_timeout()     # sock_read: the first byte, from the end of the upload
            while True:
                try:
                    message, payload = await protocol.read()
                except HttpProcessingError as exc:
                    raise aiohttp.ClientResponseError(self._request_info(method), (), status=exc.code,
                                                      message=exc.message, headers=exc.headers) from exc
                code = message.code
                if code < 100 or code > 199 or code == 101:
                    return UpstreamResponse(message, payload, conn)
        except BaseException:
            conn.close()
            raise

    def _set_parser(self, protocol, skip_payload: bool, read_timeout: float | None) -> None:
        """Ready ``protocol`` for an answer. A connection back from the pool had its last answer
        read to the end, so the parser this client gave it for the same kind of answer (HEAD or
        not) starts the next message as a fresh one would (llhttp resets per message, as on
        aiohttp's server side); a parser someone else set (a side call through the session)
        or none is replaced, as ClientSession replaces it for every request."""
        made = getattr(protocol, "_upclient_parser", None)
        if made is not None and made[0] is self and made[1] is protocol._parser and made[2] == skip_payload:
            protocol.read_timeout = read_timeout
            return
        protocol.set_response_params(skip_payload=skip_payload, read_timeout=read_timeout,
                                     **self._parser_params)
        protocol._upclient_parser = (self, protocol._parser, skip_payload)

    def _request_info(self, method: str) -> aiohttp.RequestInfo:
        url = self._target.url
        return aiohttp.RequestInfo(url, method, CIMultiDictProxy(CIMultiDict()), url)


@functools.lru_cache(maxsize=1024)
def _encoded_url(url: str) -> yarl.URL:
    # encoded=True: the URL goes out exactly as built, nothing re-normalises the path
    return yarl.URL(url, encoded=True)


@functools.lru_cache(maxsize=1024)
def _path_qs(url: str) -> str:
    return _encoded_url(url).raw_path_qs
