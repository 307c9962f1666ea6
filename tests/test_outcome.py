"""`decision` and `status` say what the client got: every way they could disagree, settled."""
from __future__ import annotations

import pytest

from proxy.outcome import final_decision
from proxy.verdict import Finding, Verdict
from tests.audit.helpers import make_exchange


def exchange(**facts):
    ex = make_exchange(decision="allowed")
    ex.findings = []
    for name, value in facts.items():
        setattr(ex, name, value)
    return ex


MASKED = Finding("pii", ("pii.email",), 1.0, "masked", "request", {"EMAIL": 1})
BLOCKED_IN_FLUSH = Finding("pii", ("pii.email",), 1.0, "blocked", "response")
WOULD = Finding("injection", ("PI-1001",), 7.0, "would_block", "request")
VERDICT = Verdict("injection", "blocked", ("PI-1001",))


@pytest.mark.parametrize("facts, decision", [
    ({}, "allowed"),
    ({"findings": [MASKED]}, "masked"),
    ({"findings": [WOULD], "decision": "monitored"}, "monitored"),
    ({"findings": [WOULD]}, "monitored"),
    # something went uninspected: bypassed, whatever else (docs/audit.md), unless blocked
    ({"uninspected": ["response not inspectable"]}, "bypassed"),
    ({"uninspected": ["stream encoding not decodable"], "stream": True}, "bypassed"),
    ({"uninspected": ["ratelimit: limit store unreachable, per-process fallback limits"]}, "bypassed"),
    ({"uninspected": ["pii.on_response: RuntimeError"], "findings": [MASKED]}, "bypassed"),
    ({"uninspected": ["x"], "findings": [WOULD], "decision": "monitored"}, "bypassed"),
    ({"uninspected": ["x"], "error": "upstream_error"}, "bypassed"),
    # blocks win, before or after the first byte (the status stays the one the client saw)
    ({"verdict": VERDICT, "decision": "blocked", "status": 400}, "blocked"),
    ({"verdict": VERDICT, "decision": "blocked", "status": 200, "streamed": True}, "blocked"),
    ({"findings": [BLOCKED_IN_FLUSH], "status": 200, "streamed": True}, "blocked"),
    ({"verdict": VERDICT, "decision": "blocked", "uninspected": ["injection.on_request: E"]}, "blocked"),
    # a 200 whose stream ended in an error event, was cut by a bug, or lost its client
    ({"status": 200, "streamed": True, "error": "upstream_error"}, "error"),
    ({"status": 200, "streamed": True, "error": "internal_error"}, "error"),
    ({"status": 200, "streamed": True, "error": "client_disconnected", "findings": [MASKED]}, "error"),
    ({"status": 502, "error": "upstream_error", "decision": "error"}, "error"),
    ({"status": 502, "error": "upstream_error", "findings": [WOULD], "decision": "monitored"}, "error"),
])
def test_final_decision(facts, decision):
    ex = exchange(**facts)
    status = ex.status
    assert final_decision(ex) == decision
    assert ex.status == status          # the status is never rewritten after the fact


def test_an_exchange_without_findings_settles_as_the_general_rules_say():
    """final_decision answers an exchange without findings on a short path: every combination
    of the other facts must settle as the general rules settle it (a finding that decides
    nothing sends the same facts down the general path)."""
    import itertools
    neutral = Finding("access", ("x",), 0.0, "observed", "request")
    decisions = ("allowed", "blocked", "masked", "monitored", "bypassed", "error")
    for decision, uninspected, error in itertools.product(decisions, ([], ["x"]), (None, "upstream_error")):
        short = exchange(decision=decision, uninspected=list(uninspected), error=error)
        general = exchange(decision=decision, uninspected=list(uninspected), error=error, findings=[neutral])
        assert final_decision(short) == final_decision(general), (decision, uninspected, error)
