"""Email, IPv4 and IPv6 addresses, validated by the standard library's parsers."""
from __future__ import annotations

import ipaddress
from typing import Iterable

import regex

from ..spans import Span
from .probe import Probe, probe_of


class EmailRecognizer:
    entities = ("EMAIL_ADDRESS",)
    _pattern = regex.compile(
        r"(?<![\p{L}\p{N}._%+\-])[\p{L}\p{N}._%+\-]{1,64}@"
        r"(?:[\p{L}\p{N}](?:[\p{L}\p{N}\-]{0,61}[\p{L}\p{N}])?\.)+\p{L}{2,63}(?![\p{L}\p{N}\-])"
    )

    # The local part's characters, at most 65 of them, just before an "@" (endpos), searched
    # backwards from it.
    _local_run = regex.compile(r"(?r)[\p{L}\p{N}._%+\-]{1,65}\Z")
    _local_char = regex.compile(r"[\p{L}\p{N}._%+\-]")

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        for m in self._matches(text):
            local = m.group().split("@", 1)[0]
            if local.startswith(".") or local.endswith(".") or ".." in local:
                continue
            out.append(Span(m.start(), m.end(), "EMAIL_ADDRESS", 0.95))
        return out

    def _matches(self, text: str) -> list["regex.Match[str]"]:
        """``_pattern.finditer(text)``, tried only where a match can start: at the beginning of
        the run of local-part characters before each "@" (the look-behind forbids any later
        start), when that run is short enough to be a local part."""
        out = []
        pos = 0
        at = text.find("@")
        while at != -1:
            run = self._local_run.search(text, max(pos, at - 65), at)
            if run is not None and run.end() - run.start() <= 64 and (
                    run.start() > pos or pos == 0 or not self._local_char.match(text, pos - 1)):
                m = self._pattern.match(text, run.start())
                if m is not None:
                    out.append(m)
                    pos = m.end()
            at = text.find("@", max(at + 1, pos))
        return out


def _two_colons_close(text: str) -> bool:
    """An IPv6 address has two colons at most five characters apart; most prose has none."""
    at = text.find(":")
    while at != -1:
        nxt = text.find(":", at + 1)
        if nxt == -1:
            return False
        if nxt - at <= 5:
            return True
        at = nxt
    return False


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


class IpRecognizer:
    entities = ("IP_ADDRESS",)
    _v4 = regex.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\d|\.\d)")
    # Candidates only; ipaddress decides. The lookarounds keep times (12:30:45) and MACs apart.
    _v6 = regex.compile(
        r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
        r"(?:%[0-9A-Za-z]+)?(?![\w:])"
    )

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        last = 0
        for start, end in probe_of(text, probe).runs:   # an IPv4 address starts a digit run
            if start < last or end >= len(text) or text[end] != ".":
                continue
            m = self._v4.match(text, start)
            if m is not None:
                last = m.end()
                out.append(Span(m.start(), m.end(), "IP_ADDRESS", 0.8))
        if not _two_colons_close(text):
            return out
        for m in self._v6.finditer(text):
            raw = m.group()
            if raw.count(":") < 2 or len(raw) < 3:
                continue
            try:
                ipaddress.IPv6Address(raw.split("%", 1)[0])
            except ValueError:
                continue
            # "::" alone or a bare "a::b" in prose is too weak; require some hex content.
            if sum(c.isalnum() for c in raw) < 2:
                continue
            out.append(Span(m.start(), m.end(), "IP_ADDRESS", 0.8))
        return out
