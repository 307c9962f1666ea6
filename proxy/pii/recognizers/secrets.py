"""Credentials: provider API keys by their published prefixes, JWTs, PEM private keys,
passwords in ``key=value`` form and URL credentials."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Iterable

import orjson
import regex

from ..spans import Span
from .probe import Probe, needles, probe_of

SECRET_ENTITIES = (
    "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN",
    "SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "JWT", "PRIVATE_KEY", "PASSWORD",
)

_B = r"(?<![A-Za-z0-9_\-])"   # token start: not inside a longer identifier
_E = r"(?![A-Za-z0-9_\-])"


@dataclass(frozen=True, slots=True)
class _Rule:
    entity: str
    pattern: "regex.Pattern[str]"
    needles: frozenset[str]   # the pattern cannot match unless one of these is in the text
    group: int = 0            # capture group holding the secret itself (0: whole match)


_RULES = (
    _Rule("AWS_ACCESS_KEY", regex.compile(_B + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}" + _E),
          needles("AKIA", "ASIA", "ABIA", "ACCA", "A3T")),
    _Rule("AWS_SECRET_KEY", regex.compile(
        r"(?i)aws[\w\-. ]{0,20}?secret[\w\-. ]{0,20}?[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
          needles("aws"), 1),
    _Rule("ANTHROPIC_API_KEY", regex.compile(_B + r"sk-ant-[A-Za-z0-9_\-]{20,}"), needles("sk-ant-")),
    _Rule("OPENAI_API_KEY", regex.compile(_B + r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"), needles("sk-")),
    _Rule("GITHUB_TOKEN", regex.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})" + _E),
          needles("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    _Rule("SLACK_TOKEN", regex.compile(
        _B + r"(?:xox[abposr]-[A-Za-z0-9\-]{10,}|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+)"),
          needles("xox", "hooks.slack.com")),
    _Rule("STRIPE_KEY", regex.compile(_B + r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}" + _E), needles("_live_", "_test_")),
    _Rule("STRIPE_KEY", regex.compile(_B + r"whsec_[A-Za-z0-9]{24,}" + _E), needles("whsec_")),
    _Rule("GOOGLE_API_KEY", regex.compile(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E), needles("AIza")),
    # An unterminated key (a truncated paste, a stream cut short) is still a key to the end.
    _Rule("PRIVATE_KEY", regex.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)", regex.S), needles("PRIVATE KEY")),
    _Rule("PASSWORD", regex.compile(
        r"(?i)(?<![\w])(?:password|passwd|passwort|pwd|pass|passphrase|secret|client[_\-]?secret|"
        r"api[_\-]?key|access[_\-]?token|auth[_\-]?token|token)[\"']?[ \t]*(?:=|:)[ \t]*"
        r"(?:\"([^\"\s]{4,})\"|'([^'\s]{4,})'|([^\s,;'\"&<>]{4,}))"),
          needles("pass", "pwd", "secret", "api", "token")),
    _Rule("PASSWORD", regex.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@<>]+:([^\s@/<>]+)@"), needles("://"), 1),
)

_JWT_NEEDLE = needles("eyJ")
# Every rule's needles and the JWT's: most texts hold none, and one test then skips them all.
_ANY_NEEDLE = frozenset().union(_JWT_NEEDLE, *(rule.needles for rule in _RULES))
_JWT = regex.compile(_B + r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}" + _E)


def _jwt_header_ok(token: str) -> bool:
    head = token.split(".", 1)[0]
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _assignments(pattern: "regex.Pattern[str]", text: str) -> Iterable[Span]:
    """``password = value`` and the like. A weak value is skipped and the search goes on from
    it, not after it: in "secret: password = hunter" the weak "password" is itself a keyword."""
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        group = next(i for i in (1, 2, 3) if m.group(i) is not None)
        value = m.group(group)
        # "password: required" is prose; a value with no digit or symbol after a colon is too
        # weak, while "=" is an assignment and always counts.
        if "=" not in m.group()[: m.start(group) - m.start()] and value.isalpha():
            pos = m.start(group)
            continue
        yield Span(m.start(group), m.end(group), "PASSWORD", 0.7)
        pos = m.end()


class SecretRecognizer:
    entities = SECRET_ENTITIES

    def find(self, text: str, probe: Probe | None = None) -> list[Span]:
        out: list[Span] = []
        found = probe_of(text, probe).found
        if found.isdisjoint(_ANY_NEEDLE):
            return out
        for rule in _RULES:
            if found.isdisjoint(rule.needles):
                continue
            if rule.entity == "PASSWORD" and rule.group == 0:
                out += _assignments(rule.pattern, text)
                continue
            for m in rule.pattern.finditer(text):
                out.append(Span(m.start(rule.group), m.end(rule.group), rule.entity, 0.97))
        if found.isdisjoint(_JWT_NEEDLE):
            return out
        for m in _JWT.finditer(text):
            if _jwt_header_ok(m.group()):
                out.append(Span(m.start(), m.end(), "JWT", 0.97))
        return out
