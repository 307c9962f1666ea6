"""``aifw audit verify``: walk the hash chain across files and name the entry that breaks it."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from .chain import GENESIS, canonical
from .reader import expand_paths, iter_lines
from .signing import Signer, signing_message

MAX_PROBLEMS = 100


@dataclass
class Problem:
    where: str            # file:line
    seq: int | None
    request_id: str | None
    message: str

    def __str__(self) -> str:
        who = "" if self.seq is None else f" seq {self.seq}"
        who += f" (request {self.request_id})" if self.request_id else ""
        return f"{self.where}{who}: {self.message}"


@dataclass
class VerifyResult:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    entries: int = 0
    records: int = 0
    checkpoints: int = 0
    signatures_ok: int = 0
    first_seq: int | None = None
    last_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _first_seq(path: str) -> int:
    for _, line, complete in iter_lines(path):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
            return entry["seq"]
    return -1


class _Walker:
    def __init__(self, signer: Signer | None, allow_partial: bool, live: bool, mixed: bool):
        self.signer, self.allow_partial, self.live, self.mixed = signer, allow_partial, live, mixed
        self.r = VerifyResult()
        self.expect_seq: int | None = None
        self.expect_prev: str | None = None
        self.last: dict | None = None
        self.last_where = ""
        self.unsigned = 0
        self.other_kid = 0

    def problem(self, where: str, entry: dict | None, message: str) -> None:
        if len(self.r.problems) < MAX_PROBLEMS:
            seq = entry.get("seq") if entry else None
            rid = entry.get("id") if entry else None
            self.r.problems.append(Problem(where, seq if isinstance(seq, int) else None,
                                           rid if isinstance(rid, str) else None, message))

    def _ends_chain_cleanly(self) -> bool:
        last = self.last
        return bool(last) and last.get("t") == "checkpoint" and last.get("reason") == "close"

    def file_start(self, path: str, entry: dict, where: str) -> None:
        if self.last is None:
            return
        last = self.last
        if entry.get("t") == "open" and entry.get("reason") == "resume":
            if not (last.get("t") == "checkpoint"):
                self.r.warnings.append(f"{where}: writer resumed after an unclean shutdown "
                                       f"(previous file ends at seq {last.get('seq')} "
                                       f"without a checkpoint)")
            return
        if last.get("t") != "checkpoint":
            self.problem(self.last_where, last, "file does not end with its rotation checkpoint: "
                                                "its tail was truncated")

    def entry(self, where: str, entry: dict) -> None:
        r = self.r
        claimed = entry.pop("hash")
        seq, prev = entry.get("seq"), entry.get("prev")
        if hashlib.sha256(canonical(entry)).hexdigest() != claimed:
            self.problem(where, entry, "entry was edited: its hash does not match its content")
        new_chain = entry.get("t") == "open" and seq == 0 and prev == GENESIS
        if self.expect_seq is None:
            if not new_chain and not self.allow_partial:
                self.problem(where, entry, f"chain starts at seq {seq}, not at its beginning: "
                                           "earlier entries or files are missing "
                                           "(--allow-partial accepts a pruned log)")
        elif new_chain:
            if not self._ends_chain_cleanly():
                self.problem(self.last_where, self.last, "a new chain starts after this entry "
                                                         "but this chain has no closing checkpoint:"
                                                         " its tail was truncated")
        elif seq != self.expect_seq or prev != self.expect_prev:
            if isinstance(seq, int) and seq > self.expect_seq:
                missing = seq - self.expect_seq
                msg = (f"breaks the chain: {missing} entr{'y' if missing == 1 else 'ies'} "
                       f"(seq {self.expect_seq}..{seq - 1}) missing before it: deleted or moved")
            elif isinstance(seq, int) and seq < self.expect_seq:
                msg = (f"breaks the chain: seq {seq} appears after seq {self.expect_seq - 1}: "
                       "reordered, duplicated or inserted")
            else:
                msg = "breaks the chain: it does not link to the entry before it: inserted or replaced"
            self.problem(where, entry, msg)
        if entry.get("t") == "checkpoint":
            r.checkpoints += 1
            self.checkpoint(where, entry)
        elif entry.get("t") == "request":
            r.records += 1
        r.entries += 1
        if r.first_seq is None:
            r.first_seq = seq
        r.last_seq = seq
        self.expect_seq = seq + 1 if isinstance(seq, int) else None
        self.expect_prev = claimed
        entry["hash"] = claimed
        self.last, self.last_where = entry, where

    def checkpoint(self, where: str, entry: dict) -> None:
        sig = entry.get("sig")
        if not sig:
            if self.signer is not None:
                self.problem(where, entry, "checkpoint is not signed but a key was given")
            else:
                self.unsigned += 1
            return
        if self.signer is None:
            return
        if sig.get("kid") != self.signer.kid or sig.get("alg") != self.signer.alg:
            self.other_kid += 1
            return
        if self.signer.verify(signing_message(entry), str(sig.get("value", ""))):
            self.r.signatures_ok += 1
        else:
            self.problem(where, entry, "checkpoint signature is invalid: the entries before it "
                                       "were rewritten or the checkpoint was forged")

    def finish(self) -> VerifyResult:
        r = self.r
        if self.last is not None and not self._ends_chain_cleanly():
            if self.live:
                r.warnings.append(f"the chain ends at seq {self.last.get('seq')} without a closing "
                                  "checkpoint (accepted with --live: the log is being written)")
            else:
                self.problem(self.last_where, self.last,
                             "the chain ends here without a closing checkpoint: the tail was "
                             "truncated, or the log is still being written (use --live)")
        if self.signer is None and r.checkpoints:
            r.warnings.append("signatures not checked: no key given (--key or "
                              "AIFW_AUDIT_SIGNING_KEY)")
        if self.unsigned and self.signer is None:
            r.warnings.append(f"{self.unsigned} checkpoint(s) carry no signature")
        if self.other_kid:
            r.warnings.append(f"{self.other_kid} checkpoint(s) signed with another key: not checked")
        return r


def verify(paths: list[str], signer: Signer | None = None, *, allow_partial: bool = False,
           live: bool = False, mixed: bool = False) -> VerifyResult:
    """Check every entry's hash, every link, every checkpoint signature (when a key is given),
    file boundaries and the end of the chain. ``mixed``: skip lines that are not audit entries
    (stdout logs collected together with other output)."""
    files = expand_paths(paths)
    walker = _Walker(signer, allow_partial, live, mixed)
    ordered = sorted(((_first_seq(p), p) for p in files), key=lambda t: t[0])
    walker.r.files = len(ordered)
    if not ordered:
        walker.problem("-", None, "no audit files found")
    for first, path in ordered:
        if first < 0:
            walker.problem(path, None, "file holds no audit entries")
            continue
        first_in_file = True
        for n, line, complete in iter_lines(path):
            where = f"{path}:{n}"
            if not complete:
                walker.problem(where, None, "torn line: the file was truncated or a write was cut")
                continue
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                if not mixed:
                    walker.problem(where, None, "line is not valid JSON: edited or damaged")
                continue
            if not (isinstance(entry, dict) and isinstance(entry.get("hash"), str)
                    and isinstance(entry.get("seq"), int) and "prev" in entry):
                if not mixed:
                    walker.problem(where, None, "line is not an audit entry: inserted or damaged")
                continue
            if first_in_file:
                walker.file_start(path, entry, where)
                first_in_file = False
            walker.entry(where, entry)
    return walker.finish()
