"""Dates of birth: a real calendar date with a birth word just before it."""
from __future__ import annotations

import datetime

import regex

from ..spans import Span
from .context import Context
from .probe import Probe, needles, probe_of

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = regex.compile(
    r"(?i)(?<![\p{L}\p{N}])(?:"
    r"(?P<y1>\d{4})[\-./](?P<m1>\d{1,2})[\-./](?P<d1>\d{1,2})"
    r"|(?P<a2>\d{1,2})[\-./](?P<b2>\d{1,2})[\-./](?P<y2>\d{4}|\d{2})"
    rf"|(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m3>{_MONTH}),?\s+(?P<y3>\d{{4}})"
    rf"|(?P<m4>{_MONTH})\s+(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y4>\d{{4}})"
    r")(?![\p{L}\p{N}])"
)
_BIRTH_WORDS = ("born", "birth", "birthday", "dob", "d.o.b", "date of birth", "birthdate",
                "geboren", "geburtsdatum", "né", "née", "date de naissance")
_BIRTH = Context.of(_BIRTH_WORDS, before=30, after=0)
# Substrings of every birth word, for a cheap test that the text holds one at all.
BIRTH_STEMS = needles("born", "birth", "dob", "d.o.b", "geboren", "geburtsdatum", "né", "naissance")


def _plausible(y: int, m: int, d: int) -> bool:
    try:
        date = datetime.date(y, m, d)
    except ValueError:
        return False
    return 1900 <= date.year <= datetime.date.today().year


def _is_date(g: dict) -> bool:
    if g["y1"]:
        return _plausible(int(g["y1"]), int(g["m1"]), int(g["d1"]))
    if g["y2"]:
        y = int(g["y2"])
        y = y + (1900 if y > 30 else 2000) if len(g["y2"]) == 2 else y
        a, b = int(g["a2"]), int(g["b2"])
        return _plausible(y, b, a) or _plausible(y, a, b)   # day-first or month-first
    if g["y3"]:
        return _plausible(int(g["y3"]), _MONTHS[g["m3"][:3].lower()], int(g["d3"]))
    return _plausible(int(g["y4"]), _MONTHS[g["m4"][:3].lower()], int(g["d4"]))


class BirthDateRecognizer:
    entities = ("DATE_OF_BIRTH",)

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        probe = probe_of(text, probe)
        if not probe.runs or not probe.has_any(BIRTH_STEMS):
            return out
        for m in _DATE.finditer(text):
            if _BIRTH.near(text, m.start(), m.end()) and _is_date(m.groupdict()):
                out.append(Span(m.start(), m.end(), "DATE_OF_BIRTH", 0.8))
        return out
