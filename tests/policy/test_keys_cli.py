"""`aifw keys`: the README's example as written, the keys file outside policies/, no provider
keys needed to manage keys."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.docs_examples import examples, run, sandbox


def readme_keys_example():
    (example,) = [e for e in examples(("sh",)) if e.file == "README.md" and "aifw keys create" in e.text]
    return example


def test_readme_keys_example_runs_as_written(tmp_path):
    cwd, env = sandbox(tmp_path)
    before = sorted(p.name for p in (cwd / "policies").iterdir())
    out = run(readme_keys_example(), cwd, env)
    assert out.returncode == 0, out.stderr
    assert "OPENAI_API_KEY" not in env and "ANTHROPIC_API_KEY" not in env
    key = out.stdout.splitlines()[0]
    assert key.startswith("aifw-")
    listed = json.loads(out.stdout.splitlines()[1])
    assert listed["user"] == "alice" and listed["groups"] == ["eng"] and "hash" not in listed
    # the keys file the policy names, outside policies/; the key revoked by its name
    stored = yaml.safe_load((cwd / "var" / "keys.yaml").read_text())["keys"]
    assert [(k["name"], k["revoked"]) for k in stored] == [("alice-laptop", True)]
    assert key not in (cwd / "var" / "keys.yaml").read_text()
    assert sorted(p.name for p in (cwd / "policies").iterdir()) == before
    check = subprocess.run("aifw policy check policies/*.yaml", shell=True, cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_keys_commands_say_what_is_missing(tmp_path):
    cwd, env = sandbox(tmp_path)

    def aifw(*args):
        return subprocess.run(["aifw", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)

    out = aifw("keys", "list", "--policy", "policies/default.yaml")
    assert out.returncode == 1 and "names no identity.keysFile" in out.stderr
    (cwd / "bad.yaml").write_text("version: 1\nidentity: {mode: virtualKeys, keysFile: ${KEYS_AT}}\n")
    out = aifw("keys", "list", "--policy", "bad.yaml")
    assert out.returncode == 1 and 'bad.yaml:2: $: invalid YAML' in out.stderr
    assert 'quote a value that holds ${VAR}' in out.stderr
    (cwd / "bad.yaml").write_text('version: 1\nidentity: {mode: virtualKeys, keysFile: "${KEYS_AT}"}\n')
    out = aifw("keys", "list", "--policy", "bad.yaml")
    assert out.returncode == 1 and "$.identity.keysFile: environment variable KEYS_AT is not set" in out.stderr
    env["AIFW_KEYS_FILE"] = str(tmp_path / "elsewhere" / "k.yaml")
    out = aifw("keys", "create", "--policy", "policies/strict.yaml", "--user", "bob")
    assert out.returncode == 0 and (tmp_path / "elsewhere" / "k.yaml").exists()
    out = aifw("keys", "revoke", "--policy", "policies/strict.yaml", "no-such-key")
    assert out.returncode == 1 and "no key with id no-such-key" in out.stderr


def test_managing_keys_loads_no_guard(tmp_path):
    # `aifw keys` and `aifw import` read YAML and write YAML: building the command line must not
    # import the guard stack (numpy, the detection model, presidio), which only judging needs.
    code = ("import sys; from proxy.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('proxy.pipeline', 'proxy.guards', 'proxy.offline', 'numpy') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
