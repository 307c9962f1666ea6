"""Policy-defined entities: patterns with an optional validator and context, and term lists."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterable

import regex

from ..spans import Span
from .context import Context
from .financial import luhn_ok

Validator = Callable[[str], bool]


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def _mod97(value: str) -> bool:
    from stdnum.iso7064 import mod_97_10
    try:
        return mod_97_10.is_valid("".join(c for c in value if c.isalnum()).upper())
    except Exception:
        return False


_NAMED: dict[str, Validator] = {
    "luhn": lambda v: bool(_digits(v)) and luhn_ok(_digits(v)),
    "mod97": _mod97,
}


def load_validator(name: str) -> Validator:
    """``luhn``, ``mod97`` or any python-stdnum module, e.g. ``stdnum.de.idnr``."""
    if name in _NAMED:
        return _NAMED[name]
    if name.startswith("stdnum.") and all(p.isidentifier() for p in name.split(".")):
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ValueError(f"unknown validator {name!r}") from None
        is_valid = getattr(module, "is_valid", None)
        if callable(is_valid):
            return is_valid
    raise ValueError(f"unknown validator {name!r}: use luhn, mod97 or a stdnum module")


@dataclass(frozen=True, slots=True)
class PatternRecognizer:
    entity: str
    pattern: "regex.Pattern[str]"
    validator: Validator | None = None
    context: Context | None = None
    score: float = 0.8

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity,)

    def find(self, text: str, probe: object = None) -> Iterable[Span]:
        for m in self.pattern.finditer(text):
            if m.end() == m.start():
                continue
            if self.validator is not None and not self.validator(m.group()):
                continue
            if self.context is not None and not self.context.near(text, m.start(), m.end()):
                continue
            yield Span(m.start(), m.end(), self.entity, self.score)


def trie_pattern(terms: Iterable[str]) -> str:
    """One regex alternation shaped as a trie, so matching costs O(text), not O(terms)."""
    trie: dict = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = []
        optional = "" in node
        for ch in sorted(k for k in node if k):
            branches.append(regex.escape(ch) + emit(node[ch]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if optional:
            body = "(?:" + body + ")?"
        return body

    return emit(trie)


@dataclass(frozen=True, slots=True)
class TermListRecognizer:
    entity: str
    pattern: "regex.Pattern[str]"
    score: float = 0.9

    @classmethod
    def build(cls, entity: str, terms: Iterable[str], case_sensitive: bool = False) -> "TermListRecognizer":
        cleaned = sorted({t.strip() for t in terms if t.strip() and not t.lstrip().startswith("#")})
        if not case_sensitive:
            cleaned = sorted({t.casefold() for t in cleaned})
        if not cleaned:
            raise ValueError(f"term list for {entity} is empty")
        flags = 0 if case_sensitive else regex.I
        body = trie_pattern(cleaned)
        # Whole words only: "Ann" in a list must not mask "Annual".
        return cls(entity, regex.compile(rf"(?<![\p{{L}}\p{{N}}_])(?:{body})(?![\p{{L}}\p{{N}}_])", flags))

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity,)

    def find(self, text: str, probe: object = None) -> Iterable[Span]:
        for m in self.pattern.finditer(text):
            yield Span(m.start(), m.end(), self.entity, self.score)
