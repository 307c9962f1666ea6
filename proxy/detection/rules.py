"""Detection rules as data: load the YAML rule files, validate, compile and vet them.

A rule file holds one rule set::

    set: injection
    description: ...
    rules:
      - id: PI-1001
        message: Instruction override ("ignore previous instructions")
        severity: critical        # critical=5 error=4 warning=3 notice=2, or an integer
        paranoia: 1               # 1..4: the policy's paranoia level enables rules <= it
        transforms: [normalized, collapsed, decoded]   # views of the text to match
        roles: [user, tool, document]                  # optional: slot roles it applies to
        direction: request        # request (default) or response
        phrases: [ignore previous instructions]        # literal phrase list (word bounded)
        fuzzy: 1                  # optional: edits tolerated per phrase (misspellings)
        patterns: ['...']         # regular expressions (the `regex` package)
        signal: invisible         # or instead a computed evasion signal (see SIGNALS)
        min: 3                    # with ``signal``: least count that fires
        requires: [IND-4003]      # optional: counts only when one of these rules fired too
        cases: {match: [...], no_match: [...]}

Every pattern is vetted at load: nested quantifiers are refused outright and each compiled
pattern must finish on adversarial inputs within a deadline, so no rule can backtrack
catastrophically on the proxy's hot path.
"""
from __future__ import annotations

import functools
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import yaml

from .. import precompiled, yamlfast
from ..policy.sources import Reader, read_plain
from .normalize import VIEWS

SEVERITIES = {"critical": 5, "error": 4, "warning": 3, "notice": 2}
# Checks of the user turn against the request's system prompt (proxy/detection/context.py).
CONTEXT_KINDS = ("secret_value", "protected_secret", "protected_personal", "protected_entity",
                 "forbidden_topic", "forbidden_topic_strong", "rule_change", "disclosure_request",
                 "wrapped_request")
SIGNALS = ("invisible", "tags", "mixed_script", "template_tokens", "adversarial_suffix",
           "gibberish_suffix", "secondary_task", "embedded_task", "filler_suffix",
           "assistant_request")
RULE_KEYS = {"id", "message", "severity", "paranoia", "transforms", "roles", "direction",
             "phrases", "fuzzy", "patterns", "signal", "min", "cases", "flags", "context",
             "requires"}
# A checkout has rules/ beside proxy/; an installed package (the container image) has no such
# sibling, so the image names the directory in AIFW_RULES_DIR.
DEFAULT_RULES_DIR = Path(os.environ.get("AIFW_RULES_DIR") or Path(__file__).resolve().parents[2] / "rules")

# A group that ends in a quantifier and is itself quantified: (a+)+, (\w*\s?)*, (x{2,}){3,}.
_NESTED_QUANTIFIER = regex.compile(r"[+*}]\)[+*{]|[+*}]\)\?[+*{]")
# (distinct strings only: "aaaa" * 5000 is "a" * 20000, and searching it twice tells nothing new)
_ADVERSARIAL = tuple(dict.fromkeys(s * n for s, n in (
    ("a", 20000), (" ", 20000), ("a ", 10000), ("ignore ", 3000), ("\n", 20000),
    ("ab1!", 5000), ("aaaa", 5000),
))) + ("a" * 20000 + "!", "ignore " * 3000 + "!")
VET_SECONDS = 0.25


