"""`aifw import litellm`: realistic LiteLLM configs become policies that pass `aifw policy
check`; what cannot be mapped is listed, never dropped silently; no secret is copied."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxy.importers.litellm import convert
from proxy.policy.compile import check_files, compile_policy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIG = HERE / "litellm_config.yaml"

# LiteLLM's quick-start shape: one provider, a key from the environment, nothing else.
MINIMAL = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
general_settings:
  master_key: sk-1234
"""


def imported(tmp_path: Path, config) -> tuple[Path, list[str]]:
    result = convert(yaml.safe_load(config) if isinstance(config, str) else config)
    path = tmp_path / "imported.yaml"
    path.write_text(result.text("config.yaml"))
    return path, result.notes


def test_realistic_config_maps_and_passes_policy_check(tmp_path, monkeypatch):
    path, notes = imported(tmp_path, CONFIG.read_text())
    assert check_files([str(path)], {}) == []
    env = {"AZURE_API_KEY_EU": "a", "AZURE_API_KEY_CA": "b", "OPENAI_API_KEY": "c", "ANTHROPIC_API_KEY": "d"}
    monkeypatch.setenv("REDIS_PASSWORD", "pw")      # read by name when the limits compile
    policy = compile_policy(str(path), None, env)
    assert policy.identity.mode == "virtualKeys"
    assert sorted(policy.upstreams) == ["anthropic", "azure-acme-ca", "azure-acme-eu", "openai",
                                        "openai-compatible-vllm"]
    eu = policy.upstreams["azure-acme-eu"]
    assert (eu.provider, eu.base_url, eu.api_key, eu.api_version) == (
        "azure", "https://acme-eu.openai.azure.com", "a", "2024-10-21")
    assert eu.timeouts.total == 120
    # two deployments of gpt-4o, then its fallback gpt-4o-mini, in that order, models renamed
    route = policy.route("gpt-4o", "openai")
    assert [(t.upstream.name, t.model) for t in route.targets] == [
        ("azure-acme-eu", "gpt-4o-eu"), ("azure-acme-ca", "gpt-4o-ca"), ("openai", "gpt-4o-mini")]
    assert route.retry.attempts == 3
    assert [(t.upstream.name, t.model) for t in policy.route("claude-sonnet", "anthropic").targets] == [
        ("anthropic", "claude-3-5-sonnet-20241022")]
    assert policy.route("gemini-pro", "openai") is None
    assert policy.upstreams["openai-compatible-vllm"].api_key == "unused"
    data = yaml.safe_load(path.read_text())
    limits = {lim["name"]: lim for lim in data["guards"]["ratelimit"]["limits"]}
    assert limits["gpt-4o-capacity"] == {"name": "gpt-4o-capacity", "scope": "global", "models": ["gpt-4o"],
                                         "requests": "900/minute", "tokens": "200000/minute"}
    assert limits["proxy-spend"]["spend"] == "$1000/month" and limits["user-spend"]["spend"] == "$25/day"
    assert limits["key-default"] == {"name": "key-default", "scope": "key", "requests": "60/minute",
                                     "tokens": "100000/minute", "spend": "$50/month"}
    assert limits["key-parallel"]["concurrency"] == 20
    assert data["guards"]["ratelimit"]["redis"] == {"url": "redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/0",
                                                    "passwordEnv": "REDIS_PASSWORD"}
    assert data["cost"]["prices"]["gpt-4o-mini"] == {"input": 0.15, "output": 0.6}
    assert data["resilience"]["breaker"] == {"failures": 3, "coolDown": "30s"}
    assert "injection" in data["guards"]
    # every setting that did not map is named, in the notes and at the top of the file
    for item in ("vertex_ai", "temperature", "drop_params", "context_window_fallbacks", "success_callback",
                 "database_url", "routing_strategy", "environment_variables", "balances load",
                 "default_key_generate_params: models", "does not translate"):
        assert any(item in n for n in notes), item
    head = path.read_text().split("version: 1")[0]
    assert all(f"# not mapped: {n}" in head for n in notes)


