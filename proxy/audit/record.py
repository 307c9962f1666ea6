"""Build one audit record (a plain dict) from a finished Exchange.

The record never holds headers, so provider keys, proxy keys and Authorization headers cannot
reach it; the identity appears only as the key fingerprint (or virtual key id), and ``caller``
names the key and the end user in one string. Text appears only at the levels
``redacted`` and ``full``.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable

from ..bounded import MAX_FIELD, cap
from ..durations import NOT_COMPUTED, upstream_seconds
from ..identity import caller_label
from .chain import SLOT, prepare_record

RECORD_VERSION = 1

# Error strings come from upstream libraries and may echo a credential back: scrub the shapes
# that credentials take before the string is stored.
_SECRETISH = re.compile(
    r"(?i)(bearer\s+|api[-_]?key[\"'=:\s]+|x-api-key[\"'=:\s]+)[^\s\"',;]+"
    r"|\b(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|aifw[-_][A-Za-z0-9_\-]{8,})"
)


def scrub_secrets(text: str) -> str:
    return _SECRETISH.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def _millis(ms: int) -> str:
    return f".{ms:03d}Z"


# ".000Z" ... ".999Z", formatted once instead of once per record
_MILLIS = tuple(_millis(ms) for ms in range(1000))
# (second, its strftime prefix): one object, so a thread never pairs one second with another's
# prefix (the loop builds records, the writer thread its open and checkpoint entries)
_iso_cached = (None, "")


def iso_time(wall: float) -> str:
    """UTC, millisecond precision, sortable as a string."""
    global _iso_cached
    secs = int(wall)
    cached_secs, prefix = _iso_cached
    if secs != cached_secs:        # the strftime prefix changes once a second: cache it
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _iso_cached = (secs, prefix)
    ms = int((wall - secs) * 1000)
    if 0 <= ms < 1000:
        return prefix + _MILLIS[ms]
    return prefix + _millis(ms)


def effective_level(ex: Any, default: str) -> str:
    scope = getattr(ex, "scope", None)
    overrides = getattr(scope, "overrides", None) if scope is not None else None
    if overrides:
        level = (overrides.get("audit") or {}).get("level")
        if level:
            return level
    return default


def _reason(ex: Any) -> str | None:
    if ex.verdict is not None:
        return cap(ex.verdict.message)
    if ex.decision == "monitored":
        rules = list(dict.fromkeys(r for f in ex.findings if f.action == "would_block" for r in f.rule_ids))
        return cap("would block: " + ", ".join(rules) if rules else "would block")
    if ex.decision == "bypassed" and ex.uninspected:
        return cap("; ".join(ex.uninspected))
    if ex.error:
        return cap(scrub_secrets(ex.error))
    return None


def _content(ex: Any, level: str, redactor: Callable[[Any, str], str] | None) -> dict:
    request = [{"index": s.index, "kind": s.kind, "role": s.role, "text": s.text}
               for s in ex.request_slots]
    redact = redactor if level == "redacted" else None
    if ex.stream:
        text = "".join(ex.response_text) if ex.response_text else None
        response = [] if text is None else [
            {"index": 0, "text": text if redact is None else redact(ex, text)}]
    elif redact is None:
        response = [{"index": s.index, "text": s.text} for s in ex.response_slots]
    else:
        response = [{"index": s.index, "text": redact(ex, s.text)} for s in ex.response_slots]
    return {"request": request, "response": response}


# Every field of a record in sorted order, the constant ones filled in, the chain's held by
# chain.SLOT. A copy has room for all of them, so filling it in costs less than a dict display
# of ~30 keys, which Python builds one key at a time, growing the dict four times on the way
# (~6 k instructions); and orjson sorts keys that are in order already in less time (the dicts
# built here are written in sorted order: ~6 k instructions less for an every-guard record).
_WITH_CONTENT = {**dict.fromkeys((
    "attempts", "caller", "client", "content", "cost", "decision", "endpoint", "error", "findings",
    "groups", "id", "key", "key_name", "latency", "level", "model", "policy", "prev", "reason",
    "scope", "seq", "status", "stream", "t", "time", "tokens", "uninspected", "upstream", "user",
    "v", "verdict")), "prev": SLOT, "seq": SLOT, "t": "request", "v": RECORD_VERSION}
_METADATA = {k: v for k, v in _WITH_CONTENT.items() if k != "content"}


def build_record(ex: Any, level: str = "metadata",
                 redactor: Callable[[Any, str], str] | None = None, *,
                 upstream: Any = NOT_COMPUTED) -> dict:
    """The audit record of ``ex`` without chain fields (seq, prev, hash: the writer adds them)."""
    record = _record(ex, level, redactor, upstream)
    del record["prev"], record["seq"]
    return record


def prepared_record(ex: Any, level: str = "metadata",
                    redactor: Callable[[Any, str], str] | None = None, *,
                    upstream: Any = NOT_COMPUTED) -> bytes | dict:
    """What ``AuditLog.submit`` queues: the record serialised by ``chain.prepare_record``, or,
    when it cannot be serialised, the record dict (the writer counts it as lost)."""
    record = _record(ex, level, redactor, upstream)
    try:
        return prepare_record(record)
    except TypeError:
        del record["prev"], record["seq"]
        return record


def _record(ex: Any, level: str, redactor: Callable[[Any, str], str] | None, upstream: Any) -> dict:
    """The record with ``prev`` and ``seq`` holding ``chain.SLOT``.

    Built once per exchange on the event loop, in one dict: the common case (one attempt, no
    finding, nothing to cap) runs without a helper call per field; ``cap`` runs only on a string
    that is long. ``upstream``: ``upstream_seconds(ex)`` when the caller has it (the metrics need
    it too), else NOT_COMPUTED."""
    ident = ex.identity
    policy = ex.policy
    started = ex.started
    finished = ex.finished if ex.finished is not None else time.monotonic()
    verdict = ex.verdict
    first_byte = ex.upstream_first_byte
    upstream_s = upstream_seconds(ex) if upstream is NOT_COMPUTED else upstream
    usage = ex.usage
    error = ex.error
    endpoint = ex.endpoint
    upstream = ex.upstream
    if ident is not None:
        # the user may be asserted by the client (x-aifw-user, the body's user field): bounded
        user, key, key_name = ident.user, ident.key_id, ident.key_name
        if type(user) is str and len(user) > MAX_FIELD:
            user = cap(user)
        if type(key_name) is str and len(key_name) > MAX_FIELD:
            key_name = cap(key_name)
        groups = [cap(g) for g in ident.groups[:32]] if ident.groups else []
        if key_name or user or not ident.verified:
            caller = caller_label(key, key_name, user, ident.verified)
        else:
            caller = key or None
    else:
        user = key = key_name = caller = None
        groups = []
    attempts = []
    for a in ex.attempts:
        rec = a.as_record()
        model = rec.get("model")
        if type(model) is str and len(model) > MAX_FIELD:   # the client's model name, once per attempt
            rec["model"] = cap(model)
        attempts.append(rec)
    findings = []
    for f in ex.findings:    # loops, not a helper per finding nor comprehensions: each costs a call
        counts = {}
        for k, v in f.counts.items():
            counts[str(k)] = v
        rec = {"action": f.action, "counts": counts, "direction": f.direction, "guard": f.guard,
               "rules": list(f.rule_ids), "score": f.score}
        if f.detail:      # only decisions about something named (a tool, an argument path, a hook)
            detail = rec["detail"] = {}
            for k, v in f.detail.items():
                detail[str(k)] = cap(v)
        findings.append(rec)
    guards = {}
    for k, v in ex.guard_seconds.items():
        guards[k] = round(v * 1e6) / 1e6       # durations.micros written out, as below
    client = ex.client_ip
    if type(client) is str and len(client) > 64:
        client = cap(client, 64)
    model = ex.model
    if type(model) is str and len(model) > MAX_FIELD:
        model = cap(model)
    decision = ex.decision
    record = _METADATA.copy() if level == "metadata" else _WITH_CONTENT.copy()
    record["attempts"] = attempts
    record["caller"] = caller
    record["client"] = client
    if level != "metadata":
        record["content"] = _content(ex, level, redactor)
    record["cost"] = ex.cost
    record["decision"] = decision
    record["endpoint"] = getattr(endpoint, "name", endpoint)
    record["error"] = cap(scrub_secrets(error)) if error else None
    record["findings"] = findings
    record["groups"] = groups
    record["id"] = ex.request_id
    record["key"] = key
    record["key_name"] = key_name
    # durations.micros written out (the same expression): a call per duration cost more
    record["latency"] = {
        "guards": guards,
        "total": round((finished - started) * 1e6) / 1e6,
        "ttfb": None if first_byte is None else round((first_byte - started) * 1e6) / 1e6,
        "upstream": None if upstream_s is None else round(upstream_s * 1e6) / 1e6}
    record["level"] = level
    record["model"] = model
    record["policy"] = {"digest": getattr(policy, "digest", None), "name": getattr(policy, "name", None)}
    record["reason"] = _reason(ex) if (verdict is not None or error or decision == "monitored"
                                       or decision == "bypassed") else None
    record["scope"] = getattr(ex.scope, "name", None)
    record["status"] = ex.status
    record["stream"] = bool(ex.stream)
    record["time"] = iso_time(ex.started_wall)
    record["tokens"] = {"completion": usage.completion_tokens, "prompt": usage.prompt_tokens,
                        "reserved": usage.reserved_tokens}
    record["uninspected"] = [cap(u) for u in ex.uninspected] if ex.uninspected else []
    record["upstream"] = getattr(upstream, "name", upstream)
    record["user"] = user
    record["verdict"] = None if verdict is None else {
        "code": verdict.code, "guard": verdict.guard, "rules": list(verdict.rule_ids),
        "status": verdict.status}
    return record
