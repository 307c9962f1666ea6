"""Context words are looked for in the case-folded window first; that is exact only for word
characters that match case-insensitively nothing that folds differently."""
import sys

import regex

from proxy.pii.recognizers.context import _FOLD_SAFE


def test_every_fold_safe_character_matches_only_what_folds_to_it():
    cased = [chr(cp) for cp in range(sys.maxunicode + 1)
             if chr(cp).lower() != chr(cp) or chr(cp).upper() != chr(cp) or chr(cp).casefold() != chr(cp)]
    for safe in _FOLD_SAFE:
        pattern = regex.compile(regex.escape(safe), regex.I)
        for c in cased + list(_FOLD_SAFE):
            if pattern.fullmatch(c) and len(c.casefold()) == 1:
                assert c.casefold() == safe.casefold(), (safe, c)


def test_an_upper_case_i_is_not_fold_safe():
    assert regex.fullmatch("I", "\u0131", regex.I) and "\u0131".casefold() != "i"
    assert "I" not in _FOLD_SAFE
