"""Every rule id aifw can report has a one-line description."""
from __future__ import annotations

import pytest

from proxy.detection.rules import DEFAULT_RULES_DIR, RuleError, compile_rule, load_rules
from proxy.ruleinfo import FIXED, describe, rule_messages


def test_every_shipped_rule_has_a_one_line_description():
    messages = rule_messages()
    for rules in load_rules().values():
        for rule in rules:
            text = messages[rule.id]
            assert text.strip() and "\n" not in text and len(text) <= 160, rule.id
            assert describe(rule.id) == text


def test_a_rule_without_a_description_is_refused():
    with pytest.raises(RuleError, match="missing message"):
        compile_rule({"id": "X-1", "severity": 3, "paranoia": 1, "phrases": ["zebra"]}, "t", "f.yaml")


@pytest.mark.parametrize("rule_id, expected", [
    ("ML-9001", FIXED["ML-9001"]),
    ("RS-4002", FIXED["RS-4002"]),
    ("pii.EMAIL_ADDRESS", "Personal data or a secret of type EMAIL_ADDRESS"),
    ("tools.request.denied", FIXED["tools.request.denied"]),
    ("tools.args.no_shell", "The model's tool-call arguments break the policy's rule 'no_shell'"),
    ("ratelimit.requests.per_user", "Request-rate limit 'per_user'"),
    ("ratelimit.spend.monthly", "Spend budget 'monthly'"),
    ("injection.fault", "The injection guard failed on this exchange"),
    ("nobody.knows", "(no description)"),
])
def test_computed_ids_are_described(rule_id, expected):
    assert describe(rule_id) == expected


def test_messages_come_from_the_rules_directory_given(tmp_path):
    (tmp_path / "own.yaml").write_text(
        "set: own\nrules:\n  - id: OWN-1\n    message: |\n      Our own\n      rule\n"
        "    severity: 3\n    paranoia: 1\n    phrases: [zebra]\n")
    assert describe("OWN-1", rule_messages(str(tmp_path))) == "Our own rule"
    assert str(DEFAULT_RULES_DIR).endswith("rules")


def test_block_message_and_monitored_reason_name_each_rule_once():
    from proxy.audit.record import build_record
    from proxy.verdict import Finding, Verdict, block_message
    from tests.audit.helpers import make_exchange
    v = Verdict("injection", "Request blocked.", ("PI-1001", "ML-9001", "PI-1001"))
    assert block_message(v) == "Request blocked. (rules: PI-1001, ML-9001)"
    ex = make_exchange(decision="monitored")
    ex.findings += [Finding("injection", ("PI-1001",), action="would_block"),
                    Finding("injection", ("PI-1001", "RS-4002"), action="would_block", direction="response")]
    assert build_record(ex)["reason"] == "would block: PI-1001, RS-4002"
