"""Phone numbers: phone-shaped candidates judged by how they are written, ``phonenumbers`` and
nearby words.

Candidates come from one cheap regex, so ``phonenumbers`` parses a handful of strings instead
of scanning the whole text once per region (its matcher is pure Python and slow on long text).
Without a telling word a candidate counts only when its writing says "phone": an international
prefix (``+``, ``00``, ``+49 (0)``), the national trunk prefix of a hinted region (``0458 922
359`` in AU, FR, DE...), the hinted region's own digit grouping, a North American
``(NXX) NXX-XXXX`` shape, or ten or more digits in groups; and the number must be valid (or,
after a ``+``, at least possible) for its country. A bare run of digits without a trunk prefix is
an id far more often than a phone, so it needs a telling word.
"""
from __future__ import annotations

import datetime
from bisect import bisect_left
from functools import lru_cache
from typing import Iterable

import phonenumbers
import regex
from phonenumbers import PhoneNumberFormat

from ..spans import Span
from .context import Context
from .probe import Probe, probe_of

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IN")
# The score of a number only a telling word nearby admits (neither its writing nor validation).
_CONTEXT_ONLY = 0.55

PHONE_CONTEXT_WORDS = (
    "phone", "telephone", "tel", "mobile", "cell", "cellphone", "fax", "desk", "office", "call",
    "calling", "called", "text", "sms", "whatsapp", "contact", "reach", "dial", "ring",
    "messages", "landline", "hotline", "home", "work", "direct", "extension", "answering",
    "telefon", "handy", "téléphone", "portable", "tél", "mob",
)

_EXT = r"(?:[ ]?(?:x|X|ext\.?|Ext\.?|EXT\.?|extension|#)[ ]?\d{1,6})"
_CANDIDATE = regex.compile(
    r"(?<![\p{L}\p{N}+\-./])"
    r"(?:\+\d{1,3}[ .\-]?|00\d{1,3}[ .\-]?)?"       # international prefix
    r"(?:[ ]?\(0\)[ ]?)?"                            # the DE/UK/CH style "(0)"
    r"(?:(?:\d{1,2}[ ]?)?\(\d{1,5}\)[ .\-]?)?"         # area code in parentheses, maybe after a trunk prefix
    r"\d{1,12}(?:[ .\-/]\d{1,12}){0,6}"              # digit groups, one separator each
    rf"{_EXT}?"
    r"(?![\p{L}\p{N}:]|[.,\-/]\d)"
)
# Numbers labelled by these words are identifiers of another kind, whatever their shape.
NOT_PHONE_WORDS = ("license", "licence", "passport", "account", "order", "invoice", "zip",
                   "postal", "postcode", "iban", "card", "ssn", "id", "serial", "tracking",
                   "version", "build", "release", "isbn", "sku", "ean")
_LABEL_GAP = regex.compile(r"(?i)(?:[\s:#.,=()'\"\-]|\b(?:no|nr|num|number|numbers|is|was|of|the|code|on|file|s)\b)*")
_EXTENSION = regex.compile(rf"{_EXT}$")
_EXT_GAP = regex.compile(r"[ ]?(?:x|X|ext\.?|Ext\.?|EXT\.?|extension|#)[ ]?")
# A date, alone or followed by more numbers ("on 12/03/2024 15 units").
_DATE_SHAPE = regex.compile(r"^(?:\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{4})(?!\d)")
_ZIP4 = regex.compile(r"^\d{5}-\d{4}$")
_RANGE = regex.compile(r"^(?:(?:19|20)\d\d[\-/]\d+$|(?:19|20)\d\d[\-/](?:19|20)\d\d|(?:[01]\d|2[0-3])[0-5]\d-(?:[01]\d|2[0-3])[0-5]\d)$")
_CARD_GROUPS = regex.compile(r"^\d{4}(?:[ \-]\d{4}){2,}(?:[ \-]\d{1,4})?$")
_VERSION = regex.compile(r"^\d+(?:\.\d+)*\.\d\.\d+")           # a one-digit inner group: 10.0.19041
_NANP = regex.compile(r"^(?:(?:\+|00)?1[ .\-]?)?(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d[.\-])\d{3}[.\-]\d{4}$")
_CC_IN_PARENS = regex.compile(r"^\((\d{1,3})\)[ ]?\d")
_CURRENCY = regex.compile(r"(?:[$€£¥₹]|\b(?:USD|EUR|GBP|CHF|JPY|INR|AUD|CAD))[ ]?\Z")
_NON_DIGIT = regex.compile(r"\D+")


