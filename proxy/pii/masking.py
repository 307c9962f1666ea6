"""Masking one text: detected spans -> operator output, skipping placeholders already there."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .operators import Keys, apply
from .spans import Span
from .vault import PLACEHOLDER, Vault


@dataclass(slots=True)
class MaskResult:
    text: str
    counts: dict[str, int] = field(default_factory=dict)     # masked values per entity
    blocked: set[str] = field(default_factory=set)           # entities whose operator is block


def without_placeholders(text: str, spans: list[Span]) -> list[Span]:
    """Our own tokens (``<EMAIL_ADDRESS_1>``) are never PII themselves."""
    if "<" not in text or not spans:
        return spans
    marks = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    if not marks:
        return spans
    return [s for s in spans if all(s.end <= a or s.start >= b for a, b in marks)]


def mask_spans(text: str, spans: list[Span], ops: Mapping[str, str], vault: Vault, keys: Keys,
               restorable: bool, keep_known: bool = False) -> MaskResult:
    """Apply ``ops`` to ``spans`` (sorted, non-overlapping).

    ``keep_known``: in answers, a value the caller sent and we masked is the caller's own data
    (restoration would put it back anyway), so it is left alone.
    """
    result = MaskResult(text)
    if not spans:
        return result
    parts: list[str] = []
    pos = 0
    for span in spans:
        op = ops.get(span.entity, "none")
        if op == "none":
            continue
        value = text[span.start:span.end]
        if op == "block":
            result.blocked.add(span.entity)
            continue
        if keep_known and vault.is_restorable_value(span.entity, value):
            continue
        parts.append(text[pos:span.start])
        parts.append(apply(op, span.entity, value, vault, keys, restorable))
        pos = span.end
        result.counts[span.entity] = result.counts.get(span.entity, 0) + 1
    if pos:
        parts.append(text[pos:])
        result.text = "".join(parts)
    return result
