"""The image's lock files: every runtime dependency pinned with hashes, and the SBOM made from
them. `make lock` writes both files; these tests need no network."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from test_deploy_dockerfile import DOCKERFILE, instructions, stages

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
SBOM_LOCK = REPO / "requirements-sbom.lock"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, hashes) of a pip requirements file, continuation lines joined."""
    out: dict[str, tuple[str, list[str]]] = {}
    logical = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        req = Requirement(spec)
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, f"{path.name}: {spec} is not pinned to one version"
        assert all(HASH.fullmatch(o) for o in options), f"{path.name}: {spec} has options other than hashes"
        out[canonicalize_name(req.name)] = (pins[0].version, options)
    return out


def runtime_requirements() -> list[Requirement]:
    """What the image installs: the dependencies, the [speed] extra and the build backend."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["speed"]
    reqs += project["build-system"]["requires"]
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize("path", [LOCK, SBOM_LOCK], ids=lambda p: p.name)
def test_every_entry_is_pinned_with_a_hash(path):
    locked = entries(path)
    assert len(locked) >= 10
    unhashed = [name for name, (_, hashes) in locked.items() if not hashes]
    assert unhashed == []


def test_the_parser_refuses_an_unpinned_or_unhashed_entry(tmp_path):
    # Proves the checks above can fail.
    loose = tmp_path / "loose.lock"
    loose.write_text("aiohttp>=3.9 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(AssertionError, match="not pinned"):
        entries(loose)
    bare = tmp_path / "bare.lock"
    bare.write_text("aiohttp==3.9.0\n")
    assert entries(bare)["aiohttp"] == ("3.9.0", [])


def test_lock_covers_every_runtime_dependency():
    locked = entries(LOCK)
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} (pyproject.toml) is not in requirements.lock: run make lock"
        version = locked[name][0]
        assert req.specifier.contains(Version(version), prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject's {req}: run make lock")


def test_lock_holds_no_test_or_training_tools():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = {canonicalize_name(r.name) for r in runtime_requirements()}
    extras = project["project"]["optional-dependencies"]
    others = {canonicalize_name(Requirement(r).name) for name in ("test", "train", "lock") for r in extras[name]}
    assert not (others - runtime) & set(entries(LOCK)), "the image would carry test or training tools"


def test_make_lock_regenerates_both_files():
    text = subprocess.run(["make", "-n", "lock"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "--generate-hashes" in text and "--python-version 3.11" in text
    assert "-o requirements.lock" in text and "-o requirements-sbom.lock" in text
    # the SBOM tool's version is chosen in the Makefile, and the lock holds that version
    (pinned,) = re.findall(r"cyclonedx-bom==(\S+?)'", text)
    assert entries(SBOM_LOCK)["cyclonedx-bom"][0] == pinned
    for path in (LOCK, SBOM_LOCK):
        assert "#    make lock" in path.read_text().splitlines()[1]


def _dockerfile_stage(name: str) -> list[tuple[str, str]]:
    (stage,) = [s for s in stages(instructions(DOCKERFILE.read_text())) if s[0][1].endswith(f" AS {name}")]
    return stage


def test_builder_installs_exactly_the_lock_then_the_project():
    runs = [a for k, a in _dockerfile_stage("builder") if k == "RUN"]
    lock_step = [i for i, a in enumerate(runs) if "-r requirements.lock" in a]
    assert lock_step, "the builder does not install from requirements.lock"
    assert "--require-hashes" in runs[lock_step[0]] and "--no-deps" in runs[lock_step[0]]
    project = [i for i, a in enumerate(runs) if re.search(r"pip install .*\s\.$", a)]
    assert project and project[0] > lock_step[0]
    # nothing resolved or fetched at build time: no dependencies, no isolated build env
    assert "--no-deps" in runs[project[0]] and "--no-build-isolation" in runs[project[0]]
    unlocked = [a for a in runs if "pip install" in a and "--no-deps" not in a]
    assert unlocked == []


def test_every_stage_shares_one_digest_pinned_base():
    froms = [a.split()[0] for k, a in instructions(DOCKERFILE.read_text()) if k == "FROM"]
    assert len(froms) == 3 and len(set(froms)) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", froms[0]), froms[0]


def test_sbom_stage_runs_cyclonedx_on_the_lock_and_the_image_carries_it(tmp_path):
    sbom = _dockerfile_stage("sbom")
    (run,) = [a for k, a in sbom if k == "RUN"]
    commands = [shlex.split(c) for c in run.split("&&")]
    (install,) = [c for c in commands if "pip" in c[0]]
    assert {"--require-hashes", "--no-deps", "requirements-sbom.lock"} <= set(install)
    (cyclonedx,) = [c for c in commands if c[0].endswith("/cyclonedx-py")]
    output = cyclonedx[cyclonedx.index("-o") + 1]
    copied = [a for k, a in _dockerfile_stage("runtime") if k == "COPY" and a.startswith("--from=sbom")]
    assert copied and copied[0].split()[1] == output

    # The very command of the Dockerfile, with the tool `make test` installs from the same lock
    # (.venv-sbom) and a temp output.
    tool = REPO / ".venv-sbom" / "bin" / "cyclonedx-py"
    assert tool.exists(), "make test installs it (the Makefile's .venv-sbom target)"
    argv = [str(tool)] + cyclonedx[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "sbom.json")
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    bom = json.loads((tmp_path / "sbom.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == "aifw"
    components = {canonicalize_name(c["name"]): c for c in bom["components"]}
    locked = entries(LOCK)
    assert set(components) == set(locked)
    for name, (version, hashes) in locked.items():
        assert components[name]["version"] == version
        recorded = {h["content"] for ref in components[name]["externalReferences"] for h in ref.get("hashes", ())}
        assert recorded == {h.split(":", 1)[1] for h in hashes}


def test_an_installed_package_finds_the_rules_the_image_names(tmp_path):
    # The image installs the package into site-packages, away from rules/: AIFW_RULES_DIR says
    # where the image copied them.
    runtime = _dockerfile_stage("runtime")
    env = " ".join(a for k, a in runtime if k == "ENV")
    rules_dir = re.search(r"AIFW_RULES_DIR=(\S+)", env).group(1)
    workdir = [a for k, a in runtime if k == "WORKDIR"][-1]
    assert ("COPY", f"rules ./rules") in runtime and rules_dir == f"{workdir}/rules"
    code = "from proxy.detection.rules import DEFAULT_RULES_DIR; print(DEFAULT_RULES_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "AIFW_RULES_DIR": str(tmp_path)},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == str(tmp_path)
