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
':' as ``\\u003a``. Only then, or when the raw body holds a run of 19+ digits, the body is
parsed again by Python's json with hooks that see every key and every integer (the slow path).
"""
from __future__ import annotations

import json
from typing import Any

import orjson

# One pass in C finds both triggers of the slow path: digits become "0", "\\" and "u" stay,
# everything else becomes " ". A run of 19 digits is then "0" * 19, and an escape \u003a (or any
# \u00NN with a decimal third digit, a few more than needed) is "\\u000". Python's re takes 40x
# longer to search for [0-9]{19}.
_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else b if b in (0x5C, 0x75) else 0x20 for b in range(256))
_RUN = b"0" * 19
_ESCAPED = b"\\u000"
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


def loads(raw: bytes) -> Any:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONRefused(f"The request body is not valid JSON: {exc}") from None
    try:
        again = orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise JSONRefused("The request body is nested too deeply.") from None
    if raw.count(b":") != again.count(b":") or _RUN in (mapped := raw.translate(_MAP)) or _ESCAPED in mapped:
        try:
            json.loads(raw, object_pairs_hook=_pairs, parse_int=_int)
        except JSONRefused as exc:
            raise JSONRefused(f"The request body is ambiguous JSON: {exc}.") from None
    return value
