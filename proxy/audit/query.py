"""Filters and aggregates over audit records for ``search``, ``stats`` and ``report``."""
from __future__ import annotations

import calendar
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..identity import caller_label
from .units import parse_duration

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?(?:\.\d+)?Z?$")


def parse_when(text: str, now: float | None = None) -> str:
    """An ISO date/time (UTC) or a duration ago ("2h", "7d") -> a record time string prefix
    that compares correctly with record ``time`` strings."""
    m = _ISO.match(text.strip())
    if m:
        date, hh, mm, ss = m.groups()
        return f"{date}T{hh or '00'}:{mm or '00'}:{ss or '00'}.000Z"
    try:
        ago = parse_duration(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 2025-01-31, 2025-01-31T12:00 or 2h)") from None
    wall = (time.time() if now is None else now) - ago
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(wall))


def record_rules(rec: dict) -> list[str]:
    rules: list[str] = []
    for f in rec.get("findings") or ():
        for r in f.get("rules") or ():
            if r not in rules:
                rules.append(r)
    return rules


# records keep keys sorted; a reader wants the subject first
_DETAIL_ORDER = {"tool": 0, "path": 1, "hook": 2, "reason": 3}


def finding_details(rec: dict, rule: str | None = None) -> list[tuple[str, str, str]]:
    """(rules, action, detail) of the findings that name what they are about (a tool and its
    argument path, a hook), e.g. ("tools.args.fetch-hosts", "blocked", "tool=fetch_url
    path=$.url"); only those with ``rule`` when given."""
    out = []
    for f in rec.get("findings") or ():
        detail = f.get("detail")
        rules = f.get("rules") or ()
        if detail and (rule is None or rule in rules):
            keys = sorted(detail, key=lambda k: (_DETAIL_ORDER.get(k, len(_DETAIL_ORDER)), k))
            out.append((",".join(rules), str(f.get("action")), " ".join(f"{k}={detail[k]}" for k in keys)))
    return out


def blocking_rules(rec: dict) -> list[str]:
    verdict = rec.get("verdict") or {}
    rules = list(verdict.get("rules") or ())
    if not rules and verdict:
        rules = [f"{verdict.get('guard')} (no rule id)"]
    return rules


UNIDENTIFIED = "(unidentified)"


def record_caller(rec: dict) -> str:
    """The record's ``caller``; for records written before the field existed, the same string
    built from ``key``, ``key_name`` and ``user``."""
    return rec.get("caller") or caller_label(rec.get("key"), rec.get("key_name"), rec.get("user")) \
        or UNIDENTIFIED


# Blocks that enforce a quota, not security: rate limits, token and spend budgets.
REFUSAL_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota"})


def is_refusal(rec: dict) -> bool:
    """A block by a rate limit or a budget (429s and the limiter's own cut-offs), which a
    security review counts apart from the blocks of the security guards."""
    verdict = rec.get("verdict") or {}
    return verdict.get("guard") == "ratelimit" or verdict.get("code") in REFUSAL_CODES


def would_block_rules(rec: dict) -> list[str]:
    """Rules a guard in monitor mode would have blocked on."""
    return list(dict.fromkeys(r for f in rec.get("findings") or () if f.get("action") == "would_block"
                              for r in f.get("rules") or ()))


@dataclass
class PolicySeen:
    """One policy version (name and digest) in force over part of the period."""
    name: str | None
    digest: str | None
    first: str
    last: str
    records: int = 0


@dataclass(frozen=True)
class Filter:
    since: str | None = None
    until: str | None = None
    user: str | None = None
    key: str | None = None
    caller: str | None = None
    decision: str | None = None
    rule: str | None = None
    model: str | None = None

    def __call__(self, rec: dict) -> bool:
        t = rec.get("time") or ""
        if self.since and t < self.since:
            return False
        if self.until and t >= self.until:
            return False
        if self.user is not None and rec.get("user") != self.user:
            return False
        if self.key is not None and not (rec.get("key") == self.key or rec.get("key_name") == self.key):
            return False
        if self.caller is not None and record_caller(rec) != self.caller:
            return False
        if self.decision is not None and rec.get("decision") != self.decision:
            return False
        if self.model is not None and rec.get("model") != self.model:
            return False
        if self.rule is not None and self.rule not in record_rules(rec) + blocking_rules(rec):
            return False
        return True


def select(records: Iterable[dict], flt: Filter) -> Iterator[dict]:
    return (r for r in records if flt(r))


def _tokens(rec: dict) -> tuple[int, int]:
    t = rec.get("tokens") or {}
    return int(t.get("prompt") or 0), int(t.get("completion") or 0)


