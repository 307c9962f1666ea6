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
