"""A rule's matching aids (ruleaids.py): `aifw policy check` does not build them, a policy compiled
to serve has every one built before it is used, and a rule scanned before its aids exist builds
them then, with the same answers."""
from __future__ import annotations

from pathlib import Path

import pytest

from proxy.detection import matcher, plans, prefilter, ruleaids
from proxy.detection.normalize import Prepared
from proxy.policy.compile import compile_policy
from proxy.services import Services

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
ENV = {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"}


@pytest.fixture
def no_aids(monkeypatch):
    monkeypatch.setenv("AIFW_CACHE_DIR", "off")
    monkeypatch.setattr(ruleaids, "_AIDS", {})
    monkeypatch.setattr(plans, "_PLANS", {})
    return ruleaids._AIDS


def _injection_rules(policy):
    (guard,) = [g for g in policy.base.guards if g.name == "injection"]
    return [r for r in guard.settings.detector.rules if r.regexes]


def test_policy_check_builds_no_aids(no_aids):
    compile_policy(POLICY, Services(), ENV, check=True)
    assert no_aids == {}


@pytest.mark.parametrize("how", ["serve", "check --prepare"])
def test_a_policy_compiled_to_serve_has_every_aid(no_aids, how):
    policy = compile_policy(POLICY, Services(), ENV, check=how != "serve", prepare=how != "serve")
    rules = _injection_rules(policy)
    assert rules and all(no_aids.get(id(r), (None,))[0] is r for r in rules)


def test_lazily_built_aids_equal_the_prepared_ones(no_aids):
    policy = compile_policy(POLICY, Services(), ENV, check=True)
    rules = _injection_rules(policy)
    lazy = [ruleaids.aids(r) for r in rules]
    built = [ruleaids.build(r) for r in rules]
    for a, b in zip(lazy, built):
        assert [p and p.anchors for p in a.prefilters] == [p and p.anchors for p in b.prefilters]
        assert [x is None for x in a.lexicons] == [x is None for x in b.lexicons]
    for rule in rules:
        for case in rule.match_cases:
            assert matcher.rule_matches(rule, Prepared(case)), (rule.id, case)


@pytest.mark.parametrize("source, leads", [
    (r"\b(?:you are|as an?)\b[^.]{0,9}\bwriter\b", {"\x01you are", "\x01as a", "\x01as an"}),
    (r"(?:\bstory\b|\bnovel\w*)", {"\x01story", "\x01novel"}),
    (r"(?:sure,? )+here", {"sure ", "sure, "}),
    (r"(?:a\s+)?b\w+", {"a b", "b"}),       # an optional part: with it or without it
    (r"\w+ing", None),                      # no literal at the start
    (r"(?:x|\d)y", None),                   # one branch starts with none
])
def test_the_literals_every_match_starts_with(source, leads):
    assert prefilter.pattern_leads(source, spaced=True) == leads
