"""Reading audit files back: for resuming the chain, verification and the review commands."""
from __future__ import annotations

import os
from typing import Iterator

import orjson

from .sinks import FILE_RE, audit_files


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; directories become their audit files (oldest first)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = audit_files(p)
            if not found:   # also accept collected logs such as audit.jsonl
                found = sorted(os.path.join(p, n) for n in os.listdir(p) if n.endswith(".jsonl")
                               and not FILE_RE.match(n))
            out.extend(found)
        else:
            out.append(p)
    return out


def iter_lines(path: str) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without newline, ended with a newline)."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.endswith(b"\n"):
                yield n, line[:-1], True
            else:
                yield n, line, False


def iter_records(paths: list[str]) -> Iterator[dict]:
    """Request records from files/directories, skipping chain bookkeeping and foreign lines."""
    for path in expand_paths(paths):
        for _, line, _ in iter_lines(path):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("t") == "request":
                yield entry


def last_entry(path: str) -> tuple[dict | None, bool]:
    """The last complete, parseable entry of ``path`` and whether the file ends cleanly (no
    torn or damaged line after it). Reads backwards in blocks so a large file costs its tail."""
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return None, True
        fh.seek(end - 1)
        clean = fh.read(1) == b"\n"
        data, pos = b"", end
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
            lines = data.split(b"\n")[:-1]     # drop the torn (or empty) piece after the last \n
            if pos > 0:
                lines = lines[1:]                # may start mid-line; read it with the next block
            for line in reversed(lines):
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    clean = False
                    continue
                if isinstance(entry, dict) and "hash" in entry and "seq" in entry:
                    return entry, clean
                clean = False
            if pos > 0:
                data = data[: data.index(b"\n") + 1] if b"\n" in data else data
        return None, clean
