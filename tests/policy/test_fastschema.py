"""proxy/policy/fastschema.py against jsonschema: the same verdict on every document, so
`schema_problems` (which asks jsonschema only when fastschema says "invalid") reports exactly
what it reported when it always asked jsonschema."""
from __future__ import annotations

import copy
import glob
import random

import jsonschema
import pytest

from proxy.policy import fastschema, validate
from proxy.policy.loader import Document, load_file, load_text
from proxy.policy.schema import build_schema
from tests.docs_examples import examples

SCHEMA = build_schema()
JSONSCHEMA = jsonschema.Draft202012Validator(SCHEMA)
FAST = fastschema.compile_schema(SCHEMA)
ENV = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "AIFW_REDIS_URL": "redis://127.0.0.1:1/0",
       "HOOK_TOKEN": "hk-x", "AIFW_UPSTREAM_URL": "http://127.0.0.1:9", "AIFW_ANTHROPIC_URL": "http://127.0.0.1:9",
       "AIFW_KEYS_FILE": "keys.yaml", "AIFW_FINGERPRINT_SECRET": "s" * 32, "AIFW_READINESS_TOKEN": "t" * 32}


def _policies() -> list[tuple[str, object]]:
    out = []
    for path in sorted(glob.glob("policies/*.yaml") + glob.glob("bench/policies/*.yaml")):
        out.append((path, load_file(path, ENV)[0].data))
    for example in examples(("yaml",)):
        if example.marker is None:
            out.append((example.id, load_text(example.text, example.id, ENV).data))
    return out


POLICIES = _policies()