@dataclass
class Stats:
    total: int = 0
    first: str | None = None
    last: str | None = None
    decisions: Counter = field(default_factory=Counter)
    rules: Counter = field(default_factory=Counter)            # rules that blocked
    security_rules: Counter = field(default_factory=Counter)   # ... apart from refusals
    refusal_rules: Counter = field(default_factory=Counter)    # rate-limit and quota refusals
    monitored_rules: Counter = field(default_factory=Counter)  # would have blocked (monitor mode)
    refusals: int = 0
    findings: Counter = field(default_factory=Counter)         # every rule seen in findings
    users: Counter = field(default_factory=Counter)
    callers: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_by_user: Counter = field(default_factory=Counter)
    tokens_by_caller: Counter = field(default_factory=Counter)
    tokens_by_model: Counter = field(default_factory=Counter)
    uninspected: int = 0
    spend: float = 0.0                                          # USD
    unpriced: int = 0                                           # answered, but cost unknown
    spend_by_user: Counter = field(default_factory=Counter)
    spend_by_caller: Counter = field(default_factory=Counter)
    spend_by_key: Counter = field(default_factory=Counter)
    spend_by_group: Counter = field(default_factory=Counter)   # a record counts for each of its groups
    spend_by_model: Counter = field(default_factory=Counter)
    policies: dict = field(default_factory=dict)                # (name, digest) -> PolicySeen

    def add(self, rec: dict) -> None:
        self.total += 1
        t = rec.get("time") or ""
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t
        decision = rec.get("decision") or "unknown"
        self.decisions[decision] += 1
        user = rec.get("user") or "(none)"
        model = rec.get("model") or "(none)"
        caller = record_caller(rec)
        self.users[user] += 1
        self.callers[caller] += 1
        self.models[model] += 1
        self.statuses[str(rec.get("status"))] += 1
        if decision == "blocked":
            blocking = blocking_rules(rec)
            self.rules.update(blocking)
            if is_refusal(rec):
                self.refusals += 1
                self.refusal_rules.update(blocking)
            else:
                self.security_rules.update(blocking)
        self.monitored_rules.update(would_block_rules(rec))
        self._add_policy(rec, t)
        self.findings.update(record_rules(rec))
        p, c = _tokens(rec)
        self.prompt_tokens += p
        self.completion_tokens += c
        self.tokens_by_user[user] += p + c
        self.tokens_by_caller[caller] += p + c
        self.tokens_by_model[model] += p + c
        if rec.get("uninspected"):
            self.uninspected += 1
        self._add_spend(rec, user, caller, model)

    @property
    def security_blocks(self) -> int:
        return self.decisions["blocked"] - self.refusals

    def _add_policy(self, rec: dict, t: str) -> None:
        pol = rec.get("policy") or {}
        key = (pol.get("name"), pol.get("digest"))
        seen = self.policies.get(key)
        if seen is None:
            seen = self.policies[key] = PolicySeen(key[0], key[1], t, t)
        seen.first, seen.last = min(seen.first, t), max(seen.last, t)
        seen.records += 1

    def _add_spend(self, rec: dict, user: str, caller: str, model: str) -> None:
        cost = rec.get("cost")
        if cost is None:
            if "cost" in rec and (rec.get("tokens") or {}).get("completion") is not None:
                self.unpriced += 1
            return
        if not cost:
            return
        self.spend += cost
        self.spend_by_user[user] += cost
        self.spend_by_caller[caller] += cost
        self.spend_by_key[rec.get("key_name") or rec.get("key") or "(none)"] += cost
        for group in rec.get("groups") or ("(none)",):
            self.spend_by_group[group] += cost
        self.spend_by_model[model] += cost

    def as_dict(self) -> dict:
        return {"total": self.total, "first": self.first, "last": self.last,
                "decisions": dict(self.decisions.most_common()),
                "blocking_rules": dict(self.rules.most_common()),
                "security_blocks": self.security_blocks, "refusals": self.refusals,
                "refusal_rules": dict(self.refusal_rules.most_common()),
                "monitored_rules": dict(self.monitored_rules.most_common()),
                "policies": [vars(p) for p in sorted(self.policies.values(), key=lambda p: p.first)],
                "finding_rules": dict(self.findings.most_common()),
                "users": dict(self.users.most_common()),
                "callers": dict(self.callers.most_common()), "models": dict(self.models.most_common()),
                "statuses": dict(self.statuses.most_common()),
                "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens,
                           "by_user": dict(self.tokens_by_user.most_common()),
                           "by_caller": dict(self.tokens_by_caller.most_common()),
                           "by_model": dict(self.tokens_by_model.most_common())},
                "uninspected": self.uninspected,
                "spend": {"usd": round(self.spend, 6), "unpriced_records": self.unpriced,
                          **{f"by_{name}": {k: round(v, 6) for k, v in counter.most_common()}
                             for name, counter in self.spend_counters()}}}

    def spend_counters(self) -> tuple[tuple[str, Counter], ...]:
        return (("caller", self.spend_by_caller), ("user", self.spend_by_user), ("key", self.spend_by_key),
                ("group", self.spend_by_group), ("model", self.spend_by_model))


def compute_stats(records: Iterable[dict]) -> Stats:
    stats = Stats()
    for rec in records:
        stats.add(rec)
    return stats


def to_epoch(iso: str) -> float:
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
