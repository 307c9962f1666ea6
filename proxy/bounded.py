"""Bounds for text the client controls (model names, asserted users, error text that echoes a
request) wherever aifw writes it down: audit records, span attributes, metric labels. A 1 MB
model name must cost a few hundred bytes of audit log, not a megabyte, and one metric series
per distinct value must not be something a client can create at will."""
from __future__ import annotations

import re
from typing import Any

MAX_FIELD = 256          # characters kept of one free-text field
MAX_MODEL_LABELS = 50    # model label values per process beyond the policy's own model names
_PLAUSIBLE_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]{0,63}")


def cap(value: Any, limit: int = MAX_FIELD) -> Any:
    """``value`` cut to ``limit`` characters, marked with its full length; non-strings as given."""
    if type(value) is not str or len(value) <= limit:
        return value
    return f"{value[:limit]}...[{len(value)} chars]"


def literal_models(policy: Any) -> frozenset[str]:
    """Model names a policy spells out (route patterns without wildcards)."""
    names = set()
    for route in getattr(policy, "routes", ()) or ():
        for pattern in getattr(route.models, "patterns", ()):
            if not any(c in pattern for c in "*?["):
                names.add(pattern)
    return frozenset(names)


class ModelLabels:
    """Bounded label values for a model: the policy's own model names, then the first
    ``capacity`` other plausible names seen, then ``other``."""

    def __init__(self, capacity: int = MAX_MODEL_LABELS) -> None:
        self.capacity = capacity
        self.seen: set[str] = set()
        self._known: dict[str, frozenset[str]] = {}     # by policy digest (one per reload)

    def label(self, model: Any, policy: Any = None) -> str:
        if not isinstance(model, str) or not model:
            return "unknown"
        if model in self.seen:
            return model
        digest = getattr(policy, "digest", None)
        known = self._known.get(digest)
        if known is None:
            if len(self._known) > 16:
                self._known.clear()
            known = self._known[digest] = literal_models(policy)
        if model in known:
            return model
        if len(self.seen) < self.capacity and _PLAUSIBLE_MODEL.fullmatch(model):
            self.seen.add(model)
            return model
        return "other"
