"""A held-out phone set, generated, never used to tune the recogniser.

Positives come from ``phonenumbers``' example numbers (fixed line and mobile) of 44 regions,
written the ways people write them: international, E.164, ``+CC (0) …``, national, bare national
digits and with extensions, in sentences without a contact word. National forms are judged with
the policy's region hint for their region (``phoneRegions: [R]``); international ones with the
default regions. Negatives are numbers that are not phones: order numbers, dates, amounts, ids,
times, versions, IBAN and card fragments, ZIP+4 codes, in the same kind of sentences.

The tuning cases live in test_pii_phone.py; this file is only measured against.
"""
from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T

REGIONS = ("US", "CA", "GB", "IE", "DE", "AT", "CH", "FR", "BE", "NL", "LU", "IT", "ES", "PT",
           "SE", "NO", "DK", "FI", "PL", "CZ", "IN", "AU", "NZ", "JP", "KR", "CN", "HK", "SG",
           "BR", "MX", "AR", "ZA", "NG", "KE", "IL", "TR", "RU", "UA", "AE", "SA", "EG", "PH",
           "ID", "MY")

TEMPLATES = (
    "Noted in the ticket: {}",
    "{} was written on the paper form.",
    "The customer left {} in the notes field yesterday.",
    "See {} (copied from the CRM export).",
    "Alternatively try {}, according to the spreadsheet.",
    "Entry from March: {} - please double-check it",
)


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    value: str | None          # the phone number as written, or None for a negative
    regions: tuple[str, ...]   # the policy's phoneRegions hint for this case (() = default)


def _written_forms(region: str, number: phonenumbers.PhoneNumber) -> list[tuple[str, tuple[str, ...]]]:
    intl = phonenumbers.format_number(number, F.INTERNATIONAL)
    national = phonenumbers.format_number(number, F.NATIONAL)
    forms: list[tuple[str, tuple[str, ...]]] = [
        (intl, ()),
        (phonenumbers.format_number(number, F.E164), ()),
        (national, (region,)),
        ("".join(c for c in national if c.isdigit()), (region,)),
        (intl + " ext. 204", ()),
        (national + "x3312", (region,)),
    ]
    prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix
    if prefix == "0" and national.startswith("0"):
        cc = intl.split(" ", 1)[0]
        forms.append((f"{cc} (0){national[1:]}", ()))
        forms.append((f"{cc}(0){national[1:].replace(' ', '')}", ()))
    return forms


def positives() -> list[Case]:
    cases = []
    i = 0
    for region in REGIONS:
        for kind in (T.FIXED_LINE, T.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for value, hint in _written_forms(region, number):
                cases.append(Case(TEMPLATES[i % len(TEMPLATES)].format(value), value, hint))
                i += 1
    return cases


NEGATIVE_VALUES = (
    # order numbers and ids
    "ORD-2024-000123", "order #4155550132", "PO 4500012345", "invoice no. 0012345678",
    "ticket INC0012345", "user id 48213377", "customer 10034567", "case 2024-118734",
    "SKU 400-1234-5678", "UUID 123e4567-e89b-12d3-a456-426614174000", "ISBN 978-3-16-148410-0",
    "tracking 1Z999AA10123456784", "build 20240302.1", "request 7f3a9c12", "EAN 4006381333931",
    # dates and times
    "2024-03-02", "03/02/2024", "02.03.2024", "20240302", "2 March 2024", "2024-03-02 14:30:05",
    "2024-03-02T14:30:05Z", "14:30", "between 0830-1700", "from 2019-2024", "Q3 2024",
    "1700000000 (unix time)",
    # amounts and counts
    "$1,234,567.89", "€ 12 345 678,00", "1.234.567,89 EUR", "USD 4 500 000", "£2,500,000",
    "12 345 678 people", "a population of 8 336 817", "0.000123456", "3.14159265358979",
    "±0.0025 mm", "1234567 bytes",
    # versions
    "version 10.0.19041.1234", "v2.3.14", "Python 3.11.7", "release 1.24.3-beta",
    "kernel 6.5.0-1024-azure",
    # IBAN and card fragments, ZIP+4
    "3704 0044 0532 0130 00", "4111 1111 1111", "card ending 4242 4242", "5500 0000 0000",
    "Austin, TX 78701-1234", "Boston MA 02134-1234", "ZIP 94103-1234",
    # coordinates, measurements, misc
    "48.8566, 2.3522", "-33.8688, 151.2093", "1920x1080", "lot 12-345-678",
)


def negatives() -> list[Case]:
    return [Case(TEMPLATES[i % len(TEMPLATES)].format(v), None, ())
            for i, v in enumerate(NEGATIVE_VALUES)]


@dataclass(slots=True)
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list = None
    false_alarms: list = None

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(cases: list[Case], detector_for) -> Score:
    """Exact-boundary scoring of PHONE_NUMBER spans; ``detector_for(regions)`` gives a detector."""
    s = Score(misses=[], false_alarms=[])
    for case in cases:
        found = [case.text[x.start:x.end] for x in detector_for(case.regions).detect(case.text)
                 if x.entity == "PHONE_NUMBER"]
        hit = case.value is not None and case.value in found
        s.tp += hit
        s.fn += case.value is not None and not hit
        wrong = [f for f in found if f != case.value]
        s.fp += len(wrong)
        if case.value is not None and not hit:
            s.misses.append((case.regions, case.text))
        s.false_alarms.extend((case.regions, case.text, f) for f in wrong)
    return s
