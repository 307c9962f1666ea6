"""Context words: a weak pattern counts only when a telling word stands close to it."""
from __future__ import annotations

from dataclasses import dataclass

import regex


@dataclass(frozen=True, slots=True)
class Context:
    pattern: "regex.Pattern[str]"
    before: int = 40
    after: int = 20

    @classmethod
    def of(cls, words: tuple[str, ...] | list[str], before: int = 40, after: int = 20) -> "Context":
        alternation = "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))
        return cls(regex.compile(rf"(?<![\p{{L}}\p{{N}}_<])(?:{alternation})(?![\p{{L}}_])", regex.I), before, after)

    def near(self, text: str, start: int, end: int) -> bool:
        if self.pattern.search(text, max(0, start - self.before), start):
            return True
        return self.after > 0 and self.pattern.search(text, end, end + self.after) is not None
