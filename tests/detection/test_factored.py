"""factored.py: plain-word alternations factored by their first characters keep their order, and
patterns with syntax the scanner does not follow are left as written."""
from __future__ import annotations

import pytest
import regex

from proxy.detection.factored import factored, factored_source


def test_branches_sharing_a_first_character_are_joined_in_their_order():
    assert factored_source(r"\b(?:as|ash|Ab|b)\b") == r"\b(?:a(?:s(?:|h)|b)|b)\b"
    # case matters to a pattern that does not ignore it
    assert factored_source(r"(?:as|ash|Ab|b)", fold=False) == r"(?:a(?:s(?:|h))|Ab|b)"


@pytest.mark.parametrize("text", ["ash", "ab", "b as", "xx Ash", "abas"])
def test_the_first_branch_that_matches_still_wins(text):
    words = "as|ash|ab|b|bat|batch"
    for source in (f"(?:{words})", f"(?:{words})h?", f"(?>(?:{words}))h"):
        pattern = regex.compile(source, regex.V1 | regex.I)
        fast = factored(pattern)
        want, got = pattern.search(text), fast.search(text)
        assert (want and want.span()) == (got and got.span()), (source, text)


@pytest.mark.parametrize("source", [
    r"(?x)(?:a b|c d|e f|g h)",          # inline flags: spaces mean nothing
    r"(?P<w>x)(?:aa|ab|ac|ad)",          # syntax the scanner does not follow
    r"[[a-z]--[aeiou]](?:aa|ab|ac|ad)",  # a nested set
    r"(?:a|b|c)",                        # too few branches to bother
    r"(?:a.|b|c|d)",                     # not plain words
    r"[(?:aa|ab|ac|ad)]",                # not a group: a character class
])
def test_what_is_left_as_written(source):
    assert factored_source(source) is None