def test_no_secret_is_copied(tmp_path):
    config = yaml.safe_load(MINIMAL)
    config["model_list"].append({"model_name": "claude", "litellm_params": {
        "model": "anthropic/claude-3-5-haiku-latest", "api_key": "sk-ant-LITERAL-SECRET"}})
    config["router_settings"] = {"redis_host": "redis.internal", "redis_password": "hunter2"}
    config["litellm_settings"] = {"default_key_generate_params": {"rpm_limit": 10}}
    path, notes = imported(tmp_path, config)
    text = path.read_text()
    assert "LITERAL-SECRET" not in text and "hunter2" not in text and "sk-1234" not in text
    data = yaml.safe_load(text.split("\n", 2)[2])
    assert data["upstreams"]["anthropic"]["apiKey"] == "${ANTHROPIC_API_KEY}"
    assert data["guards"]["ratelimit"]["redis"]["passwordEnv"] == "REDIS_PASSWORD"
    assert any("literal API key is not copied" in n for n in notes)
    assert any("literal password is not copied" in n for n in notes)
    assert check_files([str(path)], {}) == []


def test_minimal_config_and_providers_inferred(tmp_path):
    path, notes = imported(tmp_path, MINIMAL)
    data = yaml.safe_load(path.read_text())
    assert data["upstreams"] == {"openai": {"provider": "openai", "baseUrl": "https://api.openai.com/v1",
                                            "apiKey": "${OPENAI_API_KEY}"}}
    assert data["routes"] == [{"models": ["gpt-4o"], "upstream": "openai"}]
    assert notes == [] and check_files([str(path)], {}) == []
    # no provider prefix: LiteLLM infers it from the model's name; a local OpenAI-compatible server
    inferred = {"model_list": [
        {"model_name": "sonnet", "litellm_params": {"model": "claude-3-5-sonnet-latest"}},
        {"model_name": "local", "litellm_params": {"model": "openai/qwen2.5", "api_base": "http://127.0.0.1:11434/v1"}},
    ]}
    path, notes = imported(tmp_path, inferred)
    data = yaml.safe_load(path.read_text())
    assert data["upstreams"]["anthropic"]["apiKey"] == "${ANTHROPIC_API_KEY}"
    assert data["upstreams"]["openai-compatible"]["baseUrl"] == "http://127.0.0.1:11434/v1"
    assert any("master_key is not set" in n for n in notes)
    assert check_files([str(path)], {}) == []


def test_budget_durations_aifw_cannot_express_are_named(tmp_path):
    path, notes = imported(tmp_path, MINIMAL + "litellm_settings:\n  max_budget: 10\n  budget_duration: 7d\n")
    assert any("budget_duration '7d'" in n for n in notes)
    assert "ratelimit" not in yaml.safe_load(path.read_text())["guards"]


def test_unusable_configs_say_why():
    with pytest.raises(ValueError, match="no model_list entry"):
        convert({"model_list": [{"model_name": "x", "litellm_params": {"model": "bedrock/claude"}}]})
    with pytest.raises(ValueError, match="is a mapping"):
        convert(["model_list"])


def test_cli_writes_the_policy_and_lists_what_it_did_not_map(tmp_path):
    out_file = tmp_path / "policy.yaml"
    out = subprocess.run([sys.executable, "-m", "proxy", "import", "litellm", str(CONFIG), "-o", str(out_file)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert "aifw: not mapped: model_list[5] (gemini-pro)" in out.stderr
    assert "5 upstream(s), 4 route(s)" in out.stderr
    check = subprocess.run([sys.executable, "-m", "proxy", "policy", "check", str(out_file)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert check.returncode == 0 and check.stdout.endswith(f"{out_file}: ok\n"), check.stdout
    missing = subprocess.run([sys.executable, "-m", "proxy", "import", "litellm", str(tmp_path / "nope.yaml")],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_the_migration_guide_s_example_imports_to_what_it_shows(tmp_path):
    from tests.docs_examples import examples
    blocks = [e for e in examples(("yaml",)) if e.file == "docs/migrating-from-litellm.md"]
    (config,) = [e for e in blocks if e.marker == "not-policy"]
    (shown,) = [e for e in blocks if e.marker is None]
    path, notes = imported(tmp_path, config.text)
    assert check_files([str(path)], {}) == []
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(shown.text)
