"""Recognisers: each finds spans of one family of entities and validates them."""
from __future__ import annotations

from typing import Iterable, Protocol

from ..spans import Span


class Recognizer(Protocol):
    entities: tuple[str, ...]

    def find(self, text: str) -> Iterable[Span]: ...
