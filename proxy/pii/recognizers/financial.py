"""Payment cards (scheme IIN ranges + Luhn), IBANs (python-stdnum) and US SSNs."""
from __future__ import annotations

import string

import regex
from stdnum import iban as stdnum_iban

from ..spans import Span
from .probe import Probe, probe_of
from .context import Context


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# (prefix range low, high, allowed lengths): the issuer ranges of the major schemes. Prefixes
# of different widths are compared on the card's own leading digits.
_ALL = range(12, 20)
_SCHEMES: tuple[tuple[str, str, tuple[int, ...] | range], ...] = (
    ("4", "4", (13, 16, 19)),                     # Visa
    ("51", "55", (16,)),                          # Mastercard
    ("2221", "2720", (16,)),                      # Mastercard 2-series
    ("34", "34", (15,)), ("37", "37", (15,)),     # Amex
    ("6011", "6011", range(16, 20)),              # Discover
    ("644", "649", range(16, 20)),
    ("65", "65", range(16, 20)),
    ("35", "35", range(15, 20)),                  # JCB (3528-3589; generators use all of 35)
    ("1800", "1800", (15,)), ("2131", "2131", (15,)),  # JCB legacy 15-digit
    ("300", "305", range(14, 20)), ("3095", "3095", range(14, 20)),  # Diners
    ("36", "36", range(14, 20)), ("38", "39", range(14, 20)),
    ("50", "50", _ALL), ("56", "69", _ALL),       # Maestro (12-19) and the 6-series
    ("62", "62", range(16, 20)),                  # UnionPay
    ("2200", "2204", range(16, 20)),              # Mir
)


def card_scheme_ok(digits: str) -> bool:
    n = len(digits)
    for low, high, lengths in _SCHEMES:
        head = digits[: len(low)]
        if low <= head <= high and n in lengths:
            return True
    return False


def _card_grouping(raw: str) -> bool:
    # Printed cards group as 4-4-4-4, 4-6-5 or 4-6-4; other groupings are phone numbers or ids.
    groups = raw.replace("-", " ").split(" ")
    return len(groups[0]) == 4 and all(3 <= len(g) <= 6 for g in groups[1:-1]) and len(groups[-1]) <= 6


def _chain(text: str, runs: list[tuple[int, int]], i: int) -> tuple[int, int]:
    """Where the chain of digit runs starting at ``runs[i]`` ends, each run after the first
    following the one before after a single space or dash, and how many digits it holds."""
    start, end = runs[i]
    digits = end - start
    for start, nxt in runs[i + 1:]:
        if start != end + 1 or text[end] not in " -":
            break
        digits += nxt - start
        end = nxt
    return end, digits


class CardRecognizer:
    entities = ("CREDIT_CARD",)
    # Runs of digit groups separated by single spaces or dashes; cards are found inside them.
    _pattern = regex.compile(r"(?<![\p{L}\p{N}\-.])\d+(?:[ \-]\d+)*(?![\p{L}\p{N}]|[\-.]\d)")
    _group = regex.compile(r"\d+")

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        probe = probe_of(text, probe)
        if probe.digits < 12:
            return out
        last = 0
        runs = probe.runs
        for i, (run_start, run_end) in enumerate(runs):  # a run of groups starts where a digit run does
            if run_start < last:
                continue
            if run_end - run_start < 12:
                if not (text[run_end:run_end + 1] in (" ", "-") and text[run_end + 1:run_end + 2].isdigit()):
                    continue                       # shorter than a card, and nothing follows
                # The pattern's groups are whole digit runs joined by one space or dash: fewer
                # than 12 digits in this chain of runs, and no match inside it holds a card
                # (a phone number, a date). Saves the pattern's call (~10 k instructions).
                end, digits = _chain(text, runs, i)
                if digits < 12:
                    last = end
                    continue
            m = self._pattern.match(text, run_start)
            if m is None:
                continue
            last = m.end()
            raw = m.group()     # digits and single spaces or dashes: fewer than 12 digits, no card
            if len(raw) - raw.count(" ") - raw.count("-") < 12:
                continue
            groups = [(g.start(), g.end()) for g in self._group.finditer(text, m.start(), m.end())]
            i = 0
            # A run may hold a card next to other numbers ("SSN 123-45-6780 4111 1111 ..."):
            # try each contiguous stretch of groups, longest first.
            while i < len(groups):
                for j in range(min(len(groups), i + 6) - 1, i - 1, -1):
                    start, end = groups[i][0], groups[j][1]
                    # Digits and separators alternate, so this counts the stretch's digits.
                    if not 12 <= end - start - (j - i) <= 19:
                        continue
                    if self._is_card(text[start:end]):
                        out.append(Span(start, end, "CREDIT_CARD", 0.9))
                        i = j
                        break
                i += 1
        return out

    @staticmethod
    def _is_card(raw: str) -> bool:
        if " " in raw and "-" in raw:
            return False
        digits = raw.replace(" ", "").replace("-", "")
        if not 12 <= len(digits) <= 19:
            return False
        if digits != raw and not _card_grouping(raw):
            return False
        return card_scheme_ok(digits) and luhn_ok(digits)


