"""Header filtering both ways (proxy/upstream.py request_headers, response_headers) gives what
testing every header's lowered name gives: the plain filter is kept here as the reference."""
from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.upstream import (_REQUEST_DROP, _RESPONSE_DROP_ENCODING, _VIRTUAL_DROP, HOP_BY_HOP,
                            _dropped, accept_encoding, request_headers, response_headers)

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


def plain_request(incoming, up, virtual: bool) -> CIMultiDict:
    drop = _dropped(incoming, _VIRTUAL_DROP if virtual else _REQUEST_DROP)
    out = CIMultiDict([(name, value) for name, value in incoming.items()
                       if (lname := name.lower()) not in drop and not lname.startswith("x-aifw-")])
    if virtual and up.api_key:
        if up.provider == "azure":
            out["api-key"] = up.api_key
        elif up.provider == "anthropic":
            out["x-api-key"] = up.api_key
        else:
            out["Authorization"] = f"Bearer {up.api_key}"
    out["Accept-Encoding"] = accept_encoding(incoming.get("accept-encoding"))
    return out


def plain_response(upstream_headers, drop_encoding: bool) -> CIMultiDict:
    drop = _dropped(upstream_headers, _RESPONSE_DROP_ENCODING if drop_encoding else HOP_BY_HOP)
    return CIMultiDict([(name, value) for name, value in upstream_headers.items() if name.lower() not in drop])


@settings(max_examples=400, deadline=None)
@given(headers, st.booleans(), st.sampled_from(["openai", "azure", "anthropic"]), st.sampled_from([None, "sk-up"]))
def test_request_headers_match_the_plain_filter(incoming, virtual, provider, key):
    up = SimpleNamespace(provider=provider, api_key=key)
    assert list(request_headers(incoming, up, virtual).items()) == list(plain_request(incoming, up, virtual).items())


@settings(max_examples=400, deadline=None)
@given(headers, st.booleans())
def test_response_headers_match_the_plain_filter(upstream, drop_encoding):
    assert (list(response_headers(upstream, drop_encoding=drop_encoding).items())
            == list(plain_response(upstream, drop_encoding).items()))


def test_own_headers_are_dropped_wherever_they_stand():
    incoming = CIMultiDictProxy(CIMultiDict([("X-Aifw-First", "1"), ("A", "2"), ("x-AIFW-last", "3")]))
    out = request_headers(incoming, SimpleNamespace(provider="openai", api_key=None), False)
    assert list(out.items()) == [("A", "2"), ("Accept-Encoding", "identity")]
