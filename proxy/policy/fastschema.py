"""Is a policy valid under its JSON Schema, yes or no, without importing jsonschema.

Importing jsonschema (with referencing, attrs, rpds and its format checkers) costs ~60 ms of
CPU, and walking a policy with it ~7 ms: together about a sixth of `aifw policy check`. Nearly
every policy a check or a start sees is valid, so this module answers the yes/no question with
the schema compiled once into plain closures; only when it says "no" does validate.py import
jsonschema, which then finds and words every error exactly as before. So the messages are always
jsonschema's, and the one thing this module must get right is the verdict: it says "valid" only
where jsonschema's Draft 2020-12 validator finds no error at all.

Each keyword below is a copy of jsonschema's (4.x, ``jsonschema/_keywords.py``, ``_types.py``,
``_utils.equal``/``uniq``): the same type checks (a bool is no integer, 1.0 is one), the same
``re.search`` for ``pattern``, the same equality for ``enum``/``const`` (True is not 1). A
keyword not listed here makes ``compile_schema`` raise ``Unsupported`` and the caller use
jsonschema for every document: a new keyword in the schema can make checks slower, never wrong.
tests/policy/test_fastschema.py compares the verdicts with jsonschema's on the shipped and
documented policies and on thousands of mutated ones.
"""
from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable

Check = Callable[[Any], bool]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Keywords that never produce an error (jsonschema has no validator function for them).
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default",
                         "examples", "deprecated", "readOnly", "writeOnly"})


class Unsupported(Exception):
    """The schema uses something this module does not implement: use jsonschema."""


# -- jsonschema's type checker (draft 6 and later) ---------------------------------------------

def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, numbers.Number)


TYPES: dict[str, Check] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": _is_integer,
    "null": lambda x: x is None,
    "number": _is_number,
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}


# -- jsonschema's equality (_utils.equal, unbool, uniq) ----------------------------------------

def _unbool(element: Any, true: object = object(), false: object = object()) -> Any:
    if element is True:
        return true
    if element is False:
        return false
    return element


def equal(one: Any, two: Any) -> bool:
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(i, j) for i, j in zip(one, two))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(key in two and equal(value, two[key])
                                            for key, value in one.items())
    return _unbool(one) == _unbool(two)


def uniq(container: Any) -> bool:
    try:
        sort = sorted(_unbool(i) for i in container)
        for i, j in zip(sort, itertools.islice(sort, 1, None)):
            if equal(i, j):
                return False
    except (NotImplementedError, TypeError):
        seen: list = []
        for e in container:
            e = _unbool(e)
            for i in seen:
                if equal(i, e):
                    return False
            seen.append(e)
    return True


# -- compiling a schema into a check -----------------------------------------------------------

def compile_schema(schema: Any) -> Check:
    """A function that says whether an instance is valid under ``schema`` (a whole Draft
    2020-12 schema); raises Unsupported for what it does not implement."""
    if isinstance(schema, dict) and schema.get("$schema", DRAFT) != DRAFT:
        raise Unsupported(f"$schema {schema['$schema']!r}")
    return _compile(schema)


def _compile(schema: Any) -> Check:
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if not isinstance(schema, dict):
        raise Unsupported(f"schema {schema!r}")
    checks: list[Check] = []
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        build = _KEYWORDS.get(key)
        if build is None:
            raise Unsupported(f"keyword {key!r}")
        check = build(value, schema)
        if check is not None:
            checks.append(check)
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    return lambda x: all(check(x) for check in checks)


def _type(types: Any, schema: dict) -> Check:
    names = [types] if isinstance(types, str) else list(types)
    try:
        fns = tuple(TYPES[n] for n in names)
    except (KeyError, TypeError):
        raise Unsupported(f"type {types!r}") from None
    if len(fns) == 1:
        return fns[0]
    return lambda x: any(fn(x) for fn in fns)


def _enum(values: Any, schema: dict) -> Check:
    values = list(values)
    return lambda x: any(equal(each, x) for each in values)


def _const(value: Any, schema: dict) -> Check:
    return lambda x: equal(x, value)


def _number_bound(compare: Callable[[Any, Any], bool]) -> Callable[[Any, dict], Check]:
    def build(bound: Any, schema: dict) -> Check:
        return lambda x: not _is_number(x) or not compare(x, bound)
    return build


def _length(kind: type, compare: Callable[[int, int], bool]) -> Callable[[Any, dict], Check]:
    def build(limit: Any, schema: dict) -> Check:
        return lambda x: not isinstance(x, kind) or not compare(len(x), limit)
    return build


def _pattern(pattern: str, schema: dict) -> Check:
    try:
        search = re.compile(pattern).search
    except (re.error, TypeError):
        raise Unsupported(f"pattern {pattern!r}") from None
    return lambda x: not isinstance(x, str) or search(x) is not None


def _unique_items(flag: Any, schema: dict) -> Check | None:
    if not flag:
        return None
    return lambda x: not isinstance(x, list) or uniq(x)


def _items(items: Any, schema: dict) -> Check:
    if "prefixItems" in schema:
        raise Unsupported("prefixItems")
    if items is False:
        return lambda x: not isinstance(x, list) or not x
    item = _compile(items)
    return lambda x: not isinstance(x, list) or all(item(each) for each in x)


def _properties(properties: Any, schema: dict) -> Check:
    subs = tuple((name, _compile(sub)) for name, sub in properties.items())

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, sub in subs:
            if name in x and not sub(x[name]):
                return False
        return True
    return check


def _required(names: Any, schema: dict) -> Check:
    names = tuple(names)
    return lambda x: not isinstance(x, dict) or all(name in x for name in names)


def _additional_properties(additional: Any, schema: dict) -> Check | None:
    if "patternProperties" in schema:
        raise Unsupported("patternProperties")
    known = schema.get("properties", {})
    if additional is True or (not isinstance(additional, dict) and additional):
        return None        # jsonschema: a truthy non-schema allows everything
    if isinstance(additional, dict):
        sub = _compile(additional)
        return lambda x: not isinstance(x, dict) or all(
            sub(value) for key, value in x.items() if key not in known)
    return lambda x: not isinstance(x, dict) or all(key in known for key in x)


def _property_names(names: Any, schema: dict) -> Check:
    sub = _compile(names)
    return lambda x: not isinstance(x, dict) or all(sub(key) for key in x)


def _any_of(subschemas: Any, schema: dict) -> Check:
    subs = tuple(_compile(s) for s in subschemas)
    return lambda x: any(sub(x) for sub in subs)


def _one_of(subschemas: Any, schema: dict) -> Check:
    subs = tuple(_compile(s) for s in subschemas)
    return lambda x: sum(1 for sub in subs if sub(x)) == 1


_KEYWORDS: dict[str, Callable[[Any, dict], Check | None]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "minimum": _number_bound(lambda x, b: x < b),
    "maximum": _number_bound(lambda x, b: x > b),
    "exclusiveMinimum": _number_bound(lambda x, b: x <= b),
    "exclusiveMaximum": _number_bound(lambda x, b: x >= b),
    "minLength": _length(str, lambda n, m: n < m),
    "maxLength": _length(str, lambda n, m: n > m),
    "minItems": _length(list, lambda n, m: n < m),
    "maxItems": _length(list, lambda n, m: n > m),
    "minProperties": _length(dict, lambda n, m: n < m),
    "maxProperties": _length(dict, lambda n, m: n > m),
    "pattern": _pattern,
    "uniqueItems": _unique_items,
    "items": _items,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional_properties,
    "propertyNames": _property_names,
    "anyOf": _any_of,
    "oneOf": _one_of,
}
