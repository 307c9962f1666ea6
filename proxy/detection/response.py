"""Response-direction checks: canary leakage and exfiltration markup, streamed or whole.

A stream passes through ``StreamWindow``: every delta is checked together with the held-back
tail of the previous ones, and only text older than the window is released, so a canary or a
markdown image split across chunks is caught before any of it reaches the client.
"""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

import regex

from .normalize import normalize
from .settings import ResponseSettings

CANARY_RULE = "RS-4001"
EXFIL_RULE = "RS-4002"

# Markdown images load without a click: any outside host can receive what the URL carries.
_MD_IMAGE = regex.compile(r"!\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]{1,2000})")
_HTML_IMAGE = regex.compile(r"<img\b[^>]{0,200}?\bsrc\s*=\s*[\"']?(https?://[^\s\"'>]{1,2000})", regex.I)
# Links need a click, so they count only when the URL carries data (a query or a long path).
_MD_LINK = regex.compile(r"(?<!!)\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]{1,2000})")
_REF_DEF = regex.compile(r"^\s*\[[^\]\n]{1,100}\]:\s*(https?://\S{1,2000})", regex.M)


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for rule in allowed:
        if rule.startswith("*."):
            if host == rule[2:] or host.endswith(rule[1:]):
                return True
        elif host == rule:
            return True
    return False


def _carries_data(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.query) or len(parts.path) > 48


def exfiltration(text: str, allowed: tuple[str, ...]) -> bool:
    if "http" not in text:
        return False
    for pattern, needs_data in ((_MD_IMAGE, False), (_HTML_IMAGE, False),
                                (_MD_LINK, True), (_REF_DEF, True)):
        for m in pattern.finditer(text, timeout=0.05):
            url = m.group(1)
            try:
                host = urlsplit(url).hostname or ""
            except ValueError:
                return True          # a URL crafted to confuse parsers is itself suspect
            if not _host_allowed(host, allowed) and (not needs_data or _carries_data(url)):
                return True
    return False


def canary_leak(text: str, settings: ResponseSettings) -> bool:
    if settings.canary_pattern is None:
        return False
    # Normalise so full-width or zero-width-split copies of a canary are still found.
    return settings.canary_pattern.search(normalize(text), timeout=0.05) is not None


def check(text: str, settings: ResponseSettings) -> tuple[str, ...]:
    hits = []
    if canary_leak(text, settings):
        hits.append(CANARY_RULE)
    if settings.exfiltration and exfiltration(text, settings.allowed_hosts):
        hits.append(EXFIL_RULE)
    return tuple(hits)


class StreamWindow:
    """Hold back the last ``size`` characters of one text stream until more arrives."""

    __slots__ = ("size", "held")

    def __init__(self, size: int):
        self.size = size
        self.held = ""

    def push(self, text: str, settings: ResponseSettings) -> tuple[str, tuple[str, ...]]:
        """(text safe to release now, rule ids hit). On a hit nothing is released."""
        buf = self.held + text
        hits = check(buf, settings)
        if hits:
            self.held = buf       # the guard drops it (enforce) or flushes it (monitor)
            return "", hits
        cut = max(0, len(buf) - self.size)
        # Never split a surrogate-free but combining sequence: cut before a combining mark.
        while 0 < cut < len(buf) and unicodedata.combining(buf[cut]):
            cut -= 1
        self.held = buf[cut:]
        return buf[:cut], ()

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out