class RuleError(ValueError):
    """A rule file is invalid; the message names the file and the rule id, never input text."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    set: str
    message: str
    score: int
    paranoia: int
    views: tuple[str, ...]
    roles: frozenset[str] | None
    direction: str
    regexes: tuple[Any, ...]        # compiled regex.Pattern objects
    signal: str | None
    min_count: int
    match_cases: tuple[str, ...]
    no_match_cases: tuple[str, ...]
    # The phrase list (its pattern is the first of ``regexes``) and its fuzziness: the literal
    # prefilters (``aids``) are derived from them and from the other patterns' sources.
    phrases: tuple[str, ...] = ()
    fuzzy: int = 0
    folded_case: bool = True      # compiled case-insensitive (no ``flags: case``)
    # A context rule (``context:`` kind) judges the user turn against the system prompt; its
    # cases are (system, user) pairs. It never matches a text on its own.
    context: str | None = None
    # A cue that counts only beside one of these rules on the same slot (matcher.match runs it
    # after the others, and only then): "the data holds a request" says little alone.
    requires: frozenset[str] = frozenset()


def _edge_boundary(ch: str) -> bool:
    """Word boundaries make sense only for scripts written with spaces between words."""
    if not (ch.isalnum() or ch == "_"):
        return False
    name = unicodedata.name(ch, "")
    return not any(s in name for s in ("CJK", "HIRAGANA", "KATAKANA", "THAI", "IDEOGRAPH"))


def phrase_pattern(phrases: list[str], fuzzy: int) -> str:
    alts = []
    for phrase in sorted({p.casefold().strip() for p in phrases}, key=len, reverse=True):
        words = phrase.split()
        body = r"\s+".join(regex.escape(w) for w in words)
        if fuzzy and len(phrase) >= 10 and len(words) > 1:
            # Edits are tolerated after an exact first word: the literal anchor lets the engine
            # skip ahead, whereas a fully fuzzy phrase is tried at every position (10x slower).
            rest = r"\s+".join(regex.escape(w) for w in words[1:])
            body = f"{regex.escape(words[0])}\\s+(?:{rest}){{e<={fuzzy}}}"
        left = r"\b" if _edge_boundary(phrase[0]) else ""
        right = r"\b" if _edge_boundary(phrase[-1]) else ""
        alts.append(f"{left}{body}{right}")
    return "(?:" + "|".join(alts) + ")"


def vet_pattern(source: str, compiled: Any, where: str) -> None:
    if _NESTED_QUANTIFIER.search(source):
        raise RuleError(f"{where}: nested quantifier (catastrophic backtracking risk)")
    for probe in _ADVERSARIAL:
        try:
            compiled.search(probe, timeout=VET_SECONDS)
        except TimeoutError:
            raise RuleError(f"{where}: pattern too slow on adversarial input") from None


def _severity(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise RuleError(f"{where}: severity must be a name or an integer")
    if isinstance(value, int) and 0 < value <= 100:
        return value
    if isinstance(value, str) and value in SEVERITIES:
        return SEVERITIES[value]
    raise RuleError(f"{where}: severity must be one of {sorted(SEVERITIES)} or 1..100")


def compile_rule(raw: dict, set_name: str, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: a rule must be a mapping")
    unknown = set(raw) - RULE_KEYS
    rid = str(raw.get("id", "?"))
    where = f"{where}: rule {rid}"
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("id", "message", "severity", "paranoia"):
        if key not in raw:
            raise RuleError(f"{where}: missing {key}")
    paranoia = raw["paranoia"]
    if not isinstance(paranoia, int) or not 1 <= paranoia <= 4:
        raise RuleError(f"{where}: paranoia must be 1..4")
    views = tuple(raw.get("transforms") or ("normalized",))
    bad = [v for v in views if v not in VIEWS]
    if bad:
        raise RuleError(f"{where}: unknown transforms {bad}; known: {list(VIEWS)}")
    direction = raw.get("direction", "request")
    if direction not in ("request", "response"):
        raise RuleError(f"{where}: direction must be request or response")
    signal = raw.get("signal")
    sources: list[str] = []
    phrases: list[str] = []
    if raw.get("phrases"):
        phrases = [str(p) for p in raw["phrases"]]
        sources.append(phrase_pattern(phrases, int(raw.get("fuzzy", 0))))
    sources.extend(str(p) for p in raw.get("patterns") or ())
    if signal is not None and signal not in SIGNALS:
        raise RuleError(f"{where}: unknown signal {signal!r}; known: {list(SIGNALS)}")
    context = raw.get("context")
    if context is not None:
        if context not in CONTEXT_KINDS:
            raise RuleError(f"{where}: unknown context {context!r}; known: {list(CONTEXT_KINDS)}")
        if signal or sources:
            raise RuleError(f"{where}: a context rule takes no phrases, patterns or signal")
        return _context_rule(raw, rid, set_name, where, context, paranoia, direction)
    if bool(signal) == bool(sources):
        raise RuleError(f"{where}: give either phrases/patterns or a signal")
    flags = regex.V1 | regex.I if raw.get("flags") != "case" else regex.V1
    compiled = []
    for i, src in enumerate(sources):
        try:
            pat = regex.compile(src, flags)
        except regex.error as exc:
            raise RuleError(f"{where}: pattern {i}: {exc}") from None
        vet_pattern(src, pat, f"{where}: pattern {i}")
        compiled.append(pat)
    cases = raw.get("cases") or {}
    if set(cases) - {"match", "no_match"}:
        raise RuleError(f"{where}: cases take only match and no_match")
    roles = raw.get("roles")
    match_cases = tuple(str(c) for c in cases.get("match") or ())
    return Rule(
        id=rid, set=set_name, message=str(raw["message"]),
        score=_severity(raw["severity"], where), paranoia=paranoia, views=views,
        roles=frozenset(roles) if roles else None, direction=direction,
        regexes=tuple(compiled), signal=signal, min_count=int(raw.get("min", 1)),
        match_cases=match_cases,
        no_match_cases=tuple(str(c) for c in cases.get("no_match") or ()),
        phrases=tuple(phrases), fuzzy=int(raw.get("fuzzy", 0)),
        folded_case=raw.get("flags") != "case",
        requires=frozenset(str(r) for r in raw.get("requires") or ()),
    )


def _pair(case: Any, where: str) -> tuple[str, str]:
    if not isinstance(case, dict) or set(case) != {"system", "user"}:
        raise RuleError(f"{where}: a context rule's cases are {{system: ..., user: ...}} pairs")
    return str(case["system"]), str(case["user"])


def _context_rule(raw: dict, rid: str, set_name: str, where: str, context: str, paranoia: int,
                  direction: str) -> Rule:
    cases = raw.get("cases") or {}
    if set(cases) - {"match", "no_match"}:
        raise RuleError(f"{where}: cases take only match and no_match")
    roles = raw.get("roles")
    return Rule(
        id=rid, set=set_name, message=str(raw["message"]), score=_severity(raw["severity"], where),
        paranoia=paranoia, views=("normalized",), roles=frozenset(roles) if roles else None,
        direction=direction, regexes=(), signal=None, min_count=1,
        match_cases=tuple(_pair(c, where) for c in cases.get("match") or ()),
        no_match_cases=tuple(_pair(c, where) for c in cases.get("no_match") or ()),
        context=context,
    )


def load_file(path: Path, read: Reader = read_plain, aids: bool = False) -> tuple[str, tuple[Rule, ...]]:
    """``aids``: also what only matching needs (the literal prefilters, ruleaids.py), built or
    loaded now; without it they are built on first use, so `aifw policy check` validates a rule
    file without building them."""
    name, raw = str(path), read(str(path))
    got = _load_file_cached(name, raw)
    if aids:
        from . import ruleaids
        ruleaids.load_for_file(name, raw, got[1])
    return got


@functools.lru_cache(maxsize=64)
def _load_file_cached(name: str, raw: bytes) -> tuple[str, tuple[Rule, ...]]:
    """Vetting every pattern costs about a second; a policy reload with unchanged rule files
    reuses the compiled (immutable) rules, and a new process its compiled copy on disk. Keyed
    by content: the bytes compiled are the bytes the policy's digest covers."""
    return precompiled.load_or_build("rules", name.encode() + b"\0" + raw,
                                     lambda: _compile_file(Path(name), raw))


