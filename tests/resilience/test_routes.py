"""Route compilation: ordered upstreams, renames, dialect and key checks, defaults."""
from __future__ import annotations

import yaml

from proxy.policy.compile import check_files, compile_policy
from proxy.resilience.config import RetryPolicy

BASE = {"version": 1, "upstreams": {
    "oa": {"provider": "openai", "baseUrl": "https://api.openai.com/v1"},
    "oa2": {"provider": "openai", "baseUrl": "https://eu.api.openai.com/v1"},
    "ant": {"provider": "anthropic", "baseUrl": "https://api.anthropic.com"}}}


def write(tmp_path, **extra) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**BASE, **extra}, sort_keys=False))
    return str(path)


def test_ordered_targets_renames_and_retry_over_defaults(tmp_path):
    policy = compile_policy(write(tmp_path, resilience={"retry": {"attempts": 4, "deadline": "20s"}}, routes=[
        {"models": ["gpt-*"], "upstreams": ["oa", {"upstream": "oa2", "model": "llama-3"}],
         "retry": {"attempts": 2}},
        {"models": ["claude-*"], "upstream": "ant"}]))
    route = policy.route("gpt-4o", "openai")
    assert [(t.upstream.name, t.model) for t in route.targets] == [("oa", None), ("oa2", "llama-3")]
    assert route.retry.attempts == 2 and route.retry.deadline == 20.0
    assert policy.route("claude-3", "anthropic").retry == RetryPolicy(attempts=4, deadline=20.0)
    assert policy.route("claude-3", "openai") is None
    assert policy.route(None, "anthropic").targets[0].upstream.name == "ant"


def test_route_problems_are_reported_with_their_path(tmp_path):
    problems = check_files([write(tmp_path, routes=[
        {"models": ["a"], "upstreams": ["oa", "nowhere"]},
        {"models": ["b"], "upstreams": ["oa", "ant"]},
        {"models": ["c"], "upstream": "oa", "upstreams": ["oa"]},
        {"models": ["d"]}])])
    text = "\n".join(p.message for p in problems)
    assert "unknown upstream 'nowhere'" in text
    assert "speaks anthropic" in text
    assert text.count("either upstream or upstreams") == 2
