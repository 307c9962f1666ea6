"""The fenced examples of README.md and docs/*.md, and a sandbox that runs shell examples.

Markers (an HTML comment on the line before a block; invisible when the Markdown is rendered):
- ``<!-- fragment -->`` before a ```yaml block: a piece of a policy, not a whole one. It must
  still parse as YAML; whole policies must pass `aifw policy check`.
- ``<!-- not-policy: WHAT -->`` before a ```yaml block: YAML that is not an aifw policy (another
  tool's config); it must parse.
- ``<!-- not-run: REASON -->`` before a ```sh or ```console block: it cannot run offline here
  (it needs a provider, a cluster, a container runtime, ...); the reason is required.
- ``<!-- exits: 0 1 -->`` before a ```sh block: it runs, and each command may end with any of
  these statuses (a command whose status is its answer, as `aifw scan`'s 1 for blocked).
Every other ```sh / ```console block runs, line by line, in a sandbox holding a copy of
policies/ and rules/ (``$ `` prompts are stripped from console blocks; output lines, without a
prompt, are not run).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.S | re.M)
MARKER = re.compile(r"<!--\s*(fragment|not-run|not-policy|exits)(?::\s*(.*?))?\s*-->\s*$")
# Variables a doc example must not see: provider keys and the proxy's own settings.
PRIVATE_ENV = re.compile(r"^(AIFW_|OPENAI_|ANTHROPIC_|AZURE_)")


@dataclass(frozen=True)
class Example:
    file: str          # relative to the repository
    line: int          # line of the opening fence
    lang: str
    text: str
    marker: str | None  # "fragment", "not-policy", "not-run", "exits" or None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(langs: tuple[str, ...]) -> list[Example]:
    out = []
    for path in doc_files():
        source = path.read_text()
        for m in FENCE.finditer(source):
            if m.group("lang") not in langs:
                continue
            line = source.count("\n", 0, m.start()) + 1
            before = source[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            indent = m.group("indent")
            body = "".join(x[len(indent):] if x.startswith(indent) else x
                           for x in m.group("body").splitlines(keepends=True))
            out.append(Example(str(path.relative_to(ROOT)), line, m.group("lang"), body,
                               marker.group(1) if marker else None,
                               (marker.group(2) or "").strip() if marker else ""))
    return out


def commands(example: Example) -> str:
    """The example as a bash script: console prompts stripped, output lines dropped."""
    if example.lang != "console":
        return example.text
    lines, more = [], False
    for line in example.text.splitlines():
        if line.startswith("$ ") or more:
            cmd = line[2:] if line.startswith("$ ") else line
            lines.append(cmd)
            more = cmd.endswith("\\")
    return "\n".join(lines) + "\n"


def sandbox(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A working directory laid out like a checkout (policies/, rules/) and an environment
    with `aifw` on the PATH and no provider keys or aifw settings."""
    for name in ("policies", "rules"):
        shutil.copytree(ROOT / name, tmp / name)
    env = {k: v for k, v in os.environ.items() if not PRIVATE_ENV.match(k)}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["HOME"] = str(tmp)
    # the compiled-rules cache of the test session, so each example does not compile them anew
    if os.environ.get("AIFW_CACHE_DIR"):
        env["AIFW_CACHE_DIR"] = os.environ["AIFW_CACHE_DIR"]
    return tmp, env


def run(example: Example, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = commands(example)
    flags = "-euo"
    if example.marker == "exits":
        allowed = " ".join(example.reason.split())
        # no -e: the ERR trap stops the script at the first status not allowed, and says which
        script = (f"trap 'rc=$?; case \" {allowed} \" in *\" $rc \"*) ;; "
                  f"*) echo \"exit $rc: $BASH_COMMAND\" >&2; exit $rc;; esac' ERR\n" + script + "\ntrue\n")
        flags = "-Euo"
    return subprocess.run(["bash", flags, "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
