"""Span-level precision and recall per entity type on JSONL files with character spans.

Each line: ``{"text": ..., "spans": [{"entity_type", "start", "end"}, ...]}``. Only entity types
that both the detector reports and the data labels are scored (a dataset's PERSON or DATE_TIME
labels say nothing about recognisers we do not have). A prediction is a true positive when a
gold span of the same type has exactly the same boundaries (``exact``), or, in the lenient
column, when it overlaps one that no other prediction took (``overlap``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import IO, Iterable

import orjson
import yaml

from .config import compile_config


@dataclass(slots=True)
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tp_overlap: int = 0
    fp_overlap: int = 0
    fn_overlap: int = 0

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    def precision(self, overlap: bool = False) -> float:
        return self._ratio(*(self.tp_overlap, self.tp_overlap + self.fp_overlap) if overlap else (self.tp, self.tp + self.fp))

    def recall(self, overlap: bool = False) -> float:
        return self._ratio(*(self.tp_overlap, self.tp_overlap + self.fn_overlap) if overlap else (self.tp, self.tp + self.fn))


@dataclass(slots=True)
class Report:
    tallies: dict[str, Tally] = field(default_factory=dict)
    rows: int = 0

    def markdown(self) -> str:
        lines = [f"rows: {self.rows}", "",
                 "| entity | gold | predicted | precision | recall | precision (overlap) | recall (overlap) |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for name in sorted(self.tallies):
            t = self.tallies[name]
            lines.append(f"| {name} | {t.tp + t.fn} | {t.tp + t.fp} | {t.precision():.3f} | {t.recall():.3f} | "
                         f"{t.precision(True):.3f} | {t.recall(True):.3f} |")
        return "\n".join(lines) + "\n"


def _load_section(policy_path: str | None) -> tuple[dict, str]:
    if not policy_path:
        return {}, "."
    import os
    with open(policy_path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    return dict(((doc.get("guards") or {}).get("pii") or {})), os.path.dirname(os.path.abspath(policy_path))


def evaluate(lines: Iterable[bytes | str], section: dict | None = None, policy_dir: str = ".") -> Report:
    cfg = compile_config(section or {}, policy_dir)
    detector = cfg.request_detector
    rows = [orjson.loads(line) for line in lines if line.strip()]
    gold_types = {s["entity_type"] for row in rows for s in row.get("spans", ())}
    scored = sorted(gold_types & set(detector.entities)) if detector else []
    report = Report({name: Tally() for name in scored}, len(rows))
    for row in rows:
        gold = [(s["start"], s["end"], s["entity_type"]) for s in row.get("spans", ()) if s["entity_type"] in report.tallies]
        pred = [(s.start, s.end, s.entity) for s in detector.detect(row["text"]) if s.entity in report.tallies] if detector else []
        exact_gold = set(gold)
        for p in pred:
            t = report.tallies[p[2]]
            if p in exact_gold:
                t.tp += 1
            else:
                t.fp += 1
        for g in exact_gold - set(pred):
            report.tallies[g[2]].fn += 1
        free = list(gold)
        for p in pred:
            hit = next((g for g in free if g[2] == p[2] and g[0] < p[1] and p[0] < g[1]), None)
            if hit is None:
                report.tallies[p[2]].fp_overlap += 1
            else:
                free.remove(hit)
                report.tallies[p[2]].tp_overlap += 1
        for g in free:
            report.tallies[g[2]].fn_overlap += 1
    return report


def run(paths: list[str], policy_path: str | None, out: IO[str] | None = None) -> int:
    """``aifw eval --pii FILE.jsonl ...``: print one table per file; 0 on success, 2 on bad input."""
    out = out or sys.stdout
    try:
        section, policy_dir = _load_section(policy_path)
        for path in paths:
            with open(path, "rb") as fh:
                report = evaluate(fh, section, policy_dir)
            out.write(f"## {path}\n\n{report.markdown()}\n")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        out.write(f"aifw eval --pii: {exc}\n")
        return 2
    return 0
