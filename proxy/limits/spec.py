"""Limit notation (``60/minute``, ``5000/day``, ``1000000/month``) and OpenAI's duration format.

Parsed once when a policy compiles; the hot path only sees numbers.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timezone

UNIT_SECONDS = {
    "second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0,
}
UNIT_ALIASES = {
    "s": "second", "sec": "second", "second": "second", "seconds": "second",
    "m": "minute", "min": "minute", "minute": "minute", "minutes": "minute",
    "h": "hour", "hr": "hour", "hour": "hour", "hours": "hour",
    "d": "day", "day": "day", "days": "day",
    "month": "month", "months": "month", "mo": "month",
}
BUDGET_PERIODS = ("day", "month")

# "60/minute", "10 / second", "100000/5minutes", "1k/hour", "2.5m/day" (k and m multipliers)
_RATE = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<mult>[kKmM]?)\s*(?:/|per\s+)\s*(?P<count>\d+)?\s*(?P<unit>[a-zA-Z]+)\s*$"
)
RATE_PATTERN = r"^\s*\d+(\.\d+)?\s*[kKmM]?\s*(/|per\s+)\s*\d*\s*[a-zA-Z]+\s*$"


class LimitSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Rate:
    """``amount`` units per ``window`` seconds, refilled continuously."""

    amount: int
    window: float
    text: str


@dataclass(frozen=True, slots=True)
class Budget:
    """``amount`` tokens per calendar ``period`` (UTC); spent, not refilled until the period ends."""

    amount: int
    period: str
    text: str


def _split(text: str) -> tuple[int, int, str]:
    m = _RATE.match(str(text))
    if not m:
        raise LimitSpecError(f"{text!r} is not a limit like '60/minute' or '5000/day'")
    n = float(m["n"]) * {"": 1, "k": 1_000, "m": 1_000_000}[m["mult"].lower()]
    if n != int(n) or n <= 0:
        raise LimitSpecError(f"{text!r}: the amount must be a positive whole number")
    unit = UNIT_ALIASES.get(m["unit"].lower())
    if unit is None:
        raise LimitSpecError(f"{text!r}: unknown unit {m['unit']!r} (second, minute, hour, day, month)")
    count = int(m["count"]) if m["count"] else 1
    if count <= 0:
        raise LimitSpecError(f"{text!r}: the window must be at least one {unit}")
    return int(n), count, unit


def parse_rate(text: str) -> Rate:
    amount, count, unit = _split(text)
    if unit == "month":
        raise LimitSpecError(f"{text!r}: months are calendar windows; use it as a budget")
    return Rate(amount, count * UNIT_SECONDS[unit], str(text).strip())


def parse_budget(text: str) -> Budget:
    amount, count, unit = _split(text)
    if unit not in BUDGET_PERIODS or count != 1:
        raise LimitSpecError(f"{text!r}: a budget is per day or per month (calendar, UTC)")
    return Budget(amount, unit, str(text).strip())


# "50USD/month", "$50/month", "12.5 USD / day"
_SPEND = re.compile(r"^\s*\$?\s*(?P<n>\d+(?:\.\d+)?)\s*(?:USD)?\s*(?:/|per\s+)\s*(?P<unit>[a-zA-Z]+)\s*$", re.I)
SPEND_PATTERN = r"^\s*\$?\s*\d+(\.\d+)?\s*([uU][sS][dD])?\s*(/|per\s+)\s*[a-zA-Z]+\s*$"


@dataclass(frozen=True, slots=True)
class Spend:
    """``amount`` micro-dollars per calendar ``period`` (UTC)."""

    amount: int
    period: str
    text: str


def parse_spend(text: str) -> Spend:
    m = _SPEND.match(str(text))
    if not m:
        raise LimitSpecError(f"{text!r} is not a spend budget like '50USD/month' or '$5/day'")
    unit = UNIT_ALIASES.get(m["unit"].lower())
    if unit not in BUDGET_PERIODS:
        raise LimitSpecError(f"{text!r}: a spend budget is per day or per month (calendar, UTC)")
    micro = round(float(m["n"]) * 1_000_000)
    if micro <= 0:
        raise LimitSpecError(f"{text!r}: the amount must be positive")
    return Spend(micro, unit, str(text).strip())


def calendar_window(period: str, now: float) -> tuple[str, float]:
    """The UTC calendar window holding ``now``: (window id for keys, end as epoch seconds)."""
    t = datetime.fromtimestamp(now, tz=timezone.utc)
    if period == "day":
        start = calendar.timegm((t.year, t.month, t.day, 0, 0, 0))
        return f"d{t.year:04d}{t.month:02d}{t.day:02d}", start + 86400.0
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return f"m{t.year:04d}{t.month:02d}", float(calendar.timegm((year, month, 1, 0, 0, 0)))


# format_reset's texts by whole milliseconds: two reset headers on every allowed request, and
# the same few values (a rate's refill after one request) come back; bounded, cleared when full.
_RESET_TEXTS: dict[int, str] = {}
_RESET_TEXTS_MAX = 4096


def format_reset(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format, as Go prints durations: ``20ms``, ``1s``,
    ``1.5s``, ``6m0s``, ``1h2m3s``."""
    ms = round(seconds * 1000)        # an int already (``round`` of a float)
    if ms < 0:
        ms = 0
    text = _RESET_TEXTS.get(ms)
    if text is None:
        if len(_RESET_TEXTS) >= _RESET_TEXTS_MAX:
            _RESET_TEXTS.clear()
        text = _RESET_TEXTS[ms] = format_reset_ms(ms)
    return text


def format_reset_ms(ms: int) -> str:
    """``format_reset`` of ``ms`` whole milliseconds (≥ 0), computed."""
    if ms < 1000:
        return f"{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def describe_window(seconds: float) -> str:
    for unit in ("day", "hour", "minute", "second"):
        size = UNIT_SECONDS[unit]
        if seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} seconds"