def _date_digits(d: str) -> bool:
    """Eight bare digits that read as a date (yyyymmdd, ddmmyyyy, mmddyyyy)."""
    def ok(y: str, m: str, day: str) -> bool:
        try:
            return 1900 <= datetime.date(int(y), int(m), int(day)).year <= 2099
        except ValueError:
            return False
    return len(d) == 8 and (ok(d[:4], d[4:6], d[6:]) or ok(d[4:], d[2:4], d[:2]) or ok(d[4:], d[:2], d[2:4]))


def _clustered_runs(text: str, runs: list[tuple[int, int]]) -> list[int]:
    """The indices of the digit runs that belong to a cluster of seven or more digits (runs
    linked by gaps that a candidate can span: up to three characters, or an extension mark);
    a smaller cluster holds no phone number. One pass, each cluster's digits summed on the way
    (most runs in prose stand alone)."""
    if not runs:
        return []
    out: list[int] = []
    first = 0
    prev_start, prev_end = runs[0]
    digits = prev_end - prev_start
    for i in range(1, len(runs)):
        start, end = runs[i]
        gap = start - prev_end
        if gap > 3 and (gap > 11 or not _EXT_GAP.fullmatch(text, prev_end, start)):
            if digits >= 7:         # a new cluster begins at run i
                out.extend(range(first, i))
            first, digits = i, 0
        digits += end - start
        prev_end = end
    if digits >= 7:
        out.extend(range(first, len(runs)))
    return out


def _date_shaped(s: str) -> bool:
    """``_DATE_SHAPE.match(s)``: a date holds a "-", "." or "/", which few candidates do."""
    return ("-" in s or "." in s or "/" in s) and _DATE_SHAPE.match(s) is not None


# What a currency match (``_CURRENCY``, up to ``[ ]?\Z``) ends in: a symbol or a code's last letter.
_CURRENCY_ENDS = frozenset("$€£¥₹DRPFY")


def _after_currency(text: str, start: int) -> bool:
    """``_CURRENCY.search(text, max(0, start - 5), start)``: the match ends at ``start``, after
    at most one space, so its symbol or code's last letter is one of the two characters before."""
    before = text[start - 1] if start > 0 else ""
    if before == " ":
        before = text[start - 2] if start > 1 else ""
    return before in _CURRENCY_ENDS and _CURRENCY.search(text, max(0, start - 5), start) is not None


@lru_cache(maxsize=4096)
def _parsed(core: str, region: str | None) -> "tuple[phonenumbers.PhoneNumber | None, bool]":
    """``phonenumbers``' reading of ``core`` and whether it is a valid number. Parsing and
    validating cost 25-60 µs (a +1 number is checked against 25 regions), and the same numbers
    come back with every turn of a conversation, so readings are remembered (bounded)."""
    try:
        number = phonenumbers.parse(core, region)
    except phonenumbers.NumberParseException:
        return None, False
    # Valid for the region it was read in (or its country's main region) implies valid; that
    # one check spares is_valid_number's search through every region sharing the code.
    home = region or phonenumbers.region_code_for_country_code(number.country_code)
    return number, (phonenumbers.is_valid_number_for_region(number, home)
                    or phonenumbers.is_valid_number(number))


@lru_cache(maxsize=None)
def _longest_national(country_code: int) -> int:
    region = phonenumbers.region_code_for_country_code(country_code)
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    lengths = meta.general_desc.possible_length if meta is not None else ()
    return max(lengths or (17,))


