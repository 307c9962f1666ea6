"""Every detection answer on every row of shared/datasets, one line per row, to diff two versions
of the engine (a speed change must leave every line as it was).

    .venv/bin/python -m bench.detection_fingerprint OUT.jsonl [--limit N] [--plain]
    diff before.jsonl after.jsonl

``--plain``: every rule matched the straightforward way (matcher.match_plain: every pattern
searched in every view, no prefilter or other shortcut), the yardstick for the same rule files.

Per row: the assessment of the row as a user turn (with its system prompt, when it has one) and
as a tool result under the default settings (rule ids, score, model probability), and which rules
of every set match it alone at paranoia level 4 (so rules the default policy leaves off are
checked too). Not a test: it reads the shared datasets, which are not in the repository.
"""
from __future__ import annotations

import argparse
import glob
import sys

import orjson

from proxy.detection.assess import assess
from proxy.detection.evaluate import read_placed_rows, row_slots
from proxy.detection.matcher import rule_matches
from proxy.detection.normalize import Prepared
from proxy.detection.settings import compile_settings

DATASETS = "/work/shared/datasets"
FILES = ("prompt_attacks/*.jsonl", "benign/*.jsonl", "train/*.jsonl")


def _verdict(a) -> list:
    return [a.attack, a.score, list(a.rule_ids), a.max_model_probability, a.timed_out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--limit", type=int, default=0, help="at most this many rows per file")
    parser.add_argument("--plain", action="store_true", help="match without any shortcut")
    args = parser.parse_args(argv)
    global rule_matches
    if args.plain:
        from proxy.detection import matcher, scanner
        scanner.match = lambda rules, prepared, budget=None: matcher.match_plain(rules, prepared)
        rule_matches = matcher.rule_matches_plain
    settings = compile_settings({})
    every = compile_settings({"paranoiaLevel": 4, "model": {"enabled": False}})
    text_rules = [r for r in every.detector.rules if r.context is None]
    paths = [p for pattern in FILES for p in sorted(glob.glob(f"{DATASETS}/{pattern}"))]
    per_file: dict[str, int] = {}
    with open(args.out, "wb") as out:
        for where, row in read_placed_rows(paths):
            path = where.rsplit(":", 1)[0]
            per_file[path] = per_file.get(path, 0) + 1
            if args.limit and per_file[path] > args.limit:
                continue
            text = row["text"]
            prepared = Prepared(text)
            record = {
                "row": where.removeprefix(DATASETS + "/"),
                "user": _verdict(assess(settings, row_slots(row))),
                "tool": _verdict(assess(settings, [("user", "Summarise this."), ("tool", text)])),
                "rules": [r.id for r in text_rules if rule_matches(r, prepared)],
            }
            out.write(orjson.dumps(record) + b"\n")
    sys.stdout.write(f"{sum(per_file.values())} rows read, written to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
