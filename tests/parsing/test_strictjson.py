"""proxy/parsing/strictjson.py: JSON refused wherever two parsers could read it differently."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from proxy.parsing.strictjson import JSONRefused, loads


@pytest.mark.parametrize("raw", [
    b'{"a":1,"a":2}', b'{"x":{"a":"1","b":2,"a":3}}', b'[{"a":1},{"b":{"c":1,"c":1}}]',
    b'{"a\\u003a":1,"b":1,"b":2}',                   # a ':' spelled as an escape hides nothing
    b'{"a":"x:y","a":"z"}', b'{"\\u0061":1,"a":2}',   # the same key spelled two ways
    b'"\\ud800"', b'"\\udc00x"', b'[NaN]', b'[Infinity]', b'[-Infinity]', b'\xef\xbb\xbf{}', b'{} {}', b'{},',
    b'[123456789012345678901]', b'[-9223372036854775809]', b'[1e400]', b'[' * 300 + b']' * 300,
    b"{'a':1}", b'{"a":1,}', b'[1,]', b'{"a":01}', b'"\x00"', b'\xff', b'',
])
def test_refused(raw):
    with pytest.raises(JSONRefused):
        loads(raw)


@pytest.mark.parametrize("raw", [
    b'{"a":"b:c","d":["e:f"]}', b'{"a":"\\u003a"}', b'{"id":"12345678901234567890123"}',
    b'[9223372036854775807,-9223372036854775808,18446744073709551615]', b'[1.5e300]',
    b'[' * 200 + b']' * 200, b'{"a":{"a":{"a":1}}}', b'{"A":1,"a":2}',
])
def test_accepted_and_equal_to_stdlib(raw):
    assert loads(raw) == json.loads(raw)


def _pairs_no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("dup")
    return dict(pairs)


_KEY = st.sampled_from(["a", "b", ":", "a:", "\u003a"]) | st.text(max_size=3)
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=5)),
                     lambda c: st.one_of(st.lists(c, max_size=3), st.lists(st.tuples(_KEY, c), max_size=4)),
                     max_leaves=15)


def _dump(value, escape_colons: bool) -> str:
    """JSON text that may hold duplicate keys (objects are lists of pairs) and escaped colons."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(_dump(k, escape_colons) + ":" + _dump(v, escape_colons) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v, escape_colons) for v in value) + "]"
    text = json.dumps(value)
    return text.replace(":", "\\u003a") if escape_colons and isinstance(value, str) else text


@settings(max_examples=500, deadline=None)
@given(_JSON, st.booleans())
def test_fuzz_agrees_with_an_exact_parser(value, escape_colons):
    raw = _dump(value, escape_colons).encode()
    try:
        exact = json.loads(raw, object_pairs_hook=_pairs_no_dups)
        ok = all(-2**63 <= n < 2**64 for n in _ints(exact))
    except ValueError:
        ok = False
    if ok:
        assert loads(raw) == exact
    else:
        with pytest.raises(JSONRefused):
            loads(raw)


def _ints(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _ints(v)
    elif isinstance(value, list):
        for v in value:
            yield from _ints(v)
