"""Response-direction checks: canary leakage and exfiltration markup, streamed or whole.

A stream passes through ``StreamWindow``, which holds back only the suffix that could still
become a finding: a partial canary (a suffix whose normalised form is the start of a canary)
and markup that is not decided yet (an open markdown image, link or reference definition, an
HTML tag, a URL not yet ended). Everything before it is released with the delta that brought
it. Each check runs on the held text with a little released text before it as context, so
look-behinds, line starts and mixed-script words read as they do in the whole answer; the
held suffix is bounded by ``holdBack`` (past it, open markup is judged as it stands).
"""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

import regex

from .normalize import _CONFUSABLES, normalize
from .settings import ResponseSettings

CANARY_RULE = "RS-4001"
EXFIL_RULE = "RS-4002"

# Markdown images load without a click: any outside host can receive what the URL carries.
_MD_IMAGE = regex.compile(r"!\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]{1,2000})")
# (an optional backslash: the same tag inside JSON text, such as tool-call arguments)
_HTML_IMAGE = regex.compile(r"<img\b[^>]{0,200}?\bsrc\s*=\s*\\?[\"']?(https?://[^\s\\\"'>]{1,2000})", regex.I)
# Links need a click, so they count only when the URL carries data (a query or a long path).
_MD_LINK = regex.compile(r"(?<!!)\[[^\]\n]{0,200}\]\(\s*<?(https?://[^\s)>]{1,2000})")
_REF_DEF = regex.compile(r"^\s*\[[^\]\n]{1,100}\]:\s*(https?://\S{1,2000})", regex.M)
# (pattern, counts only when the URL carries data)
_MARKUP = ((_MD_IMAGE, False), (_HTML_IMAGE, False), (_MD_LINK, True), (_REF_DEF, True))
# An <img> tag not closed yet. (The regex package's partial matching misses "<img " against the
# lazy attribute run of _HTML_IMAGE, so open tags are found with this pattern instead.)
_HTML_OPEN = regex.compile(r"<(?:i(?:m(?:g(?:\b[^>]{0,2200})?)?)?)?\Z", regex.I)
_OPENERS = regex.compile(r"[!\[<]")
_TRAILING_SPACE = regex.compile(r"\s*\Z")
# Released text kept as left context of the next check (look-behinds, ``^``, mixed-script words).
CONTEXT_CHARS = 64


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


def _exfil_url(url: str, allowed: tuple[str, ...], needs_data: bool) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return True          # a URL crafted to confuse parsers is itself suspect
    return not _host_allowed(host, allowed) and (not needs_data or _carries_data(url))


def scan_markup(text: str, start: int, allowed: tuple[str, ...], final: bool) -> tuple[bool, int]:
    """(exfiltration found, where undecided markup begins) for markup starting at ``start`` or
    later; ``text[:start]`` is context only. Not ``final``: markup whose URL reaches the end of
    ``text``, or that could still become markup, is left undecided (``len(text)``: none)."""
    hold = len(text)
    if not final:
        if _OPENERS.search(text, start) is None:
            return False, hold
    elif "http" not in text:
        return False, hold
    for pattern, needs_data in _MARKUP:
        pos = start
        if pattern is _REF_DEF:
            # a definition may begin in released white space at a line start
            pos = _TRAILING_SPACE.search(text, 0, start).start()
        partial = not final and pattern is not _HTML_IMAGE
        for m in pattern.finditer(text, pos, partial=partial, timeout=0.05):
            if m.partial or (not final and m.end() == len(text)):
                begin = m.start() + len(m.group()) - len(m.group().lstrip())
                if begin < m.end():         # white space alone is never held
                    hold = min(hold, max(begin, start))
                continue
            if _exfil_url(m.group(1), allowed, needs_data):
                return True, hold
    if not final:
        tag = _HTML_OPEN.search(text, start)
        if tag is not None:
            hold = min(hold, tag.start())
    return False, hold


def canary_leak(text: str, settings: ResponseSettings) -> bool:
    if settings.canary_pattern is None:
        return False
    # Normalise so full-width or zero-width-split copies of a canary are still found.
    return settings.canary_pattern.search(normalize(text), timeout=0.05) is not None


def check(text: str, settings: ResponseSettings) -> tuple[str, ...]:
    """Rule ids a whole answer hits."""
    return _hits(text, 0, settings, final=True)