def _subschemas(schema, path="#"):
    """Every schema node, with where it sits."""
    yield path, schema
    if not isinstance(schema, dict):
        return
    for key in ("properties",):
        for name, sub in (schema.get(key) or {}).items():
            yield from _subschemas(sub, f"{path}/{key}/{name}")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), (dict, bool)):
            yield from _subschemas(schema[key], f"{path}/{key}")
    for key in ("anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or ()):
            yield from _subschemas(sub, f"{path}/{key}/{i}")


# Values of every JSON type and the corners jsonschema treats specially (bool is not an integer,
# 1.0 is one, True is not 1 in an enum), plus ones YAML produces (dates).
SCALARS = [None, True, False, 0, 1, -1, 2, 1.0, 0.5, -0.5, 1e9, 65536, 65535, 1024, 1023, 16, 15,
           4096, 4097, "", "a", "ab", "abcd", "A1", "US", "us", "USA", "x" * 17, "https://x",
           "http://x", "ftp://x", "1s", "10ms", "2m", "1h", "1d", "5MiB", "1KB", "bogus", "*",
           "enforce", "monitor", "closed", "open", "block", "pass", "replace", "none", "EMAIL",
           "email", "openai", "anthropic", "memory", "redis", "stdout", "file", "redacted",
           "full", "user", "tool", "system", "PI-1001", "0 0 * * *", [], {}, [1], ["a"],
           ["a", "a"], [1, True], [0, False], [1, 1.0], {"a": 1}, {"enabled": True},
           __import__("datetime").date(2024, 1, 1)]


def _candidates(schema) -> list:
    """Values near what ``schema`` accepts and refuses."""
    values = list(SCALARS)
    if not isinstance(schema, dict):
        return values
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            b = schema[key]
            values += [b, b - 1, b + 1, b - 0.5, b + 0.5, float(b)]
    for key in ("minLength", "minItems", "maxItems", "minProperties"):
        if key in schema:
            n = schema[key]
            values += ["x" * max(n - 1, 0), "x" * n, ["x"] * max(n - 1, 0), ["x"] * n, list(range(n + 1)),
                       {str(i): i for i in range(max(n - 1, 0))}, {str(i): i for i in range(n)}]
    for value in schema.get("enum") or ():
        values += [value, str(value).upper(), str(value) + "x", [value]]
    if "const" in schema:
        values += [schema["const"], True, 1.0, str(schema["const"])]
    props = schema.get("properties") or {}
    if props:
        required = {k: _example(props[k]) for k in schema.get("required") or ()}
        values += [required, {**required, "unknownKey": 1}, {**required, "UNKNOWN": {}}]
        for name, sub in props.items():
            for v in _candidates_shallow(sub):
                values.append({**required, name: v})
        values.append({k: _example(v) for k, v in props.items()})
    if isinstance(schema.get("items"), dict):
        for v in _candidates_shallow(schema["items"]):
            values += [[v], [v, v], [_example(schema["items"]), v]]
    if isinstance(schema.get("additionalProperties"), dict):
        for v in _candidates_shallow(schema["additionalProperties"]):
            values += [{"name": v}, {"a b": v}, {"x": _example(schema["additionalProperties"]), "y": v}]
    return values


def _candidates_shallow(schema) -> list:
    values = [None, True, 0, -1, 1.5, "", "x", [], {}, ["x", "x"], _example(schema)]
    if isinstance(schema, dict):
        values += list(schema.get("enum") or ())[:3]
        for key in ("minimum", "maximum", "exclusiveMinimum"):
            if key in schema:
                values += [schema[key], schema[key] - 1, schema[key] + 1]
    return values


def _example(schema):
    """A value ``schema`` probably accepts (a start for mutations)."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _example(schema[key][0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: _example(props[k]) for k in schema.get("required") or () if k in props}
    if kind == "array":
        return [_example(schema["items"])] * schema.get("minItems", 0) if isinstance(schema.get("items"), dict) else []
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return True
    if kind == "string":
        return "https://x" if schema.get("pattern") == "^https?://" else "x" * schema.get("minLength", 1)
    return None


def _mutations(data, rng: random.Random, n: int):
    """``n`` copies of ``data``, each with one to three random edits anywhere in it."""
    for _ in range(n):
        doc = copy.deepcopy(data)
        for _ in range(rng.randint(1, 3)):
            doc = _mutate(doc, rng)
        yield doc


def _mutate(node, rng: random.Random):
    if isinstance(node, dict) and node and rng.random() < 0.7:
        key = rng.choice(list(node))
        action = rng.random()
        if action < 0.15:
            node.pop(key)
        elif action < 0.25:
            node[key + "x"] = node.pop(key)
        elif action < 0.3:
            node[rng.choice(["extra", "Mode", "enabled"])] = rng.choice(SCALARS)
        else:
            node[key] = _mutate(node[key], rng)
        return node
    if isinstance(node, list) and node and rng.random() < 0.7:
        i = rng.randrange(len(node))
        action = rng.random()
        if action < 0.15:
            node.pop(i)
        elif action < 0.3:
            node.append(copy.deepcopy(node[i]))
        else:
            node[i] = _mutate(node[i], rng)
        return node
    if isinstance(node, str) and rng.random() < 0.5:
        return rng.choice([node.upper(), node + "x", node[:-1], "", " " + node])
    if isinstance(node, bool) and rng.random() < 0.5:
        return rng.choice([int(node), str(node).lower(), not node])
    if isinstance(node, (int, float)) and rng.random() < 0.5:
        return rng.choice([-node, node + 1, node - 1, float(node) + 0.5, str(node), 0, True])
    return copy.deepcopy(rng.choice(SCALARS))


def _jsonschema_valid(schema, instance) -> bool:
    return next(jsonschema.Draft202012Validator(schema).iter_errors(instance), None) is None


def test_the_shipped_schema_is_fully_supported():
    # A keyword fastschema lacks would send every check through jsonschema again (slower, same
    # results): this keeps the fast path in use.
    fastschema.compile_schema(SCHEMA)


@pytest.mark.parametrize("where,schema", list(_subschemas(SCHEMA)), ids=lambda v: v if isinstance(v, str) else "")
def test_every_subschema_agrees_with_jsonschema(where, schema):
    fast = fastschema.compile_schema({"$schema": fastschema.DRAFT, **schema} if isinstance(schema, dict) else schema)
    check = jsonschema.Draft202012Validator(schema)
    for value in _candidates(schema):
        assert fast(value) == (next(check.iter_errors(value), None) is None), (where, value)


def test_the_policies_we_ship_and_document_are_valid_both_ways():
    assert len(POLICIES) >= 15
    for name, data in POLICIES:
        assert FAST(data) and not list(JSONSCHEMA.iter_errors(data)), name


def test_mutated_policies_get_the_same_verdict_and_the_same_problems():
    rng = random.Random(14)
    seen = {True: 0, False: 0}
    for name, data in POLICIES:
        for doc in _mutations(data, rng, 300):
            fast = FAST(doc)
            assert fast == (next(JSONSCHEMA.iter_errors(doc), None) is None), (name, doc)
            seen[fast] += 1
            # schema_problems through the fast path, and through jsonschema alone as before
            assert _problems(doc, fast=True) == _problems(doc, fast=False), (name, doc)
    assert min(seen.values()) > 500, seen       # both verdicts well covered


def _problems(data, fast: bool) -> list[str]:
    doc = Document(file="p.yaml", data=data)
    saved = validate._FAST
    validate._FAST = FAST if fast else (lambda data: False)
    try:
        validate.schema_problems(doc)
    finally:
        validate._FAST = saved
    return [str(p) for p in doc.problems]


@pytest.mark.parametrize("keyword,build", [
    ("minimum", fastschema._number_bound(lambda x, b: x <= b)),          # off by one
    ("additionalProperties", lambda value, schema: None),                  # unknown keys pass
    ("required", lambda value, schema: None),                              # missing keys pass
])
def test_a_planted_bug_changes_verdicts(monkeypatch, keyword, build):
    # The comparison above can fail: a checker with one keyword wrong disagrees on mutations.
    monkeypatch.setitem(fastschema._KEYWORDS, keyword, build)
    fast = fastschema.compile_schema(SCHEMA)
    rng = random.Random(14)
    assert any(fast(doc) != (next(JSONSCHEMA.iter_errors(doc), None) is None)
               for _, data in POLICIES for doc in _mutations(data, rng, 300))


@pytest.mark.parametrize("schema,instance", [
    ({"type": "integer"}, 1.0), ({"type": "integer"}, True), ({"type": "number"}, False),
    ({"enum": [1]}, True), ({"enum": [True]}, 1), ({"const": 0}, False), ({"enum": [[1]]}, [True]),
    ({"uniqueItems": True}, [1, True]), ({"uniqueItems": True}, [1, 1.0]), ({"uniqueItems": True}, [{"a": 1}, {"a": 1}]),
    ({"uniqueItems": True}, [[1], [True]]), ({"pattern": "^a"}, "ba"), ({"pattern": "a$"}, "a\n"),
    ({"minLength": 2}, "é"), ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, 2: 3}),
    ({"propertyNames": {"pattern": "^a"}}, {1: 1}), ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 1), ({"anyOf": [{"minimum": 3}, {"type": "string"}]}, 2),
    ({"items": False}, []), ({"items": False}, [1]), ({"minimum": 1}, float("nan")),
    ({"required": ["a"]}, ["a"]), ({"maxItems": 0}, []), ({"minProperties": 1}, {}),
])
def test_corners_agree_with_jsonschema(schema, instance):
    full = {"$schema": fastschema.DRAFT, **schema}
    assert fastschema.compile_schema(full)(instance) == _jsonschema_valid(full, instance)


@pytest.mark.parametrize("schema", [
    {"$ref": "#/x"}, {"patternProperties": {"^a": {}}, "additionalProperties": False},
    {"items": {}, "prefixItems": [{}]}, {"format": "email"}, {"type": "decimal"},
    {"$schema": "http://json-schema.org/draft-07/schema#"}, {"if": {}, "then": {}},
])
def test_unsupported_schemas_are_refused(schema):
    with pytest.raises(fastschema.Unsupported):
        fastschema.compile_schema(schema)


def test_an_unsupported_schema_sends_every_document_to_jsonschema(monkeypatch):
    monkeypatch.setattr(validate, "_FAST", None)
    monkeypatch.setattr(validate, "build_schema", lambda: {"type": "object", "if": {}, "required": ["v"]})
    assert validate.fast_valid({"v": 1}) is False
