"""The detector: the policy's recognisers, overlap resolution and the allow-list."""
from __future__ import annotations

from dataclasses import dataclass, field

import regex

from .recognizers import Recognizer
from .recognizers.birthdate import BirthDateRecognizer
from .recognizers.financial import CardRecognizer, IbanRecognizer, SsnRecognizer
from .recognizers.network import EmailRecognizer, IpRecognizer
from .recognizers.phone import DEFAULT_REGIONS, PhoneRecognizer
from .recognizers.probe import Probe
from .recognizers.secrets import SECRET_ENTITIES, SecretRecognizer
from .spans import Span, resolve_overlaps

PII_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
                "IP_ADDRESS", "DATE_OF_BIRTH")
BUILTIN_ENTITIES = PII_ENTITIES + SECRET_ENTITIES


def builtin_recognizers(phone_regions: tuple[str, ...] = DEFAULT_REGIONS) -> list[Recognizer]:
    return [EmailRecognizer(), PhoneRecognizer(phone_regions), CardRecognizer(), IbanRecognizer(),
            SsnRecognizer(), IpRecognizer(), BirthDateRecognizer(), SecretRecognizer()]


@dataclass(frozen=True, slots=True)
class AllowList:
    values: frozenset[str] = frozenset()              # casefolded exact values
    patterns: tuple["regex.Pattern[str]", ...] = ()   # full-match patterns

    def allows(self, value: str) -> bool:
        if value.casefold() in self.values:
            return True
        return any(p.fullmatch(value) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class Detector:
    recognizers: tuple[Recognizer, ...]
    entities: frozenset[str]          # entity types this detector reports
    allow: AllowList = AllowList()
    # Derived once (the scan runs per text): the recognisers that can report one of
    # ``entities``, phone recognisers apart, and whether a span must be filtered by entity.
    _strong: tuple[Recognizer, ...] = field(init=False, repr=False, compare=False)
    _weak: tuple[PhoneRecognizer, ...] = field(init=False, repr=False, compare=False)
    _filter: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        active = [r for r in self.recognizers if self.entities.intersection(r.entities)]
        object.__setattr__(self, "_strong", tuple(r for r in active if not isinstance(r, PhoneRecognizer)))
        object.__setattr__(self, "_weak", tuple(r for r in active if isinstance(r, PhoneRecognizer)))
        object.__setattr__(self, "_filter", any(not self.entities.issuperset(r.entities) for r in active))

    def detect(self, text: str) -> list[Span]:
        found: list[Span] = []
        probe = Probe(text)         # shared: digit runs and the folded text are computed once
        for rec in self._strong:
            found.extend(rec.find(text, probe))
        if self._filter:
            found = [s for s in found if s.entity in self.entities]
        if self._weak:
            # Phone parsing is the costliest step: skip digits a validated entity already holds.
            taken: list[tuple[int, int]] = []
            contested: list[tuple[int, int]] = []
            for s in found:
                (taken if s.score >= 0.8 else contested).append((s.start, s.end))
            for rec in self._weak:
                found.extend(rec.find(text, probe, taken, contested))
        kept = resolve_overlaps(found) if len(found) > 1 else found
        if self.allow.values or self.allow.patterns:
            kept = [s for s in kept if not self.allow.allows(text[s.start:s.end])]
        return kept


def default_detector(entities=BUILTIN_ENTITIES, phone_regions=DEFAULT_REGIONS) -> Detector:
    return Detector(tuple(builtin_recognizers(phone_regions)), frozenset(entities))
