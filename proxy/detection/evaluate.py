"""Detection quality on JSONL data sets, reported per family (``subset``), never pooled.

Each row has ``text``, ``label`` (1 attack, 0 benign) and ``subset``; an optional
``system_prompt`` becomes a system slot beside the user slot, as the proxy would see it.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

import orjson

from .assess import assess
from .settings import InjectionSettings


@dataclass(slots=True)
class FamilyResult:
    subset: str
    label: int
    rows: int = 0
    flagged: int = 0

    @property
    def rate(self) -> float:
        return self.flagged / self.rows if self.rows else 0.0

    @property
    def metric(self) -> str:
        return "detection" if self.label == 1 else "false_positive"


def read_rows(paths: Iterable[str]) -> list[dict]:
    rows = []
    for path in paths:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = orjson.loads(line)
                if "text" not in row or "label" not in row:
                    raise ValueError(f"{path}:{n}: row needs 'text' and 'label'")
                rows.append(row)
    return rows


def row_slots(row: dict) -> list[tuple[str, str]]:
    slots = []
    if row.get("system_prompt"):
        slots.append(("system", row["system_prompt"]))
    slots.append(("user", row["text"]))
    return slots


class Progress:
    """A plain progress bar on stderr (no dependency; redraws about every 1%)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30):
        self.total, self.stream, self.width = max(total, 1), stream, width
        self.step = max(1, total // 100)

    def update(self, done: int) -> None:
        if done % self.step and done != self.total:
            return
        filled = self.width * done // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def evaluate(rows: list[dict], predict: Callable[[dict], bool],
             progress: Progress | None = None) -> list[FamilyResult]:
    fams: dict[tuple[str, int], FamilyResult] = {}
    for i, row in enumerate(rows, 1):
        key = (str(row.get("subset") or row.get("source") or "all"), int(row["label"]))
        fam = fams.setdefault(key, FamilyResult(*key))
        fam.rows += 1
        fam.flagged += bool(predict(row))
        if progress:
            progress.update(i)
    return sorted(fams.values(), key=lambda f: (-f.label, f.subset))


def settings_predictor(settings: InjectionSettings) -> Callable[[dict], bool]:
    return lambda row: assess(settings, row_slots(row)).attack


def format_table(results: list[FamilyResult]) -> str:
    lines = [f"{'subset':34} {'label':>5} {'rows':>6} {'flagged':>8}  metric",
             "-" * 72]
    for r in results:
        lines.append(f"{r.subset:34} {r.label:>5} {r.rows:>6} {r.flagged:>8}  "
                     f"{r.metric} {100 * r.rate:5.1f}%")
    return "\n".join(lines)


def run(paths: list[str], settings: InjectionSettings, out: TextIO = sys.stdout,
        show_progress: bool = True) -> list[FamilyResult]:
    rows = read_rows(paths)
    results = evaluate(rows, settings_predictor(settings),
                       Progress(len(rows)) if show_progress else None)
    out.write(format_table(results) + "\n")
    return results
