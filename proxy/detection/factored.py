"""A rule pattern's alternations of plain words factored by their first characters, for ASCII
views: ``(?:writer|author|agent|ai)`` becomes ``(?:writer|a(?:uthor|gent|i))``.

Why: the ``regex`` engine tries an alternation's branches one after the other at each offset it
reaches, and a case-insensitive one compares each branch's first character before it can drop
it; JB-2009's 38 roles after a 60-character gap cost ~160 k instructions where the opener
occurs. Factored, only the branches sharing the text's next character are tried (~40% less).

Why the result is the same: at one offset only branches whose first character is the text's
can match, and the factored form keeps their order (a branch matches exactly where it did, and
the first one to match is the first one that did). Only alternations of ASCII letters, digits,
spaces, apostrophes and hyphens are factored, and the factored pattern is used on ASCII views
only: there the ``regex`` package's full case folding (``ß`` against ``ss``, which a factored
``s(?:s|...)`` could no longer match as one unit) has nothing to fold. Patterns with inline flags
(``(?x)`` would make the spaces mean nothing) or other syntax the scanner does not follow are
left as they are.
"""
from __future__ import annotations

import regex

MIN_BRANCHES = 4          # fewer: a factored alternation saves nothing worth a second pattern
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '-")
# Group openers whose syntax the scanner knows; any other "(?" (flags, names, conditionals...)
# leaves the pattern as written.
_OPENERS = ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>")


def factored_source(source: str, fold: bool = True) -> str | None:
    """``source`` with its plain-word alternations factored, or None when there is none (or the
    pattern uses syntax this does not follow). ``fold``: the pattern ignores case, so "A" and
    "a" are one first character."""
    out: list[str] = []
    changed = False
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "\\":
            out.append(source[i:i + 2])
            i += 2
        elif c == "[":
            end = _class_end(source, i)
            if end < 0:
                return None
            out.append(source[i:end])
            i = end
        elif c == "(" and source.startswith("(?", i):
            if not source.startswith(_OPENERS, i):
                return None
            if source.startswith("(?:", i):
                close = source.find(")", i + 3)
                words = source[i + 3:close].split("|") if close > 0 else []
                if len(words) >= MIN_BRANCHES and all(w and _PLAIN.issuperset(w) for w in words):
                    out.append("(?:" + _trie(words, fold) + ")")
                    changed = True
                    i = close + 1
                    continue
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out) if changed else None


def _class_end(source: str, i: int) -> int:
    """The offset just past the character class opening at ``i`` (-1: a nested set, which
    version 1 syntax allows and this does not follow)."""
    j = i + 1
    if source.startswith("^", j):
        j += 1
    if source.startswith("]", j):
        j += 1
    while j < len(source):
        c = source[j]
        if c == "\\":
            j += 2
        elif c == "[":
            return -1
        elif c == "]":
            return j + 1
        else:
            j += 1
    return -1


def _trie(words: list[str], fold: bool) -> str:
    """The alternation of ``words`` (in their order) with branches sharing a first character
    (compared case-insensitively when ``fold``) joined under it."""
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(w[:1].lower() if fold else w[:1], []).append(w)
    branches = []
    for key, group in groups.items():
        if not key:
            branches.append("")
        elif len(group) == 1:
            branches.append(regex.escape(group[0]))
        else:
            branches.append(regex.escape(group[0][0]) + "(?:" + _trie([w[1:] for w in group], fold) + ")")
    return "|".join(branches)


def factored(pattern):
    """The factored copy of a compiled pattern (same flags), or None when nothing is factored."""
    if pattern.flags & regex.VERBOSE:
        return None
    source = factored_source(pattern.pattern, bool(pattern.flags & regex.IGNORECASE))
    return None if source is None else regex.compile(source, pattern.flags)
