"""The request glue's shortcuts against the plain code they stand for: histograms that derive
their count when rendered and record a guard's times by label (proxy/telemetry/metrics.py), the
first-letter test of upstream_seconds (proxy/durations.py) and the pipeline's cached span
names (proxy/pipeline.py)."""
from __future__ import annotations

from bisect import bisect_left
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from proxy import pipeline
from proxy.durations import upstream_seconds
from proxy.telemetry.metrics import GUARD_BUCKETS, HistogramMetric, render_local

LABELS = st.sampled_from(["pii", "injection", "access", "ratelimit", "hook:x", "é"])
SECONDS = st.one_of(st.sampled_from(GUARD_BUCKETS), st.floats(0, 2, allow_nan=False), st.integers(0, 3))


def _plain_text(name: str, bounds: tuple, measurements: list) -> list[str]:
    """The exposition of a one-label histogram, counted the plain way: a count kept per value."""
    rows: dict[str, list] = {}
    for label, value in measurements:
        row = rows.setdefault(label, [0] * (len(bounds) + 1) + [0.0, 0])
        row[bisect_left(bounds, float(value))] += 1
        row[-2] += value
        row[-1] += 1
    lines = []
    for label, row in rows.items():
        cumulative = 0
        for bound, count in zip(bounds, row):
            cumulative += count
            lines.append(f'{name}_bucket{{guard="{label}",le="{float(bound)!r}"}} {cumulative}')
        lines.append(f'{name}_bucket{{guard="{label}",le="+Inf"}} {row[-1]}')
        lines.append(f'{name}_sum{{guard="{label}"}} {float(row[-2])!r}')
        lines.append(f'{name}_count{{guard="{label}"}} {row[-1]}')
    return lines


@given(st.lists(st.lists(st.tuples(LABELS, SECONDS), max_size=6), max_size=8), st.booleans())
def test_record_each_renders_as_plain_counting(exchanges, mixed):
    """Each exchange's guard times through record_each (and, mixed, every other one through
    record) render exactly as histograms that keep a count per value."""
    hist = HistogramMetric("aifw.guard.duration", "d", ("guard",), GUARD_BUCKETS)
    flat = []
    for i, measurements in enumerate(exchanges):
        if mixed and i % 2:
            for label, value in measurements:
                hist.record(value, (label,))
        else:
            hist.record_each(iter(measurements))
        flat += measurements
    text = render_local([hist], []).decode()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == _plain_text("aifw_guard_duration_seconds", hist.bounds, flat)


class _Otel:
    def __init__(self) -> None:
        self.seen: list = []

    def record(self, value, attributes) -> None:
        self.seen.append((value, dict(attributes)))


def test_record_each_reaches_the_exporter_value_by_value():
    otel = _Otel()
    hist = HistogramMetric("aifw.guard.duration", "d", ("guard",), GUARD_BUCKETS, otel)
    hist.record_each([("pii", 0.002), ("access", 0.5), ("pii", 3.0)])
    assert otel.seen == [(0.002, {"guard": "pii"}), (0.5, {"guard": "access"}), (3.0, {"guard": "pii"})]
    assert b'aifw_guard_duration_seconds_count{guard="pii"} 2' in render_local([hist], [])


NAMES = st.one_of(st.sampled_from(["upstream", "upstream primary", "guard.pii", "usage", "u", "Upstream",
                                   "guard:injection.on_request", "xupstream"]), st.text(min_size=1, max_size=12))


@given(st.lists(st.tuples(NAMES, st.floats(0, 10), st.floats(0, 10)), max_size=10),
       st.one_of(st.none(), st.floats(0, 5)), st.one_of(st.none(), st.floats(5, 10)))
def test_upstream_seconds_is_the_plain_sum(spans, started, finished):
    ex = SimpleNamespace(spans=spans, upstream_started=started, finished=finished)
    ups = [end - start for name, start, end in spans if name.startswith("upstream")]
    total = 0.0
    for part in ups:
        total += part
    plain = total if ups else (finished - started if started is not None and finished is not None else None)
    assert upstream_seconds(ex) == plain


@given(st.lists(st.one_of(st.text(alphabet="ab.", max_size=4), st.text(max_size=10)), min_size=1, max_size=6))
def test_span_names_are_the_guard_names_formatted(names):
    ex = SimpleNamespace(guard_seconds={}, spans=[])
    for name in names + names:
        pipeline._timed(ex, SimpleNamespace(name=name), 0.0)
    assert [span[0] for span in ex.spans] == [f"guard.{name}" for name in names + names]
    assert set(ex.guard_seconds) == set(names)
