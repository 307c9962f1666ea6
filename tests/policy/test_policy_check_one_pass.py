"""`aifw policy check` reports every problem of a file in one run, each once, where it is."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.policy.compile import PolicyError, check_files, compile_policy

ROOT = Path(__file__).resolve().parents[2]
HEAD = """\
version: 1
upstreams:
  openai: {provider: openai, baseUrl: "http://127.0.0.1:9/v1"}
"""


def check(tmp_path: Path, text: str, env=None, warnings=False) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    problems = sorted(check_files([str(path)], env or {}, warnings=warnings), key=lambda p: p.line)
    return [str(p).replace(f"{path}:", "") for p in problems]


def test_schema_problems_and_unknown_upstreams_in_one_run(tmp_path):
    out = check(tmp_path, HEAD + "mode: monitr\nroutes:\n  - {models: ['*'], upstream: nowhere}\n"
                                 "guards:\n  access: {maxOutputTokens: -1}\n")
    assert out == [
        "4: $.mode: 'monitr' is not one of ['enforce', 'monitor'] (did you mean 'monitor'?)",
        "6: $.routes[0].upstream: unknown upstream 'nowhere'; defined: openai",
        "8: $.guards.access.maxOutputTokens: -1 is less than the minimum of 1",
    ]


def test_enum_did_you_mean_inside_a_guard(tmp_path):
    out = check(tmp_path, HEAD + "guards:\n  ratelimit:\n    backend: memroy\n"
                                 "    limits: [{name: a, scope: user, requests: 10/minute}]\n")
    assert out == ["6: $.guards.ratelimit.backend: 'memroy' is not one of ['memory', 'redis'] "
                   "(did you mean 'memory'?)"]


def test_unknown_rule_ids_in_disabled_rules(tmp_path):
    out = check(tmp_path, HEAD + "guards:\n  injection:\n    disabledRules:\n"
                                 "      - PI-1001\n      - PI-10001\n      - no-such-rule\n")
    assert out == ["8: $.guards.injection.disabledRules[1]: unknown rule id 'PI-10001' (did you mean 'PI-1001'?)",
                   "9: $.guards.injection.disabledRules[2]: unknown rule id 'no-such-rule'"]
    assert check(tmp_path, HEAD + "guards:\n  injection: {disabledRules: [PI-1001]}\n") == []


def test_one_problem_per_unset_variable(tmp_path):
    text = HEAD.replace("http://127.0.0.1:9/v1", "${UP_URL}") + "routes: [{models: ['*'], upstream: openai}]\n"
    assert check(tmp_path, text) == [
        "3: $.upstreams.openai.baseUrl: environment variable UP_URL is not set "
        "(write ${UP_URL:-default} to give a default)"]
    assert check(tmp_path, text, {"UP_URL": "http://h/v1"}) == []


def test_a_scope_is_not_blamed_for_the_policy_s_problem(tmp_path):
    base = HEAD + "guards:\n  injection: {disabledRules: [bogus]}\n  access: {denyModels: [x]}\n"
    scopes = ("scopes:\n"
              "  - {match: {groups: [a]}, guards: {injection: {threshold: 3}}}\n"
              "  - {match: {groups: [b]}, guards: {access: {maxOutputTokens: 5}}}\n"
              "  - {match: {groups: [c]}, guards: {injection: {disabledRules: [PI-1001, bogus2]}}}\n")
    assert check(tmp_path, base + scopes) == [
        "5: $.guards.injection.disabledRules[0]: unknown rule id 'bogus'",
        "10: $.scopes[2].guards.injection.disabledRules[1]: unknown rule id 'bogus2'"]
    # a guard that fails to compile as a whole: said once, at the policy's guards
    broken = HEAD + "guards:\n  injection: {rulesDir: nowhere}\n" + scopes.replace("bogus2", "PI-1002")
    out = check(tmp_path, broken)
    assert len(out) == 1 and out[0].startswith("5: $.guards.injection: cannot compile guard 'injection'")


def test_an_upstream_with_problems_is_not_also_unknown(tmp_path):
    text = HEAD + "  azure: {provider: azur, baseUrl: https://x.openai.azure.com}\n" \
                  "routes:\n  - {models: [gpt-4o], upstream: azure}\n  - {models: ['*'], upstream: openai}\n"
    out = check(tmp_path, text)
    assert out == ["4: $.upstreams.azure.provider: 'azur' is not one of "
                   "['openai', 'azure', 'anthropic', 'openai-compatible'] (did you mean 'azure'?)"]


STRICTISH = """\
version: 1
identity: {mode: virtualKeys, keysFile: keys.yaml}
upstreams:
  openai: {provider: openai, baseUrl: "http://127.0.0.1:9/v1", apiKey: "${OPENAI_API_KEY:-}"}
  claude: {provider: anthropic, baseUrl: "http://127.0.0.1:9", apiKey: "${ANTHROPIC_API_KEY}"}
