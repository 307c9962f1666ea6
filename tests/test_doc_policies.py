"""Every example in README.md and docs/*.md is tested (markers: tests/docs_examples.py).

- A ```yaml block is a whole policy and passes `aifw policy check`, or is marked
  `<!-- fragment -->`: it parses as YAML, and a fragment made of policy sections (guards:,
  audit:, server: ...) passes the check inside a minimal policy; or `<!-- not-policy: WHAT -->`
  (another tool's config): it parses.
- A ```sh / ```console block runs offline in a sandbox (exit 0, or a status that
  `<!-- exits: 0 1 -->` allows), or is marked `<!-- not-run: REASON -->`.
- Every fence names its language, so a command cannot hide in an untagged block.
"""
from __future__ import annotations

import pytest
import yaml

from proxy.policy.compile import check_files
from proxy.policy.schema import build_schema
from tests.docs_examples import FENCE, doc_files, examples, run, sandbox

SHELL = ("sh", "console")
# Whole policies that name a keys file, a Redis URL or provider keys get them from here.
ENV = {"AIFW_REDIS_URL": "redis://127.0.0.1:1/0", "HOOK_TOKEN": "hk-x"}
# Keys whose values name a file beside the policy (term lists, CA certificates): the check
# reads them, so the sandbox has one.
FILE_KEYS = ("file", "caFile")
MINIMAL = {"version": 1, "upstreams": {"openai": {"provider": "openai", "baseUrl": "https://api.openai.com/v1"}}}


def _params(langs, marker):
    return [pytest.param(e, id=e.id) for e in examples(langs) if e.marker == marker]


def _touch_files(node, tmp_path) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FILE_KEYS and isinstance(value, str) and not value.startswith(("/", "$")):
                (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / value).write_text("example\n")
            _touch_files(value, tmp_path)
    elif isinstance(node, list):
        for item in node:
            _touch_files(item, tmp_path)


def _check(text: str, tmp_path) -> list[str]:
    (tmp_path / "keys.yaml").write_text("keys: []\n")
    _touch_files(yaml.safe_load(text), tmp_path)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return [str(p) for p in check_files([str(path)], ENV)]


@pytest.mark.parametrize("example", _params(("yaml",), None))
def test_whole_policy_passes_policy_check(example, tmp_path):
    assert example.text.startswith("version: 1\n"), \
        f"{example.id}: a whole policy starts with 'version: 1'; mark a piece of one <!-- fragment -->"
    assert _check(example.text, tmp_path) == []


@pytest.mark.parametrize("example", _params(("yaml",), "fragment"))
def test_fragment_parses_and_checks_inside_a_policy(example, tmp_path):
    data = yaml.safe_load(example.text)
    if isinstance(data, dict) and set(data) <= set(build_schema()["properties"]):
        assert _check(yaml.safe_dump({**MINIMAL, **data}, sort_keys=False), tmp_path) == []


@pytest.mark.parametrize("example", _params(("yaml",), "not-policy"))
def test_other_yaml_parses(example):
    assert example.reason, f"{example.id}: say what it is: <!-- not-policy: WHAT -->"
    yaml.safe_load(example.text)


@pytest.mark.parametrize("example", _params(SHELL, None) + _params(SHELL, "exits"))
def test_shell_example_runs_offline(example, tmp_path):
    cwd, env = sandbox(tmp_path)
    out = run(example, cwd, env)
    assert out.returncode == 0, f"{example.id} failed:\n{out.stdout}\n{out.stderr}"


def test_examples_that_do_not_run_say_why():
    for example in examples(SHELL + ("yaml",)):
        if example.marker == "not-run":
            assert example.lang in SHELL and example.reason, example.id
        if example.marker in ("fragment", "not-policy"):
            assert example.lang == "yaml", example.id
        if example.marker == "exits":
            assert example.lang in SHELL and example.reason.replace(" ", "").isdigit(), example.id


def test_every_fence_names_its_language():
    untagged = []
    for path in doc_files():
        source = path.read_text()
        for m in FENCE.finditer(source):
            if not m.group("lang"):
                untagged.append(f"{path.name}:{source.count(chr(10), 0, m.start()) + 1}")
    assert untagged == [], "tag these blocks (sh, console, yaml, json, text, ...)"


def test_the_docs_show_policies_and_commands():
    assert len(_params(("yaml",), None)) >= 7
    assert any(e.file == "README.md" for e in examples(("yaml",)) if e.marker is None)
    assert len(_params(SHELL, None)) >= 1


def test_the_runner_allows_only_the_listed_statuses(tmp_path):
    from tests.docs_examples import Example
    cwd, env = tmp_path, {"PATH": "/usr/bin:/bin"}
    allowed = Example("x.md", 1, "sh", "false\n(exit 1)\necho after\n", "exits", "0 1")
    out = run(allowed, cwd, env)
    assert out.returncode == 0 and out.stdout == "after\n"
    stopped = Example("x.md", 1, "sh", "(exit 3)\necho after\n", "exits", "0 1")
    out = run(stopped, cwd, env)
    assert out.returncode == 3 and out.stdout == "" and "exit 3" in out.stderr
    plain = Example("x.md", 1, "sh", "false\necho after\n", None, "")
    assert run(plain, cwd, env).returncode == 1
