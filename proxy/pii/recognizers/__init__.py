"""Recognisers: each finds spans of one family of entities and validates them."""
from __future__ import annotations

from typing import Iterable, Protocol

from ..spans import Span
from .probe import Probe


class Recognizer(Protocol):
    entities: tuple[str, ...]

    def find(self, text: str, probe: Probe | None = None) -> Iterable[Span]:
        """``probe``: the detector's shared look at ``text`` (built on demand when omitted).
        The built-in recognisers return lists: the detector runs every one of them on every
        text, and most find nothing, where a generator's set-up and resumption cost more than
        an empty list."""
        ...
