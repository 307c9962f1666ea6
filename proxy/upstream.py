"""The client side of the edge: pooled aiohttp sessions, URL building, header filtering.

Bodies are never decompressed by aiohttp (``auto_decompress=False``): what passes through keeps
its ``content-encoding`` and bytes; the edge decompresses only what it must inspect, and then
drops the header.
"""
from __future__ import annotations

import functools
import zlib
from typing import Mapping
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict

from .canonical import encode_path, encode_segment
from .upclient import UpstreamClient

# RFC 9110 section 7.6.1 hop-by-hop headers, plus those aiohttp recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
AUTH_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})


class LazyReadTimeout(ResponseHandler):
    """aiohttp's connection protocol with its read timeout (``sock_read``: the first-byte
    timeout) kept by one timer per connection instead of a new timer per request and per read.

    aiohttp re-arms sock_read when a request has been written and again on every read, each time
    cancelling a TimerHandle and scheduling a new one. Here re-arming only records the new
    deadline; the pending timer, when it fires before it, re-arms itself for it, and stopping the
    timeout clears the deadline, so a timer that fires then does nothing. The timeout fires at the
    same moment as aiohttp's would (the last read or write plus ``sock_read``). A connection that
    is lost cancels its timer, so no timer outlives its connection."""

    _read_deadline: float | None = None
    _read_armed_at = 0.0

    def _drop_timeout(self) -> None:
        self._read_deadline = None

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._read_deadline = None
            return
        when = self._loop.time() + timeout
        self._read_deadline = when
        handle = self._read_timeout_handle
        if handle is None or when < self._read_armed_at:
            if handle is not None:
                handle.cancel()
            self._read_timeout_handle = self._loop.call_at(when, self._read_timer_fired)
            self._read_armed_at = when

    def _read_timer_fired(self) -> None:
        self._read_timeout_handle = None
        when = self._read_deadline
        if when is None:
            return
        if self._loop.time() < when:
            self._read_timeout_handle = self._loop.call_at(when, self._read_timer_fired)
            self._read_armed_at = when
            return
        self._read_deadline = None
        self._on_read_timeout()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self._read_timeout_handle is not None:
            self._read_timeout_handle.cancel()
            self._read_timeout_handle = None


# the aiohttp internals LazyReadTimeout replaces; with another aiohttp that lacks them the
# connector keeps its own protocol
_LAZY_READ_TIMEOUT = all(hasattr(ResponseHandler, name) for name in (
    "_reschedule_timeout", "_drop_timeout", "_on_read_timeout", "connection_lost"))


def _connector(limit: int) -> aiohttp.TCPConnector:
    connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300, enable_cleanup_closed=True)
    factory = getattr(connector, "_factory", None)
    if _LAZY_READ_TIMEOUT and isinstance(factory, functools.partial) and factory.func is ResponseHandler:
        connector._factory = functools.partial(LazyReadTimeout, *factory.args, **factory.keywords)
    return connector


class UpstreamPool:
    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], aiohttp.ClientSession] = {}
        self._clients: dict[tuple[str, int], UpstreamClient] = {}

    def client(self, up) -> UpstreamClient:
        """The request path of the edge (proxy/upclient.py) over ``session(up)``'s pool."""
        key = (up.base_url, up.max_connections)
        client = self._clients.get(key)
        if client is None or client.closed:
            client = self._clients[key] = UpstreamClient(self.session(up), up.base_url)
        return client

    def session(self, up) -> aiohttp.ClientSession:
        key = (up.base_url, up.max_connections)
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = _connector(up.max_connections)
            # DummyCookieJar: the session is shared by every client, so a cookie one upstream
            # answer set must not ride along on other clients' requests (a client's own Cookie
            # header is forwarded as it is)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                            timeout=aiohttp.ClientTimeout(total=None),
                                            cookie_jar=aiohttp.DummyCookieJar(),
                                            skip_auto_headers=("User-Agent", "Accept-Encoding"))
            self._sessions[key] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        self._clients.clear()


def upstream_url(up, endpoint, query: str, model: str | None = None) -> str:
    """The upstream URL, already percent-encoded: always the policy's base URL plus a path from
    aifw's own route table, so no client input can point a provider key at another host.

    ``endpoint.upstream_path`` is canonical and decoded (proxy/canonical.py); it is encoded here
    by one rule, and the caller must hand the result to aiohttp as ``yarl.URL(url,
    encoded=True)`` so that nothing re-normalises it on the way out. ``query`` is the client's
    raw query string, checked by canonical_target."""
    return _url(up.provider, up.base_url, up.api_version, endpoint.kind, endpoint.upstream_path,
                endpoint.azure_deployment, query, model)


@functools.lru_cache(maxsize=1024)   # a pure function of strings: most requests repeat one
def _url(provider: str, base_url: str, api_version: str | None, kind: str, upstream_path: str,
         azure_deployment: str | None, query: str, model: str | None) -> str:
    if provider == "azure":
        deployment = azure_deployment or model
        if kind == "models" or not deployment:
            path = "/openai" + encode_path(upstream_path)
        else:
            # an OpenAI-style path routed to Azure: the model names the deployment
            path = f"/openai/deployments/{encode_segment(deployment)}{encode_path(upstream_path)}"
        if api_version and "api-version=" not in query:
            query = f"{query}&api-version={api_version}" if query else f"api-version={api_version}"
    elif provider == "anthropic":
        path = upstream_path if upstream_path.startswith("/v1/") else "/v1" + upstream_path
        path = encode_path(path)
    else:
        path = encode_path(upstream_path)
    url = base_url + path
    if query:
        url += "?" + query
    if urlsplit(url).netloc != urlsplit(base_url).netloc:  # defence in depth
        raise ValueError("upstream URL escaped its host")
    return url


