"""What the client got, settled once when an exchange completes.

Several places decide on their own (a guard blocks, an upstream fails mid-stream, a part goes
uninspected, the client goes away); the audit record and the metrics must not read a decision
that one of them left stale. ``settle`` derives ``decision`` from the facts on the exchange, in
this order, and the status stays the one the client saw (a stream cut after its first byte was
a 200 to the client):

1. ``blocked``: a guard blocked (a verdict, or a ``blocked`` finding, e.g. text blanked in a
   stream's final flush); whatever else happened, the client did not get that content;
2. ``bypassed``: something went uninspected (``uninspected`` non-empty), as docs/audit.md says;
3. ``error``: aifw or the upstream failed the exchange, including a 200 whose stream ended in
   an error event or was cut by a bug, and a client that went away;
4. ``monitored``: a guard in monitor mode would have blocked;
5. ``masked``: PII was masked on the way;
6. ``allowed``.
"""
from __future__ import annotations

from typing import Any


def final_decision(ex: Any) -> str:
    findings = ex.findings
    if not findings:   # the usual exchange: the same order, without three generator scans
        decision = ex.decision
        if decision == "blocked":
            return "blocked"
        if ex.uninspected:
            return "bypassed"
        if ex.error or decision == "error":
            return "error"
        return "monitored" if decision == "monitored" else "allowed"
    if ex.decision == "blocked" or any(f.action == "blocked" for f in findings):
        return "blocked"
    if ex.uninspected:
        return "bypassed"
    if ex.error or ex.decision == "error":
        return "error"
    if ex.decision == "monitored" or any(f.action == "would_block" for f in findings):
        return "monitored"
    if any(f.action == "masked" for f in findings):
        return "masked"
    return "allowed"


def settle(ex: Any) -> None:
    ex.decision = final_decision(ex)
