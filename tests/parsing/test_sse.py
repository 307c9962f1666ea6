"""The incremental SSE splitter: events split anywhere, raw bytes kept, comments kept."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.parsing.sse import SSEParser, encode, parse_block

STREAM = (b": keep-alive\n\n"
          b"event: message_start\ndata: {\"a\": 1}\n\n"
          b"data: {\"b\":\n"
          b"data: 2}\n\n"
          b"data: [DONE]\n\n")


def test_events_fields_and_raw_bytes():
    events = SSEParser().feed(STREAM)
    assert [e.raw for e in events] == [b": keep-alive\n\n", b"event: message_start\ndata: {\"a\": 1}\n\n",
                                       b"data: {\"b\":\ndata: 2}\n\n", b"data: [DONE]\n\n"]
    assert events[0].is_comment and events[0].data is None
    assert (events[1].event, events[1].data) == ("message_start", b'{"a": 1}')
    assert events[2].data == b'{"b":\n2}'       # multi-line data joined with \n
    assert b"".join(e.raw for e in events) == STREAM


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_split_anywhere_gives_the_same_events(cuts):
    parser = SSEParser()
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)])]
    events = [e for piece in pieces for e in parser.feed(piece)]
    assert [e.raw for e in events] == [e.raw for e in SSEParser().feed(STREAM)]
    assert parser.rest() == b""


def test_crlf_line_ends_and_unterminated_tail():
    parser = SSEParser()
    events = parser.feed(b"data: 1\r\n\r\ndata: 2\r\n")
    assert [e.data for e in events] == [b"1"]
    assert parser.rest() == b"data: 2\n"


def test_oversized_event_is_refused():
    parser = SSEParser(max_event_bytes=16)
    try:
        parser.feed(b"data: " + b"x" * 64)
    except ValueError:
        return
    raise AssertionError("an endless event must not grow the buffer without bound")


def test_encode_and_parse_block_round_trip():
    ev = parse_block(encode(b'{"x":1}', "ping"))
    assert (ev.event, ev.data) == ("ping", b'{"x":1}')
    assert encode(b"[DONE]") == b"data: [DONE]\n\n"
