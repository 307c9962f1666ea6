"""Loading, interpolation, validation and compiling of policy files (no server)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.policy.compile import PolicyError, check_files, compile_policy
from proxy.policy.loader import load_text
from proxy.policy.schema import build_schema

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
version: 1
name: good
upstreams:
  openai: {provider: openai, baseUrl: "${UP_URL:-http://127.0.0.1:9/v1}"}
routes:
  - {models: ["*"], upstream: openai}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def messages(tmp_path: Path, text: str, env=None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        compile_policy(path, None, env or {})
    return [str(p) for p in info.value.problems]


def test_interpolation_default_and_set():
    doc = load_text("a: ${X:-fallback}\nb: ${Y}\nc: 'x-${X:-d}-y'\nport: ${P:-8080}\nq: \"${P:-8080}\"\n",
                    "f.yaml", {"Y": "set"})
    assert doc.problems == []
    assert doc.data == {"a": "fallback", "b": "set", "c": "x-d-y", "port": 8080, "q": "8080"}
    # an empty variable takes the default, a set one wins over it
    assert load_text("a: ${X:-d}", "f", {"X": ""}).data == {"a": "d"}
    assert load_text("a: ${X:-d}", "f", {"X": "v"}).data == {"a": "v"}


def test_missing_env_var_is_reported_with_line(tmp_path):
    text = GOOD.replace("${UP_URL:-http://127.0.0.1:9/v1}", "${UP_URL}")
    out = messages(tmp_path, text)
    assert out[0] == (f"{tmp_path}/p.yaml:4: $.upstreams.openai.baseUrl: environment variable UP_URL is not "
                      "set (write ${UP_URL:-default} to give a default)")
    compile_policy(write(tmp_path, text, "q.yaml"), None, {"UP_URL": "http://h/v1"})


def test_unknown_key_bad_enum_unknown_upstream_duplicate(tmp_path):
    path = f"{tmp_path}/p.yaml"
    assert messages(tmp_path, GOOD + "modez: monitor\n") == [
        f"{path}:7: $.modez: unknown key 'modez' (did you mean 'mode'?); allowed: " +
        ", ".join(build_schema()["properties"])]
    assert messages(tmp_path, GOOD + "mode: enforcing\n") == [
        f"{path}:7: $.mode: 'enforcing' is not one of ['enforce', 'monitor'] (did you mean 'enforce'?)"]
    assert messages(tmp_path, GOOD + "  - {models: [x], upstream: nowhere}\n") == [
        f"{path}:7: $.routes[1].upstream: unknown upstream 'nowhere'; defined: openai"]
    assert messages(tmp_path, GOOD + "name: twice\n") == [f"{path}:7: $.name: duplicate key 'name'"]
    nested = GOOD + "guards:\n  access:\n    maxOutputTokens: 10\n    denyModel: [x]\n"
    out = messages(tmp_path, nested)
    assert len(out) == 1 and out[0].startswith(f"{path}:10: $.guards.access.denyModel: unknown key 'denyModel' "
                                               "(did you mean 'denyModels'?)")


def test_every_problem_in_one_run(tmp_path):
    text = GOOD.replace("${UP_URL:-http://127.0.0.1:9/v1}", "${UP_URL}") + "mode: x\nname: again\n"
    out = messages(tmp_path, text)
    assert any("UP_URL is not set" in m for m in out)
    assert any("$.mode:" in m for m in out)
    assert any("duplicate key 'name'" in m for m in out)


def test_invalid_yaml_has_a_line(tmp_path):
    out = messages(tmp_path, GOOD + "guards: [\n")
    assert len(out) == 1 and out[0].startswith(f"{tmp_path}/p.yaml:") and "invalid YAML" in out[0]


def test_check_files_good_and_default(tmp_path):
    assert check_files([write(tmp_path, GOOD), str(ROOT / "policies/default.yaml")], {}) == []


def test_default_policy_upstream_env():
    path = str(ROOT / "policies/default.yaml")
    assert compile_policy(path, None, {}).upstreams["openai"].base_url == "https://api.openai.com/v1"
    env = {"AIFW_UPSTREAM_URL": "http://127.0.0.1:1234/v1/"}
    assert compile_policy(path, None, env).upstreams["openai"].base_url == "http://127.0.0.1:1234/v1"
    assert "${AIFW_UPSTREAM_URL:-https://api.openai.com/v1}" in Path(path).read_text()


def test_digest_follows_content(tmp_path):
    a = compile_policy(write(tmp_path, GOOD), None, {})
    b = compile_policy(write(tmp_path, GOOD + "# comment\n", "b.yaml"), None, {})
    assert a.digest.startswith("sha256:") and a.digest != b.digest
    assert compile_policy(write(tmp_path, GOOD, "c.yaml"), None, {}).digest == a.digest


def test_published_schema_is_current():
    published = json.loads((ROOT / "policies/policy.schema.json").read_text())
    assert published == build_schema(), "regenerate: python -m proxy policy schema > policies/policy.schema.json"


def test_schema_describes_every_property():
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if isinstance(sub, dict) and "description" not in sub and name != "$schema":
                    missing.append(f"{path}.{name}")
                walk(sub, f"{path}.{name}")
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    walk(node[key], path + "[]")
            for key in ("anyOf", "oneOf", "allOf"):
                for sub in node.get(key) or ():
                    walk(sub, path)
    walk(build_schema(), "$")
    assert missing == []


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "UP_URL"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full, timeout=60)


def test_cli_policy_check_and_schema(tmp_path):
    good = write(tmp_path, GOOD, "good.yaml")
    bad = write(tmp_path, GOOD + "mode: enforcing\nfoo: 1\n", "bad.yaml")
    out = _cli("policy", "check", good)
    assert out.returncode == 0 and out.stdout == f"{good}: ok\n"
    out = _cli("policy", "check", good, bad)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        f"{bad}:7: $.mode: 'enforcing' is not one of ['enforce', 'monitor'] (did you mean 'enforce'?)",
        f"{bad}:8: $.foo: unknown key 'foo'; allowed: " + ", ".join(build_schema()["properties"]),
        f"{good}: ok",
    ]
    missing = write(tmp_path, GOOD.replace(":-http://127.0.0.1:9/v1", ""), "env.yaml")
    out = _cli("policy", "check", missing)
    assert out.returncode == 1 and "env.yaml:4: $.upstreams.openai.baseUrl: environment variable UP_URL" in out.stdout
    assert _cli("policy", "check", missing, env={"UP_URL": "http://x/v1"}).returncode == 0
    schema = _cli("policy", "schema")
    assert schema.returncode == 0 and json.loads(schema.stdout) == build_schema()
