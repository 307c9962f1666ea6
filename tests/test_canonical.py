"""proxy/canonical.py: one canonical request path, ambiguous encodings refused."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from proxy.canonical import canonical_target, encode_path, encode_segment
from proxy.errors import ProxyError


@pytest.mark.parametrize("raw,path,query", [
    ("/v1/chat/completions", "/v1/chat/completions", ""),
    ("/v1/files/../chat/completions", "/v1/chat/completions", ""),
    ("/v1/files/./a/../b", "/v1/files/b", ""),
    ("/v1/files/..", "/v1/", ""),
    ("/v1/files/.", "/v1/files/", ""),
    ("/v1/.well-known/x", "/v1/.well-known/x", ""),
    ("/v1/models/ft:gpt-4o:org:x", "/v1/models/ft:gpt-4o:org:x", ""),
    ("/v1/models/a%20b%3F%23", "/v1/models/a b?#", ""),
    ("/v1/models/%C3%A9", "/v1/models/\u00e9", ""),
    ("/openai/deployments/d/chat/completions?api-version=2024-10-21&x=%2B1",
     "/openai/deployments/d/chat/completions", "api-version=2024-10-21&x=%2B1"),
])
def test_canonical_forms(raw, path, query):
    assert canonical_target(raw) == (path, query)


@pytest.mark.parametrize("raw", [
    "http://evil/v1/chat/completions", "*", "v1/chat",
    "/v1/files/%2e%2e/chat", "/v1/files/%2E./chat", "/v1/a%2Fb", "/v1/a%2fb", "/v1/a%5Cb", "/v1/a\\b",
    "/v1/%252e%252e/x", "/v1/a%00b", "/v1/a%0Ab", "/v1/a%7F", "/v1/a%C2%85", "/v1/a%zz", "/v1/a%4", "/v1/a%c3%28",
    "/v1//chat", "//v1/chat", "/../v1/chat", "/v1/../../chat", "/v1/files/..;/chat", "/v1/files/.;x/chat",
    "/v1/a b", "/v1/a\"b", "/v1/a<b>", "/v1/a#b", "/v1/x?a=b c", "/v1/x?a=%zz", "/v1/x?a=\"",
])
def test_ambiguous_targets_refused(raw):
    with pytest.raises(ProxyError) as err:
        canonical_target(raw)
    assert (err.value.status, err.value.code) == (400, "invalid_request")


def test_encoding_is_one_fixed_rule():
    assert encode_path("/v1/models/a b?#%") == "/v1/models/a%20b%3F%23%25"
    assert encode_path("/v1/models/ft:x@y!$&'()*+,;=-._~") == "/v1/models/ft:x@y!$&'()*+,;=-._~"
    assert encode_segment("a/b c") == "a%2Fb%20c"


_SEG = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


@given(st.lists(st.one_of(_SEG.map(lambda s: quote(s, safe=":@;=")), _SEG, st.sampled_from([".", "..", "%2e", "%2F", "%25", ";", "\\"])), max_size=8))
def test_canonical_path_is_a_fixed_point(segments):
    """Whatever the input, a canonical path has no dot segments, and its encoding canonicalises
    to itself: the upstream's reading (decode once) is the proxy's."""
    raw = "/" + "/".join(segments)
    try:
        path, _ = canonical_target(raw)
    except ProxyError as exc:
        assert exc.status == 400
        return
    parts = path.split("/")[1:]
    assert "." not in parts and ".." not in parts
    assert canonical_target(encode_path(path)) == (path, "")


def _outcome(fn, raw):
    try:
        return fn(raw)
    except ProxyError as exc:
        return (exc.status, exc.code, exc.message)


@given(st.lists(st.one_of(_SEG.map(lambda s: quote(s, safe=":@;=")), _SEG, st.sampled_from([".", "..", "%2e", "%2F", "%25", ";", "\\"])), max_size=6),
       st.sampled_from(["", "?api-version=1", "?a=%zz", "?a b"]))
def test_remembered_targets_answer_as_the_checks_do(segments, query):
    """canonical_target remembers what it answered: asked again (and after other targets pushed
    it out), it answers, or refuses, exactly as canonical_form does."""
    from proxy.canonical import canonical_form
    raw = "/" + "/".join(segments) + query
    for _ in range(2):
        assert _outcome(canonical_target, raw) == _outcome(canonical_form, raw)
        assert _outcome(canonical_target, "/v1/chat/completions") == ("/v1/chat/completions", "")
