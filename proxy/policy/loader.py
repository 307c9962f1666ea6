"""Read YAML keeping the line of every node, and interpolate ``${VAR}`` / ``${VAR:-default}``.

Line numbers let every problem be reported as ``file:line: $.path: message`` (house rule 1).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from ..yamlfast import SafeLoader, safe_load

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

Path = tuple  # a JSON path: keys and indexes


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    path: Path
    message: str
    # A warning is printed by `aifw policy check` but does not fail it (an unset secret).
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}: {json_path(self.path)}: {kind}{self.message}"


class SectionError(ValueError):
    """Compile problems at keys inside a guard's or section's mapping: (path relative to it,
    message) pairs, so `aifw policy check` points at the key, not at the whole guard."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = [(tuple(path), message) for path, message in problems]


def json_path(path: Path) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(part)):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


@dataclass(slots=True)
class Document:
    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Paths of values that read environment variables: the variables' names, and those unset.
    env_refs: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    unset: dict[Path, tuple[str, ...]] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def problem(self, path: Path, message: str, *, warning: bool = False) -> None:
        self.problems.append(Problem(self.file, self.line_of(path), tuple(path), message, warning))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]


class _Builder:
    def __init__(self, doc: Document, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.env = env
        self.loader: Any = None

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    self.doc.problem(path, "mapping keys must be scalars")
                    continue
                if isinstance(key, bool) or not isinstance(key, str):
                    key = str(key)
                if key in out:
                    self.doc.problems.append(Problem(self.doc.file, key_node.start_mark.line + 1,
                                                     path + (key,), f"duplicate key {key!r}"))
                    continue
                self.doc.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            value = self._interpolate(value, node, path)
        return value

    def _interpolate(self, text: str, node: yaml.ScalarNode, path: Path) -> Any:
        missing: list[str] = []

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            val = self.env.get(name)
            if val is None or (val == "" and default is not None):
                if default is None:
                    missing.append(name)
                    return ""
                return default
            return val

        out = _VAR.sub(sub, text)
        self.doc.env_refs[path] = tuple(m.group(1) for m in _VAR.finditer(text))
        if missing:
            self.doc.unset[path] = tuple(missing)
        for name in missing:
            self.doc.problem(path, f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)")
        # An unquoted scalar takes its type after substitution (port: ${PORT:-8080} is a number).
        if not node.style and out:     # plain: None (Python parser) or '' (libyaml)
            try:
                typed = safe_load(out)
            except yaml.YAMLError:
                return out
            if isinstance(typed, (int, float, bool)):
                return typed
        return out


_UNQUOTED_VAR_IN_FLOW = re.compile(r"[{\[,]\s*(?:[\w.-]+:\s*)?\$\{")


def _flow_hint(text: str, line: int) -> str:
    # `{key: ${VAR:-}}`: the braces of the variable end the flow mapping early. The fix is quotes.
    lines = text.splitlines()
    near = lines[max(0, line - 2):line]
    if any(_UNQUOTED_VAR_IN_FLOW.search(x) for x in near):
        return ' (inside {...} or [...], quote a value that holds ${VAR}: key: "${VAR:-default}")'
    return ""


def load_text(text: str, file: str, env: Mapping[str, str] | None = None) -> Document:
    doc = Document(file=file, data=None)
    builder = _Builder(doc, os.environ if env is None else env)
    loader = SafeLoader(text)
    builder.loader = loader
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        doc.problems.append(Problem(file, line, (), f"invalid YAML: {exc.problem or exc}{_flow_hint(text, line)}"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(file, 1, (), f"invalid YAML: {exc}"))
        return doc
    finally:
        loader.dispose()
    if node is None:
        doc.data = {}
        doc.lines[()] = 1
        return doc
    doc.data = builder.build(node, ())
    return doc


def load_file(path: str, env: Mapping[str, str] | None = None) -> tuple[Document, bytes]:
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc = Document(file=path, data=None)
        doc.problems.append(Problem(path, 1, (), f"not UTF-8: {exc}"))
        return doc, raw
    return load_text(text, path, env), raw
