"""Header filtering both ways (proxy/upstream.py request_headers, response_headers) gives what
testing every header's lowered name gives: the plain filter is kept here as the reference."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.upstream import (_REQUEST_DROP, _RESPONSE_DROP_ENCODING, _VIRTUAL_DROP, HOP_BY_HOP,
                            _dropped, accept_encoding, forwarded_request_headers, request_headers,
                            response_headers)

NAMES = ["Content-Type", "Authorization", "api-key", "X-Api-Key", "Connection", "Keep-Alive",
         "Transfer-Encoding", "Host", "Content-Length", "Accept-Encoding", "Content-Encoding",
         "TE", "Upgrade", "Set-Cookie", "Link", "X-Custom", "X-Aifw-Request-Id", "x-aifw-anything",
         "X-AIFW-Debug", "X-Aifwnot", "Proxy-Authorization", "Trailer", "OpenAI-Organization"]


def _case(name: str, flips: list[bool]) -> str:
    return "".join(c.swapcase() if f else c for c, f in zip(name, flips + [False] * len(name)))


header = st.tuples(st.sampled_from(NAMES), st.lists(st.booleans(), max_size=20),
                   st.sampled_from(["1", "gzip", "keep-alive, X-Custom", "close", "x-custom,link", "a b"]))
headers = st.lists(header, max_size=12).map(
    lambda items: CIMultiDictProxy(CIMultiDict([(_case(n, f), v) for n, f, v in items])))


def plain_request(incoming, virtual: bool) -> CIMultiDict:
    drop = _dropped(incoming, _VIRTUAL_DROP if virtual else _REQUEST_DROP)
    return CIMultiDict([(name, value) for name, value in incoming.items()
                        if (lname := name.lower()) not in drop and not lname.startswith("x-aifw-")])


def plain_response(upstream_headers, drop_encoding: bool) -> CIMultiDict:
    drop = _dropped(upstream_headers, _RESPONSE_DROP_ENCODING if drop_encoding else HOP_BY_HOP)
    return CIMultiDict([(name, value) for name, value in upstream_headers.items() if name.lower() not in drop])


@settings(max_examples=400, deadline=None)
@given(headers, st.booleans())
def test_request_headers_match_the_plain_filter(incoming, virtual):
    assert (list(forwarded_request_headers(incoming, virtual).items())
            == list(plain_request(incoming, virtual).items()))


@pytest.mark.parametrize("provider, name, value", [("openai", "Authorization", "Bearer sk-up"),
                                                   ("azure", "api-key", "sk-up"),
                                                   ("anthropic", "x-api-key", "sk-up")])
def test_virtual_keys_replace_the_clients_credentials_with_the_upstreams(provider, name, value):
    incoming = CIMultiDictProxy(CIMultiDict([("Authorization", "Bearer aifw-virtual"), ("api-key", "v"),
                                             ("X-Api-Key", "v"), ("Accept-Encoding", "br, gzip"), ("A", "1")]))
    out = request_headers(incoming, SimpleNamespace(provider=provider, api_key="sk-up"), True)
    assert list(out.items()) == [("A", "1"), (name, value), ("Accept-Encoding", accept_encoding("br, gzip"))]


@settings(max_examples=400, deadline=None)
@given(headers, st.booleans())
def test_response_headers_match_the_plain_filter(upstream, drop_encoding):
    assert (list(response_headers(upstream, drop_encoding=drop_encoding).items())
            == list(plain_response(upstream, drop_encoding).items()))


def test_own_headers_are_dropped_wherever_they_stand():
    incoming = CIMultiDictProxy(CIMultiDict([("X-Aifw-First", "1"), ("A", "2"), ("x-AIFW-last", "3")]))
    out = request_headers(incoming, SimpleNamespace(provider="openai", api_key=None), False)
    assert list(out.items()) == [("A", "2"), ("Accept-Encoding", "identity")]