def _partial_canary(norm: str, settings: ResponseSettings) -> int:
    """Length of the longest end of ``norm`` that is the start of a canary."""
    longest = 0
    for view in (norm,) if norm.isascii() else (norm, norm.translate(_CONFUSABLES)):
        for m in settings.canary_pattern.finditer(view, max(0, len(view) - settings.longest_canary),
                                                  partial=True, timeout=0.05):
            if m.partial and m.end() == len(view):
                longest = max(longest, m.end() - m.start())
                break
    return longest


def _canary_hold(view: str, off: int, settings: ResponseSettings) -> int:
    """Index of ``view`` (at least ``off``) from which a partial canary may be arriving
    (``len(view)``: none); ``view[:off]`` is released context."""
    if settings.canary_pattern is None or len(view) == off:
        return len(view)
    need = _partial_canary(normalize(view[-4 * settings.longest_canary:]), settings)
    if not need:
        return len(view)
    cut = len(view) - 1
    while cut > off and len(normalize(view[cut:])) < need:
        cut -= 1
    if not view.isascii():
        # a confusable only folds inside a mixed-script word: hold the whole word
        while cut > off and view[cut - 1].isalnum():
            cut -= 1
    return cut


class StreamWindow:
    """One text stream: held-back suffix, and released text kept as context."""

    __slots__ = ("size", "held", "ctx")

    def __init__(self, size: int):
        self.size = size
        self.held = ""
        self.ctx = ""

    def push(self, text: str, settings: ResponseSettings) -> tuple[str, tuple[str, ...]]:
        """(text safe to release now, rule ids hit). On a hit nothing is released."""
        buf = self.held + text
        view = self.ctx + buf
        off = len(self.ctx)
        hits = _hits(view, off, settings, final=False)
        if hits:
            self.held = buf       # the guard drops it (enforce) or flushes it (monitor)
            return "", hits
        cut = _canary_hold(view, off, settings)
        if settings.exfiltration:
            cut = min(cut, scan_markup(view, off, settings.allowed_hosts, final=False)[1])
        cut -= off
        if len(buf) - cut > self.size:
            # Bounded: markup still open at the bound is judged as it stands.
            if settings.exfiltration and scan_markup(view, off, settings.allowed_hosts, final=True)[0]:
                self.held = buf
                return "", (EXFIL_RULE,)
            cut = len(buf) - self.size
        # Never split a combining sequence: cut before a combining mark.
        while 0 < cut < len(buf) and unicodedata.combining(buf[cut]):
            cut -= 1
        out, self.held = buf[:cut], buf[cut:]
        if out:
            self.ctx = (self.ctx + out)[-CONTEXT_CHARS:]
        return out, ()

    def finish(self, settings: ResponseSettings) -> tuple[str, tuple[str, ...]]:
        """The stream ended: judge what is held as a complete answer's end."""
        out, self.held = self.held, ""
        if not out:
            return "", ()
        return out, _hits(self.ctx + out, len(self.ctx), settings, final=True)

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


def locate(text: str, settings: ResponseSettings, rule_id: str) -> tuple[str, str, int, int] | None:
    """Where a whole answer hits ``rule_id``, to show it (``aifw scan``): (view, that view's
    text, start, end), or None. Not used to decide: ``check`` does that."""
    if rule_id == CANARY_RULE and settings.canary_pattern is not None:
        view = normalize(text)
        found = settings.canary_pattern.search(view, timeout=0.05)
        return None if found is None else ("normalized", view, found.start(), found.end())
    if rule_id == EXFIL_RULE:
        for pattern, needs_data in _MARKUP:
            for m in pattern.finditer(text, timeout=0.05):
                if _exfil_url(m.group(1), settings.allowed_hosts, needs_data):
                    return "raw", text, m.start(), m.end()
    return None


def _hits(view: str, off: int, settings: ResponseSettings, final: bool) -> tuple[str, ...]:
    """Rule ids hit by ``view[off:]`` read after the context ``view[:off]``; not ``final``:
    markup not decided yet is left for later."""
    hits = []
    if canary_leak(view, settings):
        hits.append(CANARY_RULE)
    if settings.exfiltration and scan_markup(view, off, settings.allowed_hosts, final)[0]:
        hits.append(EXFIL_RULE)
    return tuple(hits)