# what never goes upstream: hop-by-hop headers, aifw's own, and the codings aifw sets itself
# (aiohttp's server decoded a gzip/deflate body before the proxy read it)
_REQUEST_DROP = HOP_BY_HOP | {"accept-encoding", "content-encoding"}
_VIRTUAL_DROP = _REQUEST_DROP | AUTH_HEADERS       # a virtual key's caller never sends its own key on


def _dropped(headers, base: frozenset) -> frozenset:
    """``base`` plus whatever the Connection header names (RFC 9110 7.6.1: hop-by-hop too)."""
    connection = headers.get("connection")
    if not connection:
        return base
    return base | {h.strip().lower() for h in connection.split(",") if h.strip()}


def request_headers(incoming: Mapping[str, str], up, virtual: bool) -> CIMultiDict:
    """Headers for the upstream. Content-Encoding never goes: aiohttp's server has decoded a
    gzip/deflate body before the proxy reads it, so what is forwarded is the decoded body."""
    out = forwarded_request_headers(incoming, virtual)
    if virtual and up.api_key:
        if up.provider == "azure":
            out["api-key"] = up.api_key
        elif up.provider == "anthropic":
            out["x-api-key"] = up.api_key
        else:
            out["Authorization"] = f"Bearer {up.api_key}"
    out["Accept-Encoding"] = accept_encoding(incoming.get("accept-encoding"))
    return out


def forwarded_request_headers(incoming: Mapping[str, str], virtual: bool) -> CIMultiDict:
    """The client's headers that go on: without hop-by-hop ones, aifw's own (x-aifw-*) and, with
    virtual keys, the client's credentials; the rest keep their order, case and repeats."""
    out = _without(incoming, _dropped(incoming, _VIRTUAL_DROP if virtual else _REQUEST_DROP))
    if "\nx-aifw-" in ("\n" + "\n".join(out.keys())).lower():     # rare: then name by name
        for name in [name for name in out.keys() if name.lower().startswith("x-aifw-")]:
            out.popall(name, None)
    return out


@functools.lru_cache(maxsize=256)    # clients send few distinct values; bounded all the same
def accept_encoding(client_value: str | None) -> str:
    """What to ask the upstream for: the encodings the client accepts that aifw can also decode.

    Compressed answers pass through as they are, so asking for more than the client accepts would
    hand it bytes it cannot read (a client that sends no Accept-Encoding gets identity).
    """
    wanted = []
    for item in (client_value or "").split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        q = params.strip().lower()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if name in ("gzip", "deflate") and name not in wanted:
            wanted.append(name)
        elif name == "*":
            wanted.extend(e for e in ("gzip", "deflate") if e not in wanted)
    return ", ".join(wanted) or "identity"


_RESPONSE_DROP_ENCODING = HOP_BY_HOP | {"content-encoding"}


def response_headers(upstream_headers, *, drop_encoding: bool) -> CIMultiDict:
    return _without(upstream_headers, _dropped(upstream_headers, _RESPONSE_DROP_ENCODING if drop_encoding
                                               else HOP_BY_HOP))


def _without(headers, drop: frozenset) -> CIMultiDict:
    """A copy of ``headers`` without the (lower-case) names in ``drop``, in any case: the rest
    keep their order, case and repeats (Set-Cookie, Link). A copy and a removal per name in
    ``drop`` cost a fraction of testing every header's lowered name."""
    out = CIMultiDict(headers)
    for name in drop:
        out.popall(name, None)
    return out


def decoder(encoding: str | None):
    """A zlib decompressor for gzip/deflate, None for identity; raises ValueError otherwise."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if enc == "deflate":
        return zlib.decompressobj(wbits=zlib.MAX_WBITS)
    raise ValueError(f"cannot decode content-encoding {encoding!r}")


class SideCallStatus(RuntimeError):
    """A side call was answered with a non-2xx status."""

    def __init__(self, target: str, status: int) -> None:
        super().__init__(f"{target}: HTTP {status}")
        self.status = status


async def post_json(pool: UpstreamPool, up, path: str, body, timeout: float,
                    headers: Mapping[str, str] | None = None):
    """POST a JSON body to ``up.base_url + path`` (a side call of a guard: a classifier, an
    operator's hook) and return the decoded JSON answer. ``up`` is any target with ``name``,
    ``base_url``, ``max_connections`` and ``api_key``; ``headers`` are added (never logged).
    Raises SideCallStatus on a non-2xx status, else on a timeout, a connection error or a body
    that is not JSON."""
    url = up.base_url + path
    if urlsplit(url).netloc != urlsplit(up.base_url).netloc:
        raise ValueError("side-call URL escaped its host")
    sent = {"content-type": "application/json", "accept-encoding": "identity"}
    if up.api_key:
        sent["authorization"] = f"Bearer {up.api_key}"
    if headers:
        sent.update(headers)
    async with pool.session(up).post(url, data=orjson.dumps(body), headers=sent,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if resp.status // 100 != 2:
            raise SideCallStatus(up.name, resp.status)
        return orjson.loads(await resp.read())
