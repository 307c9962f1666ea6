"""Detection quality on JSONL data sets, reported per family (``subset``), never pooled.

Each row (one JSON object per line) has ``text`` (the user turn), ``label`` (1 attack, 0 benign)
and ``subset`` (the family it is reported under; ``source`` is read when there is no subset,
else "all"); an optional ``system`` (or ``system_prompt``) becomes a system slot beside the user
slot, as the proxy would see it. A file that cannot be read or a row that breaks this format is
a ``ValueError``/``OSError`` naming the file and line.
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


def _checked(row: object, where: str) -> dict:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a JSON object")
    if not isinstance(row.get("text"), str):
        raise ValueError(f"{where}: row needs 'text' (a string)")
    if row.get("label") not in (0, 1) or isinstance(row.get("label"), float):
        raise ValueError(f"{where}: row needs 'label' 1 (attack) or 0 (benign)")
    system = row.get("system", row.get("system_prompt"))
    if system is not None and not isinstance(system, str):
        raise ValueError(f"{where}: 'system' must be a string")
    return row


def read_placed_rows(paths: Iterable[str]) -> list[tuple[str, dict]]:
    """(``file:line``, row) of every row in ``paths``, checked against the row format."""
    rows = []
    for path in paths:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise ValueError(f"{path}:{n}: not a JSON object") from None
                rows.append((f"{path}:{n}", _checked(row, f"{path}:{n}")))
    return rows


def read_rows(paths: Iterable[str]) -> list[dict]:
    return [row for _, row in read_placed_rows(paths)]


def row_slots(row: dict) -> list[tuple[str, str]]:
    slots = []
    system = row.get("system") or row.get("system_prompt")
    if system:
        slots.append(("system", system))
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


def settings_predictor(settings: InjectionSettings, judged: list | None = None) -> Callable[[dict], bool]:
    """Whether the settings flag a row; ``judged`` collects each row's Assessment, in order."""
    def predict(row: dict) -> bool:
        result = assess(settings, row_slots(row))
        if judged is not None:
            judged.append(result)
        return result.attack
    return predict


def format_table(results: list[FamilyResult]) -> str:
    lines = [f"{'subset':34} {'label':>5} {'rows':>6} {'flagged':>8}  metric",
             "-" * 72]
    for r in results:
        lines.append(f"{r.subset:34} {r.label:>5} {r.rows:>6} {r.flagged:>8}  "
                     f"{r.metric} {100 * r.rate:5.1f}%")
    return "\n".join(lines)


def _snippet(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def format_errors(placed: list[tuple[str, dict]], judged: list, threshold: float) -> str:
    """The rows the settings got wrong: attacks they missed, benign rows they flagged."""
    lines = []
    for label, title, sign in ((1, "misses (attacks not flagged)", "<"),
                               (0, "false positives (benign rows flagged)", ">=")):
        wrong = [(where, row, a) for (where, row), a in zip(placed, judged)
                 if int(row["label"]) == label and a.attack != bool(label)]
        lines.append(f"{title}: {len(wrong)}")
        for where, row, a in wrong:
            subset = row.get("subset") or row.get("source") or "all"
            rules = ", ".join(a.rule_ids) or "-"
            lines.append(f"  {where}  [{subset}]  score {a.score} {sign} {threshold}  rules {rules}")
            lines.append(f"      {_snippet(row['text'])}")
    return "\n".join(lines)


def run(paths: list[str], settings: InjectionSettings, out: TextIO = sys.stdout,
        show_progress: bool = True, show_errors: bool = False) -> list[FamilyResult]:
    placed = read_placed_rows(paths)
    rows = [row for _, row in placed]
    judged: list = []
    results = evaluate(rows, settings_predictor(settings, judged),
                       Progress(len(rows)) if show_progress else None)
    out.write(format_table(results) + "\n")
    if show_errors:
        out.write("\n" + format_errors(placed, judged, settings.detector.threshold) + "\n")
    return results