def _compile_file(path: Path, raw: bytes) -> tuple[str, tuple[Rule, ...]]:
    try:
        doc = yamlfast.safe_load(raw.decode("utf-8"))
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise RuleError(f"{path}: expected a mapping with 'set' and a 'rules' list")
    set_name = str(doc.get("set") or path.stem)
    rules = tuple(compile_rule(r, set_name, str(path)) for r in doc["rules"])
    return set_name, rules


def load_rules(rules_dir: str | Path | None = None, read: Reader = read_plain,
               aids: bool = False) -> dict[str, tuple[Rule, ...]]:
    """Every ``*.yaml`` rule file in ``rules_dir``: set name -> rules. Ids must be unique.
    ``read`` reads each file (a policy compile passes its SourceRecorder's); ``aids``: see
    ``load_file``."""
    base = Path(rules_dir) if rules_dir else DEFAULT_RULES_DIR
    if not base.is_dir():
        raise RuleError(f"{base}: rules directory not found")
    sets: dict[str, tuple[Rule, ...]] = {}
    seen: set[str] = set()
    for path in sorted(base.glob("*.yaml")):
        name, rules = load_file(path, read, aids)
        for rule in rules:
            if rule.id in seen:
                raise RuleError(f"{path}: duplicate rule id {rule.id}")
            seen.add(rule.id)
        sets[name] = sets.get(name, ()) + rules
    by_id = {r.id: r for rules in sets.values() for r in rules}
    for rule in by_id.values():
        for need in sorted(rule.requires):
            # one level only: matcher.match evaluates every rule with ``requires`` after the rest
            if need not in by_id or by_id[need].requires:
                raise RuleError(f"{base}: rule {rule.id} requires {need}, which is not a rule "
                                "without requires")
    return sets
