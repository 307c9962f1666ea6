"""Parsing of the human-friendly sizes and durations used in the audit section and the CLI."""
from __future__ import annotations

import os
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_SIZE_FACTORS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
                 "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
                 "tb": 1000**4, "tib": 1024**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_FACTORS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]?[iI]?[bB]?)?\s*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"


def parse_size(value: int | float | str) -> int:
    """``1048576``, ``"100MB"``, ``"64MiB"`` -> bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    m = _SIZE.match(value)
    if not m or (m.group(2) or "").lower() not in _SIZE_FACTORS:
        raise ValueError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _SIZE_FACTORS[(m.group(2) or "").lower()])


def parse_duration(value: int | float | str) -> float:
    """``30``, ``"500ms"``, ``"15m"``, ``"1d"`` -> seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _DURATION_FACTORS[m.group(2)]


def expand_env(value: str) -> str:
    """``${VAR}`` and ``${VAR:-default}``, as a shell would, so a policy can name a directory."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
