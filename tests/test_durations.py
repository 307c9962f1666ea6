from hypothesis import given
from hypothesis import strategies as st

from proxy.durations import micros, parse_duration, parse_size


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_micros_is_round_to_six_places(seconds):
    kept = micros(seconds)
    assert abs(kept - seconds) <= 5e-7 + 1e-9 * seconds
    assert kept == round(seconds, 6) or abs(seconds * 1e6 % 1 - 0.5) < 1e-6   # only at a half


def test_micros_keeps_short_decimals():
    assert micros(0.25) == 0.25 and repr(micros(0.1234564)) == "0.123456" and micros(0.0000004) == 0.0


def test_policy_durations_and_sizes():
    assert parse_duration("250ms") == 0.25 and parse_duration(3) == 3.0 and parse_duration("1h") == 3600.0
    assert parse_size("10MiB") == 10 * 1024 * 1024 and parse_size(5) == 5
