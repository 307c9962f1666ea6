"""Durations and sizes as written in policies: ``10s``, ``250ms``, ``5m``, ``1h``; ``10MiB``."""
from __future__ import annotations

import re

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DUR_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
               "GB": 1000**3, "GiB": 1024**3}

DURATION_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"}],
    "description": "A duration: seconds as a number, or a string like 250ms, 10s, 5m, 1h.",
}
SIZE_SCHEMA = {
    "anyOf": [{"type": "integer", "minimum": 0},
              {"type": "string", "pattern": r"^\s*\d+\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$"}],
    "description": "A size: bytes as an integer, or a string like 512KiB, 10MiB.",
}


def parse_duration(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DUR.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _DUR_UNITS[m.group(2)]


def parse_size(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def micros(seconds: float) -> float:
    """Seconds kept to the microsecond (audit records): ``round(seconds, 6)`` but without its
    round trip through a decimal string, which costs a few times more on every exchange; the
    two differ only where ``seconds * 1e6`` lies within a rounding error of a half."""
    return round(seconds * 1e6) / 1e6


# ``upstream``, where a caller may pass ``upstream_seconds(ex)`` it computed already: not yet
NOT_COMPUTED = object()


def upstream_seconds(ex) -> float | None:
    """Seconds an exchange spent on its upstream calls (the ``upstream`` spans: attempts and a
    repair), or from the first send to the end when no span was closed; None when nothing was
    sent. The audit record's ``latency.upstream`` and the upstream duration metric."""
    total = 0.0
    seen = False
    for name, start, end in ex.spans:
        # most spans are the guards' ("guard.NAME"): the first letter (a span's name is never
        # empty) rules them out without a method call each
        if name[0] == "u" and name.startswith("upstream"):
            total += end - start
            seen = True
    if seen:
        return total
    if ex.upstream_started is not None and ex.finished is not None:
        return ex.finished - ex.upstream_started
    return None
