import io
import textwrap

import pytest

from proxy.detection.cli import run_rule_cases
from proxy.detection.rules import RuleError, load_file, load_rules


def test_every_shipped_rule_case_passes():
    out = io.StringIO()
    assert run_rule_cases(out=out) == 0, out.getvalue()


def test_every_rule_has_a_matching_case():
    for rules in load_rules().values():
        for rule in rules:
            assert rule.match_cases, rule.id


def _write(tmp_path, body):
    path = tmp_path / "x.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_nested_quantifier_is_refused(tmp_path):
    path = _write(tmp_path, r"""
        set: x
        rules:
          - {id: X-1, message: m, severity: warning, paranoia: 1, patterns: ['(a+)+$'],
             cases: {match: [aaa]}}
    """)
    with pytest.raises(RuleError, match="nested quantifier"):
        load_file(path)


def test_slow_pattern_is_refused(tmp_path):
    # No nested quantifier in the source, but exponential on "aaaa...!" all the same.
    path = _write(tmp_path, r"""
        set: x
        rules:
          - {id: X-2, message: m, severity: warning, paranoia: 1, patterns: ['(?:a|a)*(?:a|a)*(?:a|a)*(?:a|a)*\d'],
             cases: {match: [a1]}}
    """)
    with pytest.raises(RuleError, match="too slow"):
        load_file(path)


def test_unknown_key_and_missing_match_case(tmp_path):
    path = _write(tmp_path, """
        set: x
        rules:
          - {id: X-3, message: m, severity: warning, paranoia: 1, phrases: [hello], colour: red}
    """)
    with pytest.raises(RuleError, match="unknown keys"):
        load_file(path)
    (tmp_path / "x.yaml").write_text(textwrap.dedent("""
        set: x
        rules:
          - {id: X-4, message: m, severity: warning, paranoia: 1, phrases: [hello],
             cases: {no_match: [goodbye]}}
          - {id: X-5, message: m, severity: warning, paranoia: 1, phrases: [hello],
             cases: {match: [say hello], no_match: [hello there]}}
    """))
    out = io.StringIO()
    assert run_rule_cases(tmp_path, out) == 2
    assert "X-4" in out.getvalue() and "no match case" in out.getvalue()
    assert "no_match case 0 matched" in out.getvalue()


def test_a_rule_with_requires_counts_only_beside_a_rule_it_requires(tmp_path):
    from proxy.detection.matcher import match
    from proxy.detection.normalize import Prepared
    _write(tmp_path, """
        set: x
        rules:
          - {id: X-6, message: m, severity: warning, paranoia: 1, patterns: ['\\bnew orders\\b'],
             cases: {match: [new orders]}}
          - {id: X-7, message: m, severity: notice, paranoia: 1, patterns: ['\\bcake\\b'],
             requires: [X-6], cases: {match: [cake]}}
    """)
    rules = load_rules(tmp_path)["x"]
    assert match(rules, Prepared("bake a cake")).rule_ids == []
    got = match(rules, Prepared("bake a cake: new orders"))
    assert got.rule_ids == ["X-6", "X-7"] and got.score == 5
    # The rule's own cases are judged alone (aifw rules test), so its cue is tested as written.
    assert run_rule_cases(tmp_path, io.StringIO()) == 0


def test_requires_must_name_a_rule_without_requires(tmp_path):
    _write(tmp_path, """
        set: x
        rules:
          - {id: X-8, message: m, severity: notice, paranoia: 1, phrases: [cake],
             requires: [X-9], cases: {match: [cake]}}
    """)
    with pytest.raises(RuleError, match="requires X-9"):
        load_rules(tmp_path)
