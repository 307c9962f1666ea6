"""Schema validation of a loaded policy document, and what the compiler may still read after it.

`aifw policy check` lists every problem of a file in one run: schema problems do not stop the
compiler; the parts they touch are left out (`usable_data`), so the rest (unknown upstream names,
guard compile problems) is still checked without one mistake being reported twice.
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from . import fastschema
from .loader import Document, Path
from .schema import build_schema

if TYPE_CHECKING:
    # Imported where a document has schema errors only (fastschema.py says why).
    import jsonschema

# Values that are secrets: `aifw policy check` wants them written as ${VAR} but does not need
# them set (the check runs where the secrets are not: a laptop, an image build, CI).
SECRET_KEYS = frozenset({"apiKey", "fingerprintSecret", "readinessToken"})

# Top-level keys whose entries are compiled one by one: a problem in one entry leaves out that
# entry only (one upstream, one route, one guard, one scope, one listener setting).
_PER_ENTRY = frozenset({"guards", "routes", "scopes", "upstreams", "server", "identity"})

_VALIDATOR: jsonschema.Draft202012Validator | None = None
_FAST: fastschema.Check | None = None


def validator() -> jsonschema.Draft202012Validator:
    global _VALIDATOR
    if _VALIDATOR is None:
        import jsonschema
        _VALIDATOR = jsonschema.Draft202012Validator(build_schema())
    return _VALIDATOR


def fast_valid(data: Any) -> bool:
    """True when ``data`` has no schema error, known without jsonschema; False when it may
    have some (then ``validator()`` says which), or when the schema uses a keyword fastschema
    does not implement."""
    global _FAST
    if _FAST is None:
        try:
            _FAST = fastschema.compile_schema(build_schema())
        except fastschema.Unsupported:
            _FAST = lambda data: False   # noqa: E731 - every document goes to jsonschema
    return _FAST(data)


def _did_you_mean(word: Any, choices) -> str:
    hint = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _message(err: jsonschema.ValidationError) -> str:
    if err.validator == "enum" and isinstance(err.instance, str):
        return err.message + _did_you_mean(err.instance, err.validator_value)
    return err.message


def _within(path: Path, roots) -> bool:
    return any(path[:len(root)] == root for root in roots)


def secrets_as_warnings(doc: Document) -> None:
    """For a check: an unset variable in a secret value is a warning, not an error."""
    secret = {p for p in doc.unset if p and p[-1] in SECRET_KEYS}
    if not secret:
        return
    doc.problems = [p for p in doc.problems if not (p.path in secret and "is not set" in p.message)]
    for path in secret:
        for name in doc.unset.pop(path):
            doc.problem(path, f"{name} is not set here; the proxy needs it at start", warning=True)


def schema_problems(doc: Document) -> None:
    """Add a problem for every schema violation, except at values whose variable is unset
    (that variable's own problem says it once)."""
    if fast_valid(doc.data):
        return          # jsonschema would find no error either (tests/policy/test_fastschema.py)
    import jsonschema
    for err in sorted(validator().iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(err.absolute_path)
        if _within(path, doc.unset):
            continue
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = list((err.schema.get("properties") or {}).keys())
            for key in err.instance:
                if key not in known:
                    extra = _did_you_mean(key, known)
                    if known:
                        extra += f"; allowed: {', '.join(known)}"
                    doc.problem(path + (key,), f"unknown key {key!r}{extra}")
        elif err.validator in ("anyOf", "oneOf") and err.context:
            best = jsonschema.exceptions.best_match(err.context)
            doc.problem(path, _message(best) if best else err.message)
        else:
            doc.problem(path, _message(err))


def _unit(path: Path) -> Path:
    if len(path) > 1 and path[0] in _PER_ENTRY:
        return path[:2]
    return path[:1]


def usable_data(doc: Document) -> tuple[dict | None, set[Path]]:
    """The document without the entries that have errors (or unset variables), and the units
    left out; None when it is not a mapping."""
    # A problem of the whole document (a required key missing) leaves nothing out: the
    # compiler reads every key with a default.
    units = ({_unit(p.path) for p in doc.errors} | {_unit(p) for p in doc.unset}) - {()}
    if not isinstance(doc.data, dict):
        return None, units
    data = dict(doc.data)
    for unit in sorted(units, key=len):
        if len(unit) == 1:
            data.pop(unit[0], None)
            continue
        parent = data.get(unit[0])
        if isinstance(parent, list) and isinstance(unit[1], int) and unit[1] < len(parent):
            parent = list(parent)
            parent[unit[1]] = None           # keep the indexes of the entries after it
        elif isinstance(parent, dict):
            parent = {k: v for k, v in parent.items() if k != unit[1]}
        else:
            continue
        data[unit[0]] = parent
    return data, units
