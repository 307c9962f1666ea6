"""The detector: the policy's recognisers, overlap resolution and the allow-list."""
from __future__ import annotations

from dataclasses import dataclass

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

    def detect(self, text: str) -> list[Span]:
        found: list[Span] = []
        weak: list[PhoneRecognizer] = []
        probe = Probe(text)         # shared: digit runs and the folded text are computed once
        for rec in self.recognizers:
            if not self.entities.intersection(rec.entities):
                continue
            if isinstance(rec, PhoneRecognizer):
                weak.append(rec)
                continue
            for span in rec.find(text, probe):
                if span.entity in self.entities:
                    found.append(span)
        if weak:
            # Phone parsing is the costliest step: skip digits a validated entity already holds.
            taken = [(s.start, s.end) for s in found if s.score >= 0.8]
            contested = [(s.start, s.end) for s in found if s.score < 0.8]
            for rec in weak:
                found.extend(rec.find(text, probe, taken, contested))
        kept = resolve_overlaps(found)
        if self.allow.values or self.allow.patterns:
            kept = [s for s in kept if not self.allow.allows(text[s.start:s.end])]
        return kept


def default_detector(entities=BUILTIN_ENTITIES, phone_regions=DEFAULT_REGIONS) -> Detector:
    return Detector(tuple(builtin_recognizers(phone_regions)), frozenset(entities))
