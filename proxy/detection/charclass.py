"""Counts and tests of the suffix signals (normalize.py) on ASCII text, from one byte-class copy.

The ``regex`` package walks a short pattern over a text at ~50 ns a character; on ASCII text the
same answers come from ``bytes.translate`` into character classes and a stdlib search over the
result, several times faster. Each function names the pattern it stands for, and
tests/detection/test_speed.py compares them on random and dataset-like texts. Non-ASCII text
takes the pattern itself.
"""
from __future__ import annotations

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
_GLUE_PAIRS = (b"lu", b"ls", b"us", b"sl", b"su")
_GLUE_PAIR_SET = frozenset(_GLUE_PAIRS)
_ODD_CHARS = "{}[]\\<>|`^$=_~#@*()/;:+"
_ODD_DELETE = str.maketrans("", "", _ODD_CHARS)
_ODD_BYTES = _ODD_CHARS.encode("ascii")
# "b" a base64 character, "=" padding, "t" what B64_TAIL lets follow the run (the ASCII members
# of its class, \s as the ``regex`` package reads it), "o" anything else.
_TAIL_CHARS = frozenset(chr(c) for c in range(128) if regex.fullmatch(r"[\s\"'`.)\]]", chr(c)))
_B64_CLASS = _table(lambda c: "b" if c.isascii() and (c.isalnum() or c in "+/") else "="
                    if c == "=" else "t" if c in _TAIL_CHARS else "o")
_B64_RUN = b"b" * 24


# What str.split() splits ASCII text at besides " " (the regex package's \s lacks \x1c-\x1f).
SPLIT_SPACE = ("\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f")


def join_split(text: str, spaces: tuple[str, ...] = SPLIT_SPACE) -> str:
    """``" ".join(text.split())`` of ASCII text whose white space is " " and ``spaces``: each of
    those made a space, runs of spaces halved until none is left and the ends stripped, a few
    substring scans instead of one string per word."""
    for c in spaces:
        if c in text:
            text = text.replace(c, " ")
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip(" ")


def odd_count(text: str) -> int:
    """``len(ODD.findall(text))``: ODD is one ASCII character of a set, so a count of them (on
    ASCII text deleted from the bytes: ``str.translate`` looks every character up in a dict)."""
    if text.isascii():
        return len(text) - len(text.encode("ascii").translate(None, _ODD_BYTES))
    return len(text) - len(text.translate(_ODD_DELETE))


def glue_count(text: str) -> int:
    """``len(GLUE.findall(text))``. On ASCII text: every match is one of the pairs of classes
    in ``_GLUE_PAIR_SET``, and findall takes the leftmost pair at or after where its last match
    ended, so the count is that of the pairs' start positions (a substring search per pair)
    taken left to right, each covering two bytes. The pattern walked every byte; a walk of the
    "u"/"s" bytes paid a loop turn per capital letter, and a placeholder of the PII guard
    (``<PHONE_NUMBER_1>``) is a run of them."""
    if not text.isascii():
        return len(GLUE.findall(text))
    mapped = text.encode("ascii").translate(_GLUE_CLASS)
    starts: list[int] = []
    for pair in _GLUE_PAIRS:
        at = mapped.find(pair)
        while at != -1:
            starts.append(at)
            at = mapped.find(pair, at + 1)
    if len(starts) < 2:
        return len(starts)
    starts.sort()
    count = 0
    free = 0                      # where the next match may start
    for at in starts:
        if at >= free:
            count += 1
            free = at + 2
    return count


def glue_any(text: str) -> bool:
    """``GLUE.search(text) is not None``: on ASCII text, whether a pair occurs (substring tests)."""
    if not text.isascii():
        return GLUE.search(text) is not None
    mapped = text.encode("ascii").translate(_GLUE_CLASS)
    for pair in _GLUE_PAIR_SET:
        if pair in mapped:
            return True
    return False


def b64_tail(text: str) -> bool:
    """``B64_TAIL.search(text) is not None`` for a text without line breaks (``$`` then means
    the end): the base64 characters, the padding and the tail characters are three disjoint
    classes, so a match is the text's longest tail of tail characters, at most two "=", and 24
    base64 characters before them, all at the end."""
    if "\n" in text or not text.isascii():
        return B64_TAIL.search(text) is not None
    # Read from the end: past the tail characters, at most two "=" (more cannot match), then 24
    # base64 characters; a search of the whole text tried every position.
    rest = text.encode("ascii").translate(_B64_CLASS).rstrip(b"t")
    if rest.endswith(b"=="):
        rest = rest[:-2]
    elif rest.endswith(b"="):
        rest = rest[:-1]
    return rest.endswith(_B64_RUN)
