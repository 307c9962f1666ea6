"""Argument checks for tool calls: the request's own JSON Schema for the tool, and the policy's
per-tool constraints on argument paths (allowed values, patterns, URL hosts, sizes).

Pure functions over parsed arguments; the tools guard decides what a broken rule does.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

import orjson

from .globs import GlobSet
from .lazyimport import lazy, load
from .parsing.tools import entries

# jsonschema (~60 ms at import) checks the schemas requests declare: `aifw policy check` and a
# policy without the tools or structured guard never import it; a start that compiles one of
# those guards imports it before it is ready (``warm``), as a plain import did.
jsonschema = lazy("jsonschema", globals(), "jsonschema")


def warm() -> None:
    load(globals(), "jsonschema")


# A URL anywhere inside a string: a scheme, then "//" (backslashes count: browsers read them as
# slashes, so "https:\\evil" is a URL too).
URL_RX = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:[/\\]{2}[^\s\"'<>`]+")


_GLOBS = {"type": "array", "items": {"type": "string"}}
RULE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "tools"], "properties": {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$",
             "description": "Rule id suffix: a broken rule is reported as tools.args.<name>."},
    "tools": {**_GLOBS, "description": "Tool-name globs the rule applies to."},
    "path": {"type": "string", "description": "Dotted path into the arguments (* is any key or element); "
                                              "omitted: the whole arguments."},
    "values": {"type": "array", "description": "The only values the path may hold."},
    "pattern": {"type": "string", "description": "Regular expression every string at the path must match whole."},
    "hosts": {**_GLOBS, "description": "Hosts (globs, e.g. *.example.com) every URL found in a string at the "
                                       "path must point to: the exfiltration route through tools."},
    "maxLength": {"type": "integer", "minimum": 1,
                  "description": "Longest string (or serialised JSON value) at the path."},
}}


@dataclass(frozen=True, slots=True)
class Constraint:
    """One policy rule on the arguments of the tools its globs name."""

    name: str                      # rule id suffix: tools.args.<name>
    tools: GlobSet
    path: tuple[str, ...]          # keys / "*" from the arguments' root; () is the whole object
    values: tuple[Any, ...] | None
    pattern: re.Pattern | None
    hosts: GlobSet | None
    max_length: int | None

    def check(self, args: Any) -> str | None:
        """A message when ``args`` breaks this rule, else None. Never echoes argument text."""
        broken = self.violation(args)
        return None if broken is None else f"{broken[0]} {broken[1]}"

    def violation(self, args: Any) -> tuple[str, str] | None:
        """(argument path, what is wrong there) when ``args`` breaks this rule, else None."""
        for where, value in _at(args, self.path, "$"):
            if self.values is not None and value not in self.values:
                return where, "is not one of the allowed values"
            if self.max_length is not None and _size(value) > self.max_length:
                return where, f"is longer than {self.max_length} characters"
            for text in _strings(value):
                if self.pattern is not None and self.pattern.fullmatch(text) is None:
                    return where, "does not match the required pattern"
                if self.hosts is not None:
                    host = _foreign_host(text, self.hosts)
                    if host is not None:
                        return where, f"holds a URL to host {host!r}, which is not allowed"
        return None


def compile_rule(rule: dict) -> Constraint:
    """One entry of the tools guard's ``arguments`` list, compiled."""
    try:
        pattern = re.compile(rule["pattern"]) if "pattern" in rule else None
    except re.error as exc:
        raise ValueError(f"arguments rule {rule['name']!r}: bad pattern: {exc}") from None
    return Constraint(
        name=rule["name"], tools=GlobSet.of(rule["tools"]),
        path=tuple(p for p in rule.get("path", "").split(".") if p),
        values=tuple(rule["values"]) if "values" in rule else None,
        pattern=pattern,
        hosts=GlobSet.of(h.lower() for h in rule["hosts"]) if "hosts" in rule else None,
        max_length=rule.get("maxLength"),
    )


def _at(value: Any, path: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    """The values a path reaches; "*" is every key or element. Missing keys reach nothing."""
    if not path:
        yield where, value
        return
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        items = value.items() if head == "*" else ((head, value[head]),) if head in value else ()
        for k, v in items:
            yield from _at(v, rest, f"{where}.{k}")
    elif isinstance(value, list):
        items = enumerate(value) if head == "*" else ((int(head), value[int(head)]),) if (
            head.isdigit() and int(head) < len(value)) else ()
        for i, v in items:
            yield from _at(v, rest, f"{where}[{i}]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(orjson.dumps(value))


def _foreign_host(text: str, hosts: GlobSet) -> str | None:
    for m in URL_RX.finditer(text):
        url = m.group(0).replace("\\", "/")
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:            # a malformed authority: not a host anyone allowed
            return "(unparseable)"
        if not hosts.match(host.rstrip(".").lower()):
            return host
    return None


def declared_schemas(body: Any) -> dict[str, Any]:
    """Tool name -> the JSON Schema the request declared for its arguments."""
    out: dict[str, Any] = {}
    for tool in entries(body):
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        schema = fn.get("parameters", tool.get("input_schema"))
        if isinstance(fn.get("name"), str) and isinstance(schema, dict):
            out[fn["name"]] = schema
    return out


def schema_error(schema: dict, args: Any) -> str | None:
    """The first way ``args`` breaks ``schema`` as one message, or None."""
    broken = schema_violation(schema, args)
    if broken is None:
        return None
    return broken[1] if broken[0] is None else f"{broken[0]}: {broken[1]}"


# A key of the answer goes into a JSON path only when it looks like an identifier: the path is
# recorded in audit findings, which never hold text a model produced.
_PATH_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def json_path(parts: Any) -> str:
    """``$.items[0].price`` from a jsonschema error's ``absolute_path``."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else
                         f".{p}" if _PATH_KEY.fullmatch(str(p)) else ".*" for p in parts)


# Checking a schema against its meta-schema costs more than most validations (~1.5 ms for a
# small one): compiled validators are kept per distinct schema text, bounded in count and size.
_CACHED_SCHEMA_BYTES = 64 * 1024


@functools.lru_cache(maxsize=256)
def _cached_validator(text: bytes) -> Any:
    return _validator(orjson.loads(text))


def _validator(schema: Any) -> Any:
    """A validator for ``schema`` (the draft its ``$schema`` names, else 2020-12, the draft
    OpenAI's and Anthropic's schemas follow), or None when the schema itself is invalid."""
    if not isinstance(schema, dict):
        return None
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError:
        return None
    return cls(schema)


def schema_violation(schema: dict, args: Any) -> tuple[str | None, str] | None:
    """(JSON path, keyword and its value) of the first way ``args`` breaks ``schema``, or None.
    The path is None when the schema itself is invalid: nothing can satisfy it."""
    try:
        text = orjson.dumps(schema)
    except TypeError:            # e.g. an integer beyond 64 bits: valid JSON, not cacheable
        text = b""
    validator = _cached_validator(text) if 0 < len(text) <= _CACHED_SCHEMA_BYTES else _validator(schema)
    if validator is None:
        return None, "the request declared an invalid schema"
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is None:
        return None
    return json_path(error.absolute_path), f"{error.validator} {_short(error.validator_value)}"


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def parse_arguments(raw: Any) -> tuple[Any, bool]:
    """(parsed arguments, ok). OpenAI sends a JSON string, Anthropic an object."""
    if not isinstance(raw, str):
        return raw, True
    try:
        return orjson.loads(raw or "{}"), True
    except orjson.JSONDecodeError:
        return None, False
