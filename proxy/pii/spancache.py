"""Detected spans remembered across requests (proxy/scancache.py), keyed by the detector's
compiled settings and the text: a conversation's earlier turns are not scanned again.

Only spans are remembered, never placeholders or values: each exchange masks the spans with its
own vault, so placeholders still number by first appearance within the exchange, and a value
masked in one exchange is restorable only in that one.
"""
from __future__ import annotations

import sys
from typing import Callable

from ..scancache import MISSING, Memo, approx_size, text_digest
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
        ``digest``: the exchange's ``text_digest`` (each text digested once per exchange).

        ``Memo.remember`` spelt out: the guard looks up every slot of every request (a
        conversation's history hits), and the closure, the key's and the size's calls cost a
        third of a hit."""
        memo = self.memo
        cache = memo.cache
        if not cache.enabled:
            return self.detector.detect(text)
        key = (memo.digest, digest(text))       # memo.key(digest(text))
        found = cache.get(key)
        if found is MISSING:
            found = tuple(self.detector.detect(text))
            cache.put(key, found, _size(found))
        return list(found)