def _overlong(raw: str) -> bool:
    """Whether an international number (``+``/``00``) holds more digits than its country's
    numbers can have (besides a written trunk prefix, "+49 (0)30 ...")."""
    if not (raw.startswith("+") or raw.startswith("00")):
        return False
    digits = "".join(c for c in _EXTENSION.sub("", raw) if c.isdigit())
    if raw.startswith("00"):
        digits = digits[2:]
    for n in (1, 2, 3):
        if int(digits[:n] or 0) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return len(digits) - n > _longest_national(int(digits[:n])) + ("(0)" in raw)
    return False


def forget_phone_numbers() -> None:
    """Empty the parse memory (benchmarks measure the cold cost)."""
    _parsed.cache_clear()


def _groups(s: str) -> list[int]:
    return [len(g) for g in _NON_DIGIT.split(s) if g]


class PhoneRecognizer:
    entities = ("PHONE_NUMBER",)

    def __init__(self, regions: tuple[str, ...] = DEFAULT_REGIONS,
                 context_words: tuple[str, ...] = PHONE_CONTEXT_WORDS) -> None:
        self.regions = regions
        self.context = Context.of(context_words, before=40, after=12)
        self.veto = Context.of(NOT_PHONE_WORDS, before=30, after=0)
        self._prefixes: dict[str, str | None] = {}
        self._lengths: dict[str, tuple[int, int]] = {}   # digits a national number may have
        for r in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(r)
            if meta is None:
                continue
            self._prefixes[r] = meta.national_prefix
            lengths = meta.general_desc.possible_length or ()
            if lengths:
                # Room for the trunk prefix and whatever else the region strips when parsing.
                self._lengths[r] = (min(lengths), max(lengths) + 6)

    def find(self, text: str, probe: Probe | None = None, taken: list[tuple[int, int]] = (),
             contested: list[tuple[int, int]] | None = None) -> list[Span]:
        """``taken``: spans stronger recognisers already hold. Candidates are sought only
        between them, so a number right after (or before) another entity is still judged on
        its own, and nothing inside one is parsed (phonenumbers is the costliest step).
        ``contested``: spans of weaker recognisers. A number a telling word already admits is
        validated only when it overlaps one of them, since its score (0.75 valid, 0.55 not)
        matters only against an overlapping span; None: every such number is validated."""
        probe = probe_of(text, probe)
        if probe.digits < 7:
            return []
        runs = probe.runs
        clustered = _clustered_runs(text, runs)
        if not clustered:       # every candidate lies in a cluster of seven digits or more
            return []
        out: list[Span] = []
        pos = 0
        for a, b in sorted(taken) + [(len(text), len(text))]:
            if a > pos:
                out += self._find_in(text, pos, a, runs, clustered, contested)
            pos = max(pos, b)
        return out

    @staticmethod
    def _candidates(text: str, lo: int, hi: int, runs: list[tuple[int, int]],
                    clustered: list[int]) -> list["regex.Match[str]"]:
        """``_CANDIDATE.finditer(text, lo, hi)`` less the candidates too short to judge, tried
        only where a match can start: every candidate has a digit run starting at most two
        characters in ("+4", "(0", " (0)"), and lies within one cluster of runs that no more
        than three characters (or an extension mark) apart; ``clustered``: the runs in
        clusters of seven or more digits (``_clustered_runs``)."""
        out = []
        pos = lo
        for k in range(bisect_left(clustered, bisect_left(runs, (lo, -1))), len(clustered)):
            start = runs[clustered[k]][0]
            if start >= hi:
                break
            lo_at = max(pos, start - 2)
            if lo_at < start and "+" not in text[lo_at:start] and "(" not in text[lo_at:start]:
                # Before the run's first digit a match can start only at a "+" or a "(" (or the
                # space of " (0)"), so here only at the digit itself.
                lo_at = start
            for at in range(lo_at, start + 1):
                # A match's first character: "+", "(", a digit, or the space of " (0)".
                ch = text[at]
                if not (ch == "+" or ch == "(" or ch.isdigit() or ch == " " and text[at + 1] == "("):
                    continue
                m = _CANDIDATE.match(text, at, hi)
                if m is not None:
                    out.append(m)
                    pos = m.end()
                    break
        return out

    def _find_in(self, text: str, lo: int, hi: int, runs: list[tuple[int, int]],
                 clustered: list[int], contested: list[tuple[int, int]] | None) -> list[Span]:
        out = []
        for m in self._candidates(text, lo, hi, runs, clustered):
            # A date, or a date and more numbers: every end _prefix_ends offers starts with the
            # date (or holds fewer than seven digits), so none can be a phone number.
            if m.end() - m.start() < 7:
                continue
            raw = m.group()
            if _date_shaped(raw) or self._labelled_otherwise(text, m.start()):
                continue
            span = self._number_in(m, raw, text, contested)
            if span is not None:
                out.append(span)
        return out

    def _number_in(self, m: "regex.Match[str]", raw: str, text: str,
                   contested: list[tuple[int, int]] | None) -> Span | None:
        """The phone number a candidate (``raw``: its text, not date-shaped) holds: the whole
        candidate, or when it fails (or holds more than 15 digits, too many for one number) the
        longest of its prefixes that passes, for a number followed by another one
        ("+1 415-555-0132 12")."""
        # Every extension mark (x, ext., EXT, extension, #) holds an "x", "X" or "#".
        ext = _EXTENSION.search(raw) if "x" in raw or "X" in raw or "#" in raw else None
        body = raw[:ext.start()] if ext else raw
        total = sum(map(str.isdigit, body))
        start = m.start()
        if total <= 15:
            # The body is no date either: an extension mark holds neither digit nor separator,
            # so a date shape in the body would have been one in the candidate.
            span = self._judge(text, start, m.end(), contested, body, digits=total)
            if span is not None:
                if span.score != _CONTEXT_ONLY or not _overlong(raw):
                    return span
                # A telling word admits the whole, but it has more digits than its country's
                # numbers: a valid prefix is the number ("call +1 415-555-0132 12 times").
                return next(filter(None, (self._judge(text, start, end, None, text[start:end], validated=True)
                                          for end in self._prefix_ends(m, text, body, total))), span)
        for end in self._prefix_ends(m, text, body, total):
            span = self._judge(text, start, end, contested, text[start:end])
            if span is not None:
                return span
        return None

    def _labelled_otherwise(self, text: str, start: int) -> bool:
        """A non-phone word ("order", "SSN") vetoes only the number it labels: the words between
        them may only be fillers ("order no. is 4155550132"). Another number, a placeholder or
        a name between them means the word labelled something else."""
        last = self.veto.last(text, max(0, start - self.veto.before), start)
        return last is not None and _LABEL_GAP.fullmatch(text, last.end(), start) is not None

    def _prefix_ends(self, m: "regex.Match[str]", text: str, body: str, total: int) -> list[int]:
        """Where a shorter number inside the candidate may end, longest first: after a digit
        group, with 7-15 digits, ending in a group of two or more (no phone number ends in a
        lone digit, a list of readings may), and the next group following a space: "0132-12" is
        one token, an id more often than a phone number and a suffix. Where the candidate is
        clearly meant as a phone number (international, or next to a telling word) any group
        boundary counts. ``body``: the candidate less its extension; ``total``: its digits. Of
        more than 15 digits only such clear candidates are cut."""
        clear: bool | None = body.startswith("+") or None      # None: not looked up yet
        if total > 15:
            clear = clear or self.context.near(text, m.start(), m.end())
            if not clear:
                return []
        ends = []
        digits = group = 0
        for i, ch in enumerate(body[:-1]):
            if not ch.isdigit():
                group = 0
                continue
            digits += 1
            group += 1
            if digits > 15:
                break
            after = body[i + 1]
            if digits >= 7 and group >= 2 and not after.isdigit():
                if after != " " and clear is None:
                    clear = self.context.near(text, m.start(), m.end())
                if after == " " or clear:
                    ends.append(m.start() + i + 1)
        ends.reverse()
        return ends

    def _judge(self, text: str, start: int, end: int, contested: list[tuple[int, int]] | None,
               core: str, validated: bool = False, digits: int | None = None) -> Span | None:
        """The span of a phone number at ``text[start:end]``, or None. ``core``: that text less
        an extension. ``validated``: only a number its writing or ``phonenumbers`` admits, not
        one a telling word alone admits. ``digits``: given when the caller counted ``core``'s
        digits and knows it is not date-shaped."""
        if digits is None:
            digits = sum(map(str.isdigit, core))
            if _date_shaped(core):
                return None
        if not 7 <= digits <= 15:
            return None
        if _after_currency(text, start):
            return None
        unopposed = contested is not None and (
            not contested or not any(a < end and start < b for a, b in contested))
        score = self._score(text, start, end, core, digits, unopposed)
        if not score or validated and score <= _CONTEXT_ONLY:
            return None
        return Span(start, end, "PHONE_NUMBER", score)

    def _score(self, text: str, start: int, end: int, core: str, digits: int, unopposed: bool) -> float:
        context = self.context.near(text, start, end)
        if context and unopposed:
            return _CONTEXT_ONLY    # admitted either way; the score would only break a tie
        if core.startswith("+") or core.startswith("00"):
            number, valid = _parsed("+" + core[2:] if core.startswith("00") else core, None)
            if number is None:
                return _CONTEXT_ONLY if context else 0.0
            if valid:
                return 0.75
            # A "+" is written for phone numbers only; "00" also starts zero-padded ids.
            if core.startswith("+") and phonenumbers.is_possible_number(number) or self._nanp(core):
                return 0.65
            return _CONTEXT_ONLY if context else 0.0
        trunk = tuple(r for r in self.regions if self._prefixes.get(r) and core.lstrip("(").startswith(self._prefixes[r]))
        if context:     # valid anywhere: the regions whose trunk prefix it has are likeliest
            likely = trunk + tuple(r for r in self.regions if r not in trunk)
            return 0.75 if next(self._valid_in(core, likely), None) else _CONTEXT_ONLY
        if self._not_a_phone_shape(core):
            return 0.0
        bare = core.isdigit()
        # A bare run of digits counts only with a trunk prefix, so only those regions are tried.
        for region, number in self._valid_in(core, trunk if bare else self.regions):
            if region in trunk or digits >= 10 and not bare or self._grouped_as_in(region, number, core):
                return 0.6
        if self._nanp(core):
            return 0.6
        cc = _CC_IN_PARENS.match(core)
        if cc and int(cc.group(1)) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            if _parsed("+" + "".join(c for c in core if c.isdigit()), None)[1]:
                return 0.6  # "(351) 912 345 678": a country code written without its "+"
        return 0.0

    def _nanp(self, core: str) -> bool:
        """Written as North American numbers are ("(NXX) NXX-XXXX"), even if the area code is
        unassigned: no other number is written so."""
        return ("US" in self.regions or "CA" in self.regions) and _NANP.match(core) is not None

    @staticmethod
    def _not_a_phone_shape(core: str) -> bool:
        return bool(_ZIP4.match(core) or _RANGE.match(core) or _CARD_GROUPS.match(core)
                    or _VERSION.match(core) or (core.isdigit() and _date_digits(core)))

    @staticmethod
    def _grouped_as_in(region: str, number: "phonenumbers.PhoneNumber", core: str) -> bool:
        """Written with separators exactly as the region groups its numbers ("612 34 56 78")."""
        if core.isdigit():
            return False
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        return _groups(national) == _groups(core)


    def _valid_in(self, core: str, regions: tuple[str, ...]) -> "Iterable[tuple[str, phonenumbers.PhoneNumber]]":
        """The regions (lazily, in order) in which ``core`` is a valid national number. Parsing
        costs ~25 µs a region, so regions whose lengths cannot fit are skipped unparsed."""
        digits = sum(map(str.isdigit, core))
        for region in regions:
            low, high = self._lengths.get(region, (0, 99))
            if not low <= digits <= high:
                continue
            number, valid = _parsed(core, region)
            if valid:
                yield region, number
