"""A detected entity span and overlap resolution."""
from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    entity: str
    score: float


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the strongest of overlapping spans (score, then length), in text order.

    Validated recognisers score higher than context-only ones, so a Luhn-valid card beats a
    phone-shaped reading of the same digits.
    """
    ranked = sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start))
    starts: list[int] = []              # kept spans never overlap, so sorted starts suffice
    ends: dict[int, Span] = {}
    for span in ranked:
        i = bisect_left(starts, span.start)
        if i < len(starts) and starts[i] < span.end:
            continue                    # the next kept span begins inside this one
        if i > 0 and ends[starts[i - 1]].end > span.start:
            continue                    # the previous kept span reaches into this one
        insort(starts, span.start)
        ends[span.start] = span
    return [ends[s] for s in starts]
