"""Detected spans remembered across requests (proxy/scancache.py), keyed by the detector's
compiled settings and the text: a conversation's earlier turns are not scanned again.

Only spans are remembered, never placeholders or values: each exchange masks the spans with its
own vault, so placeholders still number by first appearance within the exchange, and a value
masked in one exchange is restorable only in that one.
"""
from __future__ import annotations

import sys
from typing import Callable

from ..scancache import Memo, approx_size, text_digest
from .detector import Detector
from .spans import Span

# A span holds two ints, a float and an entity name: what approx_size would count, without
# walking each span's fields (that walk cost a fifth of scanning 1 KB).
_SPAN_BYTES = approx_size(Span(10**6, 10**6, "", 0.5))


def _size(spans: tuple[Span, ...]) -> int:
    return sys.getsizeof(spans) + sum(_SPAN_BYTES + len(s.entity) for s in spans)


class SpanMemo:
    __slots__ = ("detector", "memo")

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.memo = Memo(detector)

    def detect(self, text: str, digest: Callable[[str], bytes] = text_digest) -> list[Span]:
        """``detector.detect(text)`` (spans are frozen: the tuple's items are shared safely).
        ``digest``: the exchange's ``text_digest`` (each text digested once per exchange)."""
        return list(self.memo.remember(lambda: tuple(self.detector.detect(text)), digest(text),
                                       size=_size))
