"""Detected spans remembered across requests (proxy/scancache.py), keyed by the detector's
compiled settings and the text: a conversation's earlier turns are not scanned again.

Only spans are remembered, never placeholders or values: each exchange masks the spans with its
own vault, so placeholders still number by first appearance within the exchange, and a value
masked in one exchange is restorable only in that one.
"""
from __future__ import annotations

from ..scancache import Memo
from .detector import Detector
from .spans import Span


class SpanMemo:
    __slots__ = ("detector", "memo")

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.memo = Memo(detector)

    def detect(self, text: str) -> list[Span]:
        """``detector.detect(text)`` (spans are frozen: the tuple's items are shared safely)."""
        return list(self.memo.remember(lambda: tuple(self.detector.detect(text)), text))
