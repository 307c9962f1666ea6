"""``aifw eval`` and ``aifw rules test``: wired into proxy/cli.py through ``register``."""
from __future__ import annotations

import argparse
import os
import sys

import yaml


def _section(policy_path: str | None) -> tuple[dict, str]:
    """The policy's ``guards.injection`` section (defaults when absent) and the policy's folder."""
    if not policy_path:
        return {}, "."
    with open(policy_path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    section = dict(((doc.get("guards") or {}).get("injection")) or {})
    for key in ("enabled", "mode", "failureMode"):
        section.pop(key, None)
    return section, os.path.dirname(os.path.abspath(policy_path))


def cmd_eval(args: argparse.Namespace) -> int:
    """A missing or unreadable file, a bad row or a bad policy: one line, exit 2."""
    try:
        return _eval(args)
    except (ValueError, OSError, yaml.YAMLError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _eval(args: argparse.Namespace) -> int:
    if args.pii:
        if args.show_errors:
            raise ValueError("--show-errors reports injection rows; PII scores spans, not rows")
        from proxy.pii import evaluate as pii_evaluate   # the PII engineer's module, lazily
        return int(pii_evaluate.run(args.files, args.policy, sys.stdout) or 0)
    from .evaluate import run
    from .settings import compile_settings
    section, base = _section(args.policy)
    # the bar is for a person watching: a terminal, or asked for
    progress = not args.quiet and (args.progress or sys.stderr.isatty())
    run(args.files, compile_settings(section, base), sys.stdout, show_progress=progress,
        show_errors=args.show_errors)
    return 0


def run_rule_cases(rules_dir: str | None = None, out=sys.stdout) -> int:
    """Run every rule's cases; returns the number of failures (a rule without a match case fails)."""
    from .matcher import rule_matches
    from .normalize import Prepared
    from .context import load_vocab, pair_kinds
    from .rules import DEFAULT_RULES_DIR, load_rules
    failures = total = 0
    vocab = load_vocab(str(rules_dir or DEFAULT_RULES_DIR))

    def hit(rule, case) -> bool:
        if rule.context is not None:        # a (system prompt, user turn) pair
            return rule.context in pair_kinds(case[0], case[1], vocab)
        return rule_matches(rule, Prepared(case))

    for set_name, rules in load_rules(rules_dir).items():
        for rule in rules:
            problems = []
            if not rule.match_cases:
                problems.append("no match case")
            problems += [f"match case {i} did not match"
                         for i, case in enumerate(rule.match_cases) if not hit(rule, case)]
            problems += [f"no_match case {i} matched"
                         for i, case in enumerate(rule.no_match_cases) if hit(rule, case)]
            total += 1
            failures += bool(problems)
            status = "ok" if not problems else "FAIL: " + "; ".join(problems)
            out.write(f"{set_name:10} {rule.id:8} {status}\n")
    out.write(f"{total - failures} passed, {failures} failed\n")
    return failures


def cmd_rules_test(args: argparse.Namespace) -> int:
    from .rules import RuleError
    try:
        return 1 if run_rule_cases(args.rules_dir) else 0
    except RuleError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "eval", help="detection quality per family on JSONL data sets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Scores every row with the policy's injection settings and prints, per family\n"
                    "(subset), the detection rate of attacks and the false-positive rate of benign rows.\n\n"
                    "Row format, one JSON object per line:\n"
                    '  {"text": "...", "label": 1, "subset": "jailbreak", "system": "..."}\n'
                    "  text    the user turn (string, required)\n"
                    "  label   1 attack, 0 benign (required)\n"
                    "  subset  the family the row is reported under (default: its 'source', else 'all')\n"
                    "  system  optional system prompt sent beside the text ('system_prompt' is read too)\n\n"
                    "With --pii: rows are {\"text\": ..., \"spans\": [{\"entity_type\", \"start\", "
                    "\"end\"}]} (docs/pii.md).\nExit status: 0 done; 2 a file is missing or unreadable, a row\n"
                    "breaks the format, or the policy cannot be read (one line says which).")
    ev.add_argument("files", nargs="+", metavar="FILE.jsonl")
    ev.add_argument("--policy", help="policy file whose guards.injection settings to use")
    ev.add_argument("--pii", action="store_true", help="evaluate PII detection instead")
    ev.add_argument("--show-errors", action="store_true",
                    help="also list the misses (attacks not flagged) and false positives (benign rows "
                         "flagged): file:line, subset, score, rules and the text")
    ev.add_argument("--progress", action="store_true",
                    help="draw the progress bar on stderr even when it is not a terminal")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)
    rules = subparsers.add_parser("rules", help="detection rules").add_subparsers(
        dest="rules_command", required=True)
    test = rules.add_parser("test", help="run every rule's test cases")
    test.add_argument("--rules-dir", help="rules directory (default: the shipped rules/)")
    test.set_defaults(func=cmd_rules_test)