def iban_checksum_ok(compact: str) -> bool:
    """ISO 7064 mod 97-10 over an IBAN's letters and digits, country code and check digits moved
    to the end: the check python-stdnum's validation includes, for a few µs instead of its
    format tables' ~10 µs, so wrong readings of a greedy match are dropped before it."""
    moved = compact[4:] + compact[:4]
    return moved.isascii() and moved.isalnum() and int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_ASCII_LETTERS = frozenset(string.ascii_letters)


class IbanRecognizer:
    entities = ("IBAN_CODE",)
    # Country code, check digits, then BBAN characters optionally grouped by single spaces.
    _pattern = regex.compile(r"(?<![\p{L}\p{N}])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![\p{L}\p{N}])")

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        pos = 0
        # An IBAN's check digits start a digit run right after its two-letter country code.
        for run_start, run_end in probe_of(text, probe).runs:
            start = run_start - 2
            # Two check digits after two ASCII letters: a single-character test first, since
            # most runs follow a space (slicing and two method calls per run cost ~2 k).
            if start < pos or run_end - run_start < 2 or text[run_start - 1] not in _ASCII_LETTERS:
                continue
            if not text[start:run_start].isascii() or not text[start:run_start].isalpha():
                continue
            m = self._pattern.match(text, start)
            if m is None:
                continue
            raw = m.group()
            pos = m.start() + 1
            # The greedy match may swallow a following word or a second IBAN: retry shorter at
            # group ends, and go on scanning right after what was taken.
            cut = len(raw)
            while cut >= 15:
                candidate = raw[:cut]
                compact = candidate.replace(" ", "").upper()
                if iban_checksum_ok(compact) and stdnum_iban.is_valid(compact):
                    out.append(Span(m.start(), m.start() + cut, "IBAN_CODE", 0.95))
                    pos = m.start() + cut
                    break
                cut = candidate.rfind(" ")
        return out


_SSN_CONTEXT = Context.of(("ssn", "social security", "ss#", "ss no", "social sec", "taxpayer"), 40, 10)
_SSN_INVALID = frozenset({"078051120", "219099999", "123456789"})


def ssn_ok(area: str, group: str, serial: str) -> bool:
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return (area + group + serial) not in _SSN_INVALID


class SsnRecognizer:
    entities = ("US_SSN",)
    _pattern = regex.compile(r"(?<![\d\-./])(\d{3})([- .]?)(\d{2})\2(\d{4})(?![\d]|[\-.]\d)")

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        probe = probe_of(text, probe)
        if probe.digits < 9:
            return out
        last = 0
        for run_start, run_end in probe.runs:    # an SSN starts a digit run of three
            if run_start < last or run_end - run_start not in (3, 9):
                continue
            m = self._pattern.match(text, run_start)
            if m is None:
                continue
            last = m.end()
            area, sep, group, serial = m.groups()
            if not ssn_ok(area, group, serial):
                continue
            if sep == "-":
                out.append(Span(m.start(), m.end(), "US_SSN", 0.85))
            elif _SSN_CONTEXT.near(text, m.start(), m.end()):
                # Bare or spaced nine digits are too common to take without a telling word.
                out.append(Span(m.start(), m.end(), "US_SSN", 0.85))
        return out
