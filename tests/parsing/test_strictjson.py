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


# --- loads' cheap triggers against loads_plain (the slow path always) ----------------------------

from proxy.parsing.strictjson import loads_plain  # noqa: E402


@pytest.mark.parametrize("raw", [
    b'{"a\\u003A":1,"b":1,"b":2}', b'{"a\\u003a":1,"b":1,"b":2}',   # an escaped ':' hides a dropped key
    b'{"k\\u003A":"\\u003A","x":{"y":1,"y":2}}',
    b'{"s":"e+ +","n":[18446744073709551616]}', b'[-9223372036854775809]', b'{"a":{"b":[-99999999999999999999]}}',
    b'[' + b'9' * 300 + b']', b'{"t":0.7,"n":100000000000000000000}', b'{"p":"+44","n":-18446744073709551617}',
])
def test_refused_by_both(raw):
    for parse in (loads, loads_plain):
        with pytest.raises(JSONRefused):
            parse(raw)


@pytest.mark.parametrize("raw", [
    b'{"a":"e+1 +44 \\u003A and \\u003a"}', b'[1E+20,1e+300,12345678901234567.0,-1.5e+19]',
    b'{"phone":"+44 7700 900461","n":18446744073709551615}', b'{"x":"\\\\u003a"}',
])
def test_accepted_by_both(raw):
    assert loads(raw) == loads_plain(raw) == json.loads(raw)


def test_every_integer_beyond_64_bits_comes_back_in_exponent_form():
    """What the ``e+`` trigger rests on: orjson reads an integer outside 64 bits as a float and
    writes it back with ``e+`` (or refuses it: beyond a double)."""
    import random

    import orjson
    rng = random.Random(14)
    edges = [2**64, 2**64 + 1, -(2**63) - 1, -(2**63) - 2, 10**20, -(10**19), 10**308, -(10**308)]
    for n in edges + [rng.choice((1, -1)) * rng.randrange(2**64, 10**rng.randrange(20, 320)) for _ in range(3000)]:
        try:
            value = orjson.loads(str(n).encode())
        except orjson.JSONDecodeError:
            continue
        assert isinstance(value, float) and b"e+" in orjson.dumps(value), n


_NASTY = st.sampled_from(["+", "e+", "e+19", ":", "\\u003a", "\\u003A", "\\u0061", "a", "1E+5"])
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                   st.sampled_from([2**64, 2**64 - 1, -(2**63), -(2**63) - 1, 10**30]),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4), _NASTY)
_DOC = st.recursive(_VALUE, lambda c: st.one_of(st.lists(c, max_size=3),
                                                st.lists(st.tuples(st.one_of(_NASTY, st.text(max_size=2)), c),
                                                         max_size=4)), max_leaves=12)


def _raw(value) -> str:
    """JSON text whose objects may repeat keys and whose strings keep the escapes as written."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(_raw_str(k) + ":" + _raw(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_raw(v) for v in value) + "]"
    if isinstance(value, str):
        return _raw_str(value)
    return json.dumps(value)


def _raw_str(text: str) -> str:
    if text.startswith("\\u00"):
        return f'"{text}"'                  # an escape as written (\u003a spells a ':')
    return json.dumps(text)


@settings(max_examples=1500, deadline=None)
@given(_DOC)
def test_fuzz_loads_refuses_and_returns_what_the_plain_path_does(value):
    raw = _raw(value).encode()
    try:
        plain = loads_plain(raw)
    except JSONRefused:
        with pytest.raises(JSONRefused):
            loads(raw)
        return
    assert loads(raw) == plain
