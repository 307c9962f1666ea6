"""The per-exchange vault: value <-> typed placeholder, numbered by first appearance.

Numbering by order of first appearance over the whole request (which replays the conversation
history) is deterministic, so the same value gets the same placeholder on every turn of a
conversation without any server-side state. The vault lives on one exchange only, so one
caller's values can never be restored into another caller's answer.
"""
from __future__ import annotations

import json
from functools import lru_cache

import regex

PLACEHOLDER = regex.compile(r"<([A-Z][A-Z0-9_]*?)_(\d{1,6})>")
# Longest placeholder the stream hold-back must wait for before deciding a "<" is plain text.
MAX_PLACEHOLDER_LEN = 48
# More "<" than this in a text: ``restore`` scans it with the pattern once.
_FEW_BRACKETS = 16
PARTIAL_PLACEHOLDER = regex.compile(r"<[A-Z0-9_]{0,%d}\Z" % (MAX_PLACEHOLDER_LEN - 2))


@lru_cache(maxsize=256)
def _matchable(entity: str) -> bool:
    """Whether ``<{entity}_{n}>`` is a PLACEHOLDER match (for n of one to six digits)."""
    return PLACEHOLDER.fullmatch(f"<{entity}_1>") is not None


class Vault:
    __slots__ = ("_placeholders", "_values", "_restorable", "_next", "_taken", "_entities")

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}   # (entity, value) -> placeholder
        self._values: dict[str, str] = {}                     # placeholder -> value
        self._restorable: set[str] = set()
        self._next: dict[str, int] = {}
        self._taken: set[str] = set()     # placeholder-shaped text already in the conversation
        # restorable placeholder -> its entity, for those PLACEHOLDER matches (all, unless a
        # custom entity's name has other characters or a number runs past six digits)
        self._entities: dict[str, str] = {}

    def reserve(self, text: str) -> None:
        """Never hand out a placeholder the conversation already contains as plain text
        (say an answer masked in an earlier turn), or restoring it would mean two things."""
        if "<" in text:
            self._taken.update(m.group() for m in PLACEHOLDER.finditer(text))

    def placeholder(self, entity: str, value: str, restorable: bool) -> str:
        key = (entity, value)
        found = self._placeholders.get(key)
        if found is None:
            n = self._next.get(entity, 0)
            while True:
                n += 1
                found = f"<{entity}_{n}>"
                if found not in self._taken:
                    break
            self._next[entity] = n
            self._placeholders[key] = found
            self._values[found] = value
        if restorable and found not in self._restorable:
            self._restorable.add(found)
            if _matchable(entity) and len(found) - len(entity) <= 9:     # "<", "_", 1-6 digits, ">"
                # ``PLACEHOLDER.fullmatch(found).group(1)``: the lazy group stops at the last
                # "_", the only one followed by digits alone
                self._entities[found] = entity
        return found

    def knows(self, entity: str, value: str) -> bool:
        return (entity, value) in self._placeholders

    def is_restorable_value(self, entity: str, value: str) -> bool:
        found = self._placeholders.get((entity, value))
        return found is not None and found in self._restorable

    def __len__(self) -> int:
        return len(self._values)

    def restore(self, text: str, json_escape: bool = False) -> tuple[str, dict[str, int]]:
        """Put request values back for every restorable placeholder in ``text``."""
        if not self._restorable or "<" not in text:
            return text, {}
        if text.count("<") > _FEW_BRACKETS:
            return self.restore_plain(text, json_escape)
        # A PLACEHOLDER match is "<", then only capitals, digits and "_", then ">": from a "<"
        # it can end at the first ">" only, and no match starts inside another. So the text
        # from each "<" to the next ">" is the only match that "<" can start, and it is one
        # when it is a restorable placeholder of this vault that is a match (``_entities``). The same
        # replacements, counted in the same order, as ``restore_plain``'s regex scan of the
        # whole text.
        entities = self._entities
        parts: list[str] = []
        counts: dict[str, int] = {}
        pos = 0
        find = text.find
        at = find("<")
        while at != -1:
            end = find(">", at + 1)
            if end == -1:
                break
            ph = text[at:end + 1]
            entity = entities.get(ph)
            if entity is not None:
                counts[entity] = counts.get(entity, 0) + 1
                value = self._values[ph]
                parts.append(text[pos:at])
                parts.append(json.dumps(value, ensure_ascii=False)[1:-1] if json_escape else value)
                pos = end + 1
                at = find("<", pos)
            else:
                at = find("<", at + 1)
        if not parts:
            return text, counts
        parts.append(text[pos:])
        return "".join(parts), counts

    def holds_restorable(self, text: str) -> bool:
        """Whether ``restore`` would put a value back into ``text``."""
        entities = self._entities
        if not entities or "<" not in text:
            return False
        if text.count("<") > _FEW_BRACKETS:
            return any(m.group() in entities for m in PLACEHOLDER.finditer(text))
        find = text.find
        at = find("<")
        while at != -1:
            end = find(">", at + 1)
            if end == -1:
                return False
            if text[at:end + 1] in entities:
                return True
            at = find("<", at + 1)
        return False

    def restore_plain(self, text: str, json_escape: bool = False) -> tuple[str, dict[str, int]]:
        """``restore`` as one regex substitution over the text (a text with many "<", HTML or
        code, is scanned once instead of a search per "<")."""
        if not self._restorable or "<" not in text:
            return text, {}
        counts: dict[str, int] = {}

        def swap(m: "regex.Match[str]") -> str:
            ph = m.group()
            if ph not in self._restorable:
                return ph
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
            value = self._values[ph]
            # Inside tool-call arguments the value lands in a JSON string: keep it valid JSON.
            return json.dumps(value, ensure_ascii=False)[1:-1] if json_escape else value

        return PLACEHOLDER.sub(swap, text), counts
