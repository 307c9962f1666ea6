"""Spans remembered across requests: the same spans as a fresh scan, and the cache charged what
approx_size would charge for them."""
from proxy.pii.detector import default_detector
from proxy.pii.spancache import SpanMemo, _size
from proxy.scancache import KEY_BYTES, ScanCache, approx_size

TEXT = "Call +1 415-555-0132 or mail jane.roe@example.com; card 4111 1111 1111 1111, SSN 536-22-8741"


def test_remembered_spans_equal_a_fresh_scan_and_are_charged_their_size():
    detector = default_detector()
    memo = SpanMemo(detector)
    memo.memo.cache = ScanCache()
    first = memo.detect(TEXT)
    assert first == detector.detect(TEXT)
    assert memo.detect(TEXT) == first and memo.memo.cache.hits == 1
    spans = tuple(first)
    assert len(spans) == 4 and _size(spans) == approx_size(spans)
    assert memo.memo.cache.bytes == _size(spans) + KEY_BYTES
    assert _size(()) == approx_size(())


def test_the_lookup_is_memo_remember_spelt_out():
    """SpanMemo.detect keys, stores and answers as Memo.remember would: the same key (settings
    digest, text digest), the same size charged, a hit for what remember stored and the reverse,
    and no entry when the cache is off."""
    from proxy.scancache import text_digest
    detector = default_detector()
    memo = SpanMemo(detector)
    memo.memo.cache = cache = ScanCache()
    memo.detect(TEXT)
    key = memo.memo.key(text_digest(TEXT))
    assert list(cache._items) == [key]
    assert memo.memo.remember(lambda: (), text_digest(TEXT)) == tuple(detector.detect(TEXT))
    other = "write to jane.roe@example.com"
    stored = memo.memo.remember(lambda: tuple(detector.detect(other)), text_digest(other),
                                size=_size)
    hits = cache.hits
    assert memo.detect(other) == list(stored) and cache.hits == hits + 1
    assert cache.bytes == _size(tuple(detector.detect(TEXT))) + _size(stored) + 2 * KEY_BYTES
    memo.memo.cache = off = ScanCache(0)
    assert memo.detect(TEXT) == detector.detect(TEXT) and len(off) == 0 and off.misses == 0
