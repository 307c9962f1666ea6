"""Glob lists compiled once into one regex (fnmatch syntax, case-sensitive)."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GlobSet:
    patterns: tuple[str, ...]
    _rx: re.Pattern | None

    @classmethod
    def of(cls, patterns) -> "GlobSet":
        patterns = tuple(patterns or ())
        if not patterns:
            return cls((), None)
        rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
        return cls(patterns, rx)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, value: str | None) -> bool:
        return self._rx is not None and value is not None and self._rx.match(value) is not None

    def match_any(self, values) -> bool:
        return self._rx is not None and any(self._rx.match(v) for v in values if v is not None)