server: {readinessToken: "${AIFW_READINESS_TOKEN}"}
"""


def test_secrets_are_referenced_not_required_for_a_check(tmp_path):
    out = check(tmp_path, STRICTISH, warnings=True)
    assert out == [
        "4: $.upstreams.openai.apiKey: warning: OPENAI_API_KEY is not set here; the proxy needs it "
        "at start (virtualKeys mode sends it upstream)",
        "5: $.upstreams.claude.apiKey: warning: ANTHROPIC_API_KEY is not set here; the proxy needs it at start",
        "6: $.server.readinessToken: warning: AIFW_READINESS_TOKEN is not set here; the proxy needs it at start",
    ]
    assert check(tmp_path, STRICTISH) == []
    # a provider key that is not written at all is an error, with the provider's variable
    missing = STRICTISH.replace(', apiKey: "${ANTHROPIC_API_KEY}"', "")
    assert check(tmp_path, missing) == [
        "5: $.upstreams.claude.apiKey: virtualKeys mode needs the provider key (e.g. apiKey: ${ANTHROPIC_API_KEY})"]
    # serving needs the secrets themselves
    with pytest.raises(PolicyError) as info:
        compile_policy(str(tmp_path / "p.yaml"), None, {})
    assert not any(p.warning for p in info.value.problems)
    env = {"OPENAI_API_KEY": "sk-a", "ANTHROPIC_API_KEY": "sk-b", "AIFW_READINESS_TOKEN": "r" * 16}
    (tmp_path / "p.yaml").write_text(STRICTISH)
    assert compile_policy(str(tmp_path / "p.yaml"), None, env).upstreams["claude"].api_key == "sk-b"


def test_cli_prints_warnings_and_passes(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(STRICTISH)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AIFW_READINESS_TOKEN")}
    out = subprocess.run([sys.executable, "-m", "proxy", "policy", "check", str(path)], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == f"{path}: ok" and len(lines) == 4 and all(": warning: " in x for x in lines[:-1])


def test_secrets_a_guard_reads_by_name_are_warnings_in_a_check(tmp_path, monkeypatch):
    for name in ("CHECK_REDIS_PASSWORD", "CHECK_PII_HASH_KEY"):
        monkeypatch.delenv(name, raising=False)
    text = HEAD + ("guards:\n"
                   "  pii: {entities: {EMAIL_ADDRESS: hash}, hashKeyEnv: CHECK_PII_HASH_KEY}\n"
                   "  ratelimit:\n"
                   "    backend: redis\n"
                   "    redis: {url: 'redis://127.0.0.1:1/0', passwordEnv: CHECK_REDIS_PASSWORD}\n"
                   "    limits: [{name: a, scope: user, requests: 10/minute}]\n")
    assert check(tmp_path, text, warnings=True) == [
        "5: $.guards.pii: warning: CHECK_PII_HASH_KEY is not set here; the proxy needs it at start",
        "6: $.guards.ratelimit: warning: CHECK_REDIS_PASSWORD is not set here; the proxy needs it at start"]
    with pytest.raises(PolicyError) as info:          # serving needs them
        compile_policy(str(tmp_path / "p.yaml"), None, {})
    assert len(info.value.problems) == 2
    monkeypatch.setenv("CHECK_PII_HASH_KEY", "k" * 32)
    monkeypatch.setenv("CHECK_REDIS_PASSWORD", "pw")
    assert check(tmp_path, text, warnings=True) == []
