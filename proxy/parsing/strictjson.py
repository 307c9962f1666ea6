"""JSON request bodies read only when every JSON parser would read them the same way.

The proxy judges the parsed body and forwards the raw bytes, so a body that another parser
reads differently would carry text no guard saw. orjson already refuses lone surrogates,
NaN/Infinity, a byte-order mark, trailing garbage, bytes that are not UTF-8 and numbers beyond
a double. What it accepts silently, and this module refuses:

- duplicate keys in an object, at any depth (orjson keeps the last value; some parsers keep the
  first, some refuse);
- integers outside 64 bits (orjson turns them into floats, Python's json keeps them exact);
- nesting deeper than orjson can serialise again (254 levels), which a guard's rewrite of the
  body would need.

Finding duplicates cheaply: every ':' outside strings in a JSON text separates a key from its
value, and orjson's serialisation escapes no ':', so the raw body and the re-serialised parsed
body hold the same number of ':' unless keys were dropped (duplicates) or the raw body spelled a
':' as ``\\u003a`` (or ``\\u003A``). Finding integers beyond 64 bits cheaply: orjson reads them
as floats of magnitude 9.2e18 and more, which it writes back in exponent form (``1.8e+19``), so
the re-serialised body then holds ``e+``. Only when the counts differ, the raw body holds an
escaped ':' or the re-serialised one an ``e+``, the body is parsed again by Python's json with
hooks that see every key and every integer (the slow path; ``loads_plain`` always takes it).
Each test is a substring search after a ``memchr`` for one byte it needs (``\\``, ``+``), which
most bodies do not hold.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 64 - 1


class JSONRefused(ValueError):
    """The body is not JSON, or is JSON that parsers disagree on (400 invalid_json)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise JSONRefused(f"duplicate key {dup[:40]!r} in an object")
    return out


def _int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise JSONRefused("an integer does not fit in 64 bits")
    return value


def _parsed(raw: bytes) -> tuple[Any, bytes]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONRefused(f"The request body is not valid JSON: {exc}") from None
    try:
        return value, orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise JSONRefused("The request body is nested too deeply.") from None


def _exact_check(raw: bytes) -> None:
    try:
        json.loads(raw, object_pairs_hook=_pairs, parse_int=_int)
    except JSONRefused as exc:
        raise JSONRefused(f"The request body is ambiguous JSON: {exc}.") from None


def loads(raw: bytes) -> Any:
    value, again = _parsed(raw)
    if (raw.count(b":") != again.count(b":")
            or (b"\\" in raw and (b"\\u003a" in raw or b"\\u003A" in raw))
            or (b"+" in again and b"e+" in again)):
        _exact_check(raw)
    return value


def loads_plain(raw: bytes) -> Any:
    """``loads`` with the slow path always taken: what ``loads`` must refuse and return (the
    tests compare the two)."""
    value, _ = _parsed(raw)
    _exact_check(raw)
    return value
