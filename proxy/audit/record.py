"""Build one audit record (a plain dict) from a finished Exchange.

The record never holds headers, so provider keys, proxy keys and Authorization headers cannot
reach it; the identity appears only as the key fingerprint. Text appears only at the levels
``redacted`` and ``full``.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable

RECORD_VERSION = 1

# Error strings come from upstream libraries and may echo a credential back: scrub the shapes
# that credentials take before the string is stored.
_SECRETISH = re.compile(
    r"(?i)(bearer\s+|api[-_]?key[\"'=:\s]+|x-api-key[\"'=:\s]+)[^\s\"',;]+"
    r"|\b(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|aifw[-_][A-Za-z0-9_\-]{8,})"
)


def scrub_secrets(text: str) -> str:
    return _SECRETISH.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def iso_time(wall: float) -> str:
    """UTC, millisecond precision, sortable as a string."""
    secs = int(wall)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int((wall - secs) * 1000):03d}Z"


def effective_level(ex: Any, default: str) -> str:
    scope = getattr(ex, "scope", None)
    overrides = getattr(scope, "overrides", None) if scope is not None else None
    if overrides:
        level = (overrides.get("audit") or {}).get("level")
        if level:
            return level
    return default


def _r(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


def _reason(ex: Any) -> str | None:
    if ex.verdict is not None:
        return ex.verdict.message
    if ex.decision == "monitored":
        rules = [r for f in ex.findings if f.action == "would_block" for r in f.rule_ids]
        return "would block: " + ", ".join(rules) if rules else "would block"
    if ex.decision == "bypassed" and ex.uninspected:
        return "; ".join(ex.uninspected)
    if ex.error:
        return scrub_secrets(ex.error)
    return None


def _upstream_seconds(ex: Any) -> float | None:
    total = 0.0
    seen = False
    for name, start, end in ex.spans:
        if name == "upstream" or name.startswith("upstream"):
            total += end - start
            seen = True
    if seen:
        return total
    if ex.upstream_started is not None and ex.finished is not None:
        return ex.finished - ex.upstream_started
    return None


def _content(ex: Any, level: str, redactor: Callable[[Any, str], str] | None) -> dict:
    request = [{"role": s.role, "kind": s.kind, "index": s.index, "text": s.text}
               for s in ex.request_slots]
    if ex.stream:
        texts = [(0, "".join(ex.response_text))] if ex.response_text else []
    else:
        texts = [(s.index, s.text) for s in ex.response_slots]
    if level == "redacted" and redactor is not None:
        texts = [(i, redactor(ex, t)) for i, t in texts]
    return {"request": request, "response": [{"index": i, "text": t} for i, t in texts]}


def build_record(ex: Any, level: str = "metadata",
                 redactor: Callable[[Any, str], str] | None = None) -> dict:
    """The audit record of ``ex`` without chain fields (seq, prev, hash: the writer adds them)."""
    ident = ex.identity
    policy = ex.policy
    finished = ex.finished if ex.finished is not None else time.monotonic()
    verdict = ex.verdict
    rec: dict[str, Any] = {
        "v": RECORD_VERSION,
        "t": "request",
        "time": iso_time(ex.started_wall),
        "id": ex.request_id,
        "level": level,
        "user": ident.user if ident else None,
        "key": ident.key_id if ident else None,
        "key_name": ident.key_name if ident else None,
        "groups": list(ident.groups) if ident else [],
        "client": ex.client_ip,
        "endpoint": getattr(ex.endpoint, "name", ex.endpoint),
        "model": ex.model,
        "upstream": getattr(ex.upstream, "name", ex.upstream),
        "stream": bool(ex.stream),
        "status": ex.status,
        "decision": ex.decision,
        "reason": _reason(ex),
        "verdict": None if verdict is None else {
            "guard": verdict.guard, "code": verdict.code, "status": verdict.status,
            "rules": list(verdict.rule_ids)},
        "findings": [{"guard": f.guard, "rules": list(f.rule_ids), "score": f.score,
                      "action": f.action, "direction": f.direction, "counts": {str(k): v for k, v in f.counts.items()}}
                     for f in ex.findings],
        "tokens": {"reserved": ex.usage.reserved_tokens, "prompt": ex.usage.prompt_tokens,
                   "completion": ex.usage.completion_tokens},
        "latency": {"total": _r(finished - ex.started), "upstream": _r(_upstream_seconds(ex)),
                    "ttfb": _r(None if ex.upstream_first_byte is None
                               else ex.upstream_first_byte - ex.started),
                    "guards": {k: _r(v) for k, v in ex.guard_seconds.items()}},
        "policy": {"name": getattr(policy, "name", None), "digest": getattr(policy, "digest", None)},
        "scope": getattr(ex.scope, "name", None),
        "uninspected": list(ex.uninspected),
        "error": scrub_secrets(ex.error) if ex.error else None,
    }
    if level != "metadata":
        rec["content"] = _content(ex, level, redactor)
    return rec
