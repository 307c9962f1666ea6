"""Phone numbers: phone-shaped candidates validated by ``phonenumbers`` or a nearby context word.

Candidates come from one cheap regex, so ``phonenumbers`` parses a handful of strings instead
of scanning the whole text once per region (its matcher is pure Python and slow on long text).
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Iterable

import phonenumbers
import regex

from ..spans import Span
from .context import Context

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IN")

PHONE_CONTEXT_WORDS = (
    "phone", "telephone", "tel", "mobile", "cell", "cellphone", "fax", "desk", "office", "call",
    "calling", "called", "text", "sms", "whatsapp", "contact", "reach", "dial", "ring",
    "messages", "landline", "hotline", "home", "work", "direct", "extension", "answering",
    "telefon", "handy", "téléphone", "portable", "tél", "mob",
)

_CANDIDATE = regex.compile(
    r"(?<![\p{L}\p{N}+\-./])"
    r"(?:\+\d{1,3}[ .\-]?|00\d{1,3}[ .\-])?"        # international prefix
    r"(?:\(0\)[ ]?)?"                                # the UK/CH style "(0)"
    r"(?:\(\d{1,5}\)[ .\-]?)?"                       # area code in parentheses
    r"\d{1,12}(?:[ .\-]\d{1,12}){0,6}"               # digit groups, one separator each
    r"(?:[ ]?(?:x|ext\.?|#)[ ]?\d{1,6})?"            # extension
    r"(?![\p{L}\p{N}:]|[.,\-/]\d)"
)
# Numbers next to these words are identifiers of another kind, whatever their shape.
NOT_PHONE_WORDS = ("license", "licence", "passport", "account", "order", "invoice", "zip",
                   "postal", "postcode", "iban", "card", "ssn", "id", "serial", "tracking")
_EXTENSION = regex.compile(r"[ ]?(?:x|ext\.?|#)[ ]?\d{1,6}$")
_DATE_PREFIX = regex.compile(r"^\d{4}-\d{2}-\d{2}(?!\d)")
_DATE_SHAPE = regex.compile(r"^(?:\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{4})$")


class PhoneRecognizer:
    entities = ("PHONE_NUMBER",)

    def __init__(self, regions: tuple[str, ...] = DEFAULT_REGIONS,
                 context_words: tuple[str, ...] = PHONE_CONTEXT_WORDS) -> None:
        self.regions = regions
        self.context = Context.of(context_words, before=40, after=12)
        self.veto = Context.of(NOT_PHONE_WORDS, before=30, after=0)

    def find(self, text: str, taken: list[tuple[int, int]] = ()) -> Iterable[Span]:
        """``taken``: spans stronger recognisers already hold; a candidate inside one is not
        parsed at all (phonenumbers is the costliest step of detection)."""
        taken = sorted(taken)
        starts = [a for a, _ in taken]
        for m in _CANDIDATE.finditer(text):
            near = taken[max(0, bisect_right(starts, m.start()) - 1):bisect_right(starts, m.end())]
            if any(a <= m.start() and m.end() <= b for a, b in near):
                continue
            if self.veto.near(text, m.start(), m.end()):
                continue
            for end in self._ends(m, text):
                if any(a < end and m.start() < b for a, b in near):
                    continue
                span = self._judge(text, m.start(), end)
                if span is not None:
                    yield span
                    break

    def _ends(self, m: "regex.Match[str]", text: str) -> list[int]:
        """The whole candidate, or when it holds too many digits ("+1 415-555-0132 4111 ..."),
        its prefixes at group boundaries that could still be one number (only where it is
        clearly meant as a phone number: international, or next to a telling word)."""
        raw = m.group()
        if sum(c.isdigit() for c in raw) <= 15:
            return [m.end()]
        if not (raw.startswith("+") or self.context.near(text, m.start(), m.end())):
            return []
        ends = []
        digits = 0
        for i, ch in enumerate(raw):
            if ch.isdigit():
                digits += 1
                if digits > 15:
                    break
                if i + 1 == len(raw) or not raw[i + 1].isdigit():
                    ends.append(m.start() + i + 1)
        return [e for e in reversed(ends)]

    def _judge(self, text: str, start: int, end: int) -> Span | None:
        core = _EXTENSION.sub("", text[start:end])
        digits = sum(c.isdigit() for c in core)
        if not 7 <= digits <= 15 or _DATE_SHAPE.match(core) or _DATE_PREFIX.match(core):
            return None
        score = self._score(text, start, end, core, digits)
        return Span(start, end, "PHONE_NUMBER", score) if score else None

    def _score(self, text: str, start: int, end: int, core: str, digits: int) -> float:
        formatted = not core.isdigit()
        international = core.startswith("+") or core.startswith("00")
        # Without a telling word only a number that is unmistakably a phone number counts:
        # international, or a full national number in written form; short groups of digits are
        # house numbers, zip codes and ids far more often.
        if international or (formatted and digits >= 10):
            if self._valid(core, international):
                return 0.75 if (international or self.context.near(text, start, end)) else 0.6
        # Numbers from regions outside the configured list, or bare digit runs, count only
        # next to a telling word: a ten-digit order id is not a phone number.
        if self.context.near(text, start, end):
            if self._valid(core, international):
                return 0.75
            return 0.55
        return 0.0

    def _valid(self, core: str, international: bool) -> bool:
        if international:
            number = "+" + core[2:] if core.startswith("00") else core
            try:
                return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
            except phonenumbers.NumberParseException:
                return False
        for region in self.regions:
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(core, region)):
                    return True
            except phonenumbers.NumberParseException:
                continue
        return False
