"""Counts and tests of the suffix signals (normalize.py) on ASCII text, from one byte-class copy.

The ``regex`` package walks a short pattern over a text at ~50 ns a character; on ASCII text the
same answers come from ``bytes.translate`` into character classes and a stdlib search over the
result, several times faster. Each function names the pattern it stands for, and
tests/detection/test_speed.py compares them on random and dataset-like texts. Non-ASCII text
takes the pattern itself.
"""
from __future__ import annotations

import re

import regex

# Brackets, backslashes and the like that optimised suffixes glue to tokens.
ODD = regex.compile(r"[{}\[\]\\<>|`^$=_~#@*()/;:+]")
# A case flip inside a token, or a letter glued to one of those symbols ("_" is not one here).
GLUE = regex.compile(r"[a-z][A-Z]|[A-Za-z][{}\[\]\\<>|`^$=~#@*()/;:+]|[{}\[\]\\<>|`^$=~#@*()/;:+][A-Za-z]")
# A base64 run at the very end (what follows it: spaces, quotes, closing brackets, a full stop).
B64_TAIL = regex.compile(r"[A-Za-z0-9+/]{24,}={0,2}[\s\"'`.)\]]*$")


def _table(classify) -> bytes:
    return bytes(ord(classify(chr(c))) for c in range(128)) + b"." * 128


# "l" lower-case letter, "u" upper-case letter, "s" a GLUE symbol, "o" anything else: GLUE is the
# pairs lu, ls, us, sl, su; every alternative is two characters long, so findall counts the same.
_GLUE_CLASS = _table(lambda c: "l" if "a" <= c <= "z" else "u" if "A" <= c <= "Z"
                     else "s" if c in "{}[]\\<>|`^$=~#@*()/;:+" else "o")
_GLUE_PAIRS = re.compile(rb"lu|[lu]s|s[lu]")
_ODD_CHARS = "{}[]\\<>|`^$=_~#@*()/;:+"
_ODD_DELETE = str.maketrans("", "", _ODD_CHARS)
# "b" a base64 character, "=" padding, "t" what B64_TAIL lets follow the run (the ASCII members
# of its class, \s as the ``regex`` package reads it), "o" anything else.
_TAIL_CHARS = frozenset(chr(c) for c in range(128) if regex.fullmatch(r"[\s\"'`.)\]]", chr(c)))
_B64_CLASS = _table(lambda c: "b" if c.isascii() and (c.isalnum() or c in "+/") else "="
                    if c == "=" else "t" if c in _TAIL_CHARS else "o")
_B64_AT_END = re.compile(rb"b{24}=?=?t*\Z")


def odd_count(text: str) -> int:
    """``len(ODD.findall(text))``: ODD is one ASCII character of a set, so a count of them."""
    return len(text) - len(text.translate(_ODD_DELETE))


def glue_count(text: str) -> int:
    """``len(GLUE.findall(text))``."""
    if not text.isascii():
        return len(GLUE.findall(text))
    return len(_GLUE_PAIRS.findall(text.encode("ascii").translate(_GLUE_CLASS)))


def glue_any(text: str) -> bool:
    """``GLUE.search(text) is not None``."""
    if not text.isascii():
        return GLUE.search(text) is not None
    return _GLUE_PAIRS.search(text.encode("ascii").translate(_GLUE_CLASS)) is not None


def b64_tail(text: str) -> bool:
    """``B64_TAIL.search(text) is not None`` for a text without line breaks (``$`` then means
    the end): the base64 characters, the padding and the tail characters are three disjoint
    classes, so a match is the text's longest tail of tail characters, at most two "=", and 24
    base64 characters before them, all at the end."""
    if "\n" in text or not text.isascii():
        return B64_TAIL.search(text) is not None
    return _B64_AT_END.search(text.encode("ascii").translate(_B64_CLASS)) is not None
