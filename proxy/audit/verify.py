"""``aifw audit verify``: walk each hash chain across its files and name what breaks it.

A directory may hold several chains (one per worker, sinks.FILE_RE); each is verified on its
own and the result is the worst of them. Three outcomes, each with its exit status:

- ``ok`` (0): every entry's hash and link hold, every checkpoint verifies under one of the keys
  given (when keys are given), and each chain ends with its ``close`` checkpoint (or is being
  written: ``--live``, or its writer is alive on this host). Unclean ends that a later start
  recorded (``open`` with ``reason: resume``) are reported as notes: the chain runs intact
  across them.
- ``tampered`` (1): anything an honest writer cannot produce: an edited, inserted, deleted or
  reordered entry, a renamed or missing file, chains spliced together, a checkpoint that is
  unsigned, junk, signed by a key not given or does not verify.
- ``unclosed`` (3): the chain is intact up to its last line but ends without a close checkpoint
  and no writer is running: the writer crashed (kill -9, power loss) and has not started again,
  or entries after the last checkpoint were removed. The two look the same in the files; the
  entries after the last signed checkpoint are covered by no signature.
(2 is the command's own failure: bad arguments, a malformed key, an unreadable file.)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Iterable

import orjson

from .chain import GENESIS, canonical
from .reader import expand_paths, iter_lines
from .signing import Signer, signing_message
from .sinks import chain_name, file_chain, file_seq, lock_holder

MAX_PROBLEMS = 100
EXIT_CODES = {"ok": 0, "tampered": 1, "unclosed": 3}
TAMPERED, UNCLOSED = "tampered", "unclosed"


def _show(value: object, limit: int = 40) -> str:
    """A value read from the log, for a message: bounded and quoted (it may be anything)."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


@dataclass
class Problem:
    where: str            # file:line
    seq: int | None
    request_id: str | None
    message: str
    kind: str = TAMPERED

    def __str__(self) -> str:
        who = "" if self.seq is None else f" seq {self.seq}"
        who += f" (request {self.request_id})" if self.request_id else ""
        return f"{self.where}{who}: {self.message}"


@dataclass
class ChainSummary:
    label: str
    files: int = 0
    entries: int = 0
    records: int = 0
    checkpoints: int = 0
    signatures_ok: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    status: str = "ok"


@dataclass
class VerifyResult:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chains: list[ChainSummary] = field(default_factory=list)

    def _sum(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.chains)

    files = property(lambda self: self._sum("files"))
    entries = property(lambda self: self._sum("entries"))
    records = property(lambda self: self._sum("records"))
    checkpoints = property(lambda self: self._sum("checkpoints"))
    signatures_ok = property(lambda self: self._sum("signatures_ok"))
    first_seq = property(lambda self: self.chains[0].first_seq if self.chains else None)
    last_seq = property(lambda self: self.chains[-1].last_seq if self.chains else None)

    @property
    def status(self) -> str:
        kinds = {p.kind for p in self.problems}
        return TAMPERED if TAMPERED in kinds else UNCLOSED if kinds else "ok"

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


class _Collected:
    """Makes the walkers of a collected log, one per chain found in it."""

    def __init__(self, result: VerifyResult, keys: dict[str, Signer], allow_partial: bool,
                 live: bool, mixed: bool) -> None:
        self.result, self.keys = result, keys
        self.allow_partial, self.live, self.mixed = allow_partial, live, mixed

    def new(self, walkers: list["_Walker"]) -> "_Walker":
        summary = ChainSummary(f"collected log, chain {len(walkers) + 1}")
        self.result.chains.append(summary)
        walker = _Walker(self.result, summary, self.keys, allow_partial=self.allow_partial,
                         live=self.live, mixed=self.mixed, chain=None, writer=None)
        walkers.append(walker)
        return walker


class _Walker:
    """One chain: its files in order, entry by entry."""

    def __init__(self, result: VerifyResult, summary: ChainSummary, keys: dict[str, Signer],
                 *, allow_partial: bool, live: bool, mixed: bool, chain: str | None,
                 writer: str | None):
        self.res, self.sum, self.keys = result, summary, keys
        self.allow_partial, self.live, self.mixed = allow_partial, live, mixed
        self.chain = chain            # the chain's name from its file names; None: collected log
        self.writer = writer          # "pid N on HOST" when a live writer holds the chain's lock
        self.expect_seq: int | None = None
        self.expect_prev: str | None = None
        self.last: dict | None = None
        self.last_where = ""
        self.last_signed: int | None = None   # seq of the newest checkpoint that verified
        self.last_checkpoint: int | None = None
        self.debris: list[tuple[str, str]] = []   # bad lines after the newest good entry
        self.unsigned = 0
        self.workers: tuple[int, str] = (1, "")   # most chains an open entry announced, where

    # --- reporting -------------------------------------------------------------------------
    def problem(self, where: str, entry: dict | None, message: str, kind: str = TAMPERED) -> None:
        if len(self.res.problems) < MAX_PROBLEMS:
            seq = entry.get("seq") if entry else None
            rid = entry.get("id") if entry else None
            self.res.problems.append(Problem(where, seq if isinstance(seq, int) else None,
                                             rid if isinstance(rid, str) else None, message, kind))
        self.sum.status = TAMPERED if kind == TAMPERED or self.sum.status == TAMPERED else kind

    def note(self, text: str) -> None:
        self.res.warnings.append(f"{self.sum.label}: {text}")

    def _flush_debris_as_tampering(self) -> None:
        for where, message in self.debris:
            self.problem(where, None, message)
        self.debris = []

    # --- files -----------------------------------------------------------------------------
    def walk_file(self, path: str) -> None:
        self.sum.files += 1
        first = True
        for where, entry, bad in _lines(path, self.mixed):
            if entry is None:
                self.debris.append((where, bad))
                continue
            if first:
                first = False
                self.take(where, entry, path)
            else:
                self.take(where, entry)
        if first:
            self.debris.append((path, "file holds no audit entries"))

    def take(self, where: str, entry: dict, new_file: str | None = None) -> None:
        """One good entry (``new_file``: the first this walker reads from that file)."""
        if self.debris and not self._resumes_after_crash(entry):
            # bad lines with good entries after them: no crash leaves that behind
            self._flush_debris_as_tampering()
        if new_file is not None:
            self.file_start(new_file, entry, where)
        self.entry(where, entry)

    def file_start(self, path: str, entry: dict, where: str) -> None:
        named = file_seq(path)
        if named is not None and named != entry["seq"]:
            self.problem(where, entry, f"the file name says its first entry is seq {named}, but it is "
                                       f"seq {entry['seq']}: the file was renamed or put out of order")
        last = self.last
        # collected logs are cut into files by whoever collected them, not by rotation
        if last is None or self.chain is None or self._is_resume(entry) or entry.get("genesis") is True:
            return
        if last.get("t") != "checkpoint":
            self.problem(self.last_where, last, "the file does not end with its rotation checkpoint: "
                                                "its tail was truncated")

    # --- entries ---------------------------------------------------------------------------
    @staticmethod
    def _is_resume(entry: dict) -> bool:
        return entry.get("t") == "open" and entry.get("reason") == "resume"

    def _ends_cleanly(self) -> bool:
        last = self.last
        return bool(last) and last.get("t") == "checkpoint" and last.get("reason") == "close"

    def _resumes_after_crash(self, entry: dict) -> bool:
        return (self._is_resume(entry) and self.last is not None
                and entry.get("seq") == self.expect_seq and entry.get("prev") == self.expect_prev)

    def entry(self, where: str, entry: dict) -> None:
        s = self.sum
        claimed = entry.pop("hash")
        seq, prev, kind = entry.get("seq"), entry.get("prev"), entry.get("t")
        if hashlib.sha256(canonical(entry)).hexdigest() != claimed:
            self.problem(where, entry, "entry was edited: its hash does not match its content")
        if kind == "open" and self.chain is not None and entry.get("chain", "") != self.chain:
            self.problem(where, entry, f"entry belongs to chain {_show(entry.get('chain'))}, but its "
                                       f"file name puts it in chain {_show(self.chain)}: renamed")
        if kind == "open" and isinstance(entry.get("workers"), int) and entry["workers"] > self.workers[0]:
            self.workers = (min(entry["workers"], 1024), where)
        genesis = kind == "open" and seq == 0 and prev == GENESIS
        if self.expect_seq is None:
            if not genesis and not self.allow_partial:
                self.problem(where, entry, f"chain starts at seq {seq}, not at its beginning: "
                                           "earlier entries or files are missing "
                                           "(--allow-partial accepts a pruned log)")
        elif genesis:   # (in a collected log each genesis starts a walker of its own)
            self.problem(where, entry, "a second chain starts here (seq 0) among the files of "
                                       "one chain: files of another log were put in with these "
                                       "(spliced)")
        elif seq != self.expect_seq or prev != self.expect_prev:
            self.problem(where, entry, self._break_message(seq))
        elif self._is_resume(entry) and (self.debris or not self._ends_cleanly()):
            cut = f"; the write it cut ({len(self.debris)} line(s) at {self.debris[0][0]}) is ignored" \
                if self.debris else ""
            self.note(f"the writer stopped uncleanly after seq {self.last.get('seq')} (crash, kill -9 or "
                      f"power loss) and resumed at seq {seq} ({_show(entry.get('time'))}): the chain "
                      f"is intact across it{cut}")
            self.debris = []
        if kind == "checkpoint":
            s.checkpoints += 1
            self.last_checkpoint = seq
            self.checkpoint(where, entry)
        elif kind == "request":
            s.records += 1
        s.entries += 1
        if s.first_seq is None:
            s.first_seq = seq
        s.last_seq = seq
        self.expect_seq = seq + 1
        self.expect_prev = claimed
        entry["hash"] = claimed
        self.last, self.last_where = entry, where

    def _break_message(self, seq: int) -> str:
        if seq > self.expect_seq:
            missing = seq - self.expect_seq
            return (f"breaks the chain: {missing} entr{'y' if missing == 1 else 'ies'} "
                    f"(seq {self.expect_seq}..{seq - 1}) missing before it: deleted or moved")
        if seq < self.expect_seq:
            return (f"breaks the chain: seq {seq} appears after seq {self.expect_seq - 1}: "
                    "reordered, duplicated, replayed or inserted")
        return "breaks the chain: it does not link to the entry before it: inserted or replaced"

    def checkpoint(self, where: str, entry: dict) -> None:
        sig = entry.get("sig")
        if not sig:
            if self.keys:
                self.problem(where, entry, "checkpoint is not signed, but keys were given")
            else:
                self.unsigned += 1
            return
        if not self.keys:
            return
        if not (isinstance(sig, dict) and all(isinstance(sig.get(k), str) for k in ("alg", "kid", "value"))):
            self.problem(where, entry, f"checkpoint signature is malformed ({_show(sig)}): forged")
            return
        key = self.keys.get(sig["kid"])
        if key is None:
            self.problem(where, entry, f"checkpoint is signed by key {_show(sig['kid'])} "
                                       f"({_show(sig['alg'])}), which is none of the keys given "
                                       f"({', '.join(sorted(self.keys))}): signed by another key, "
                                       "or forged")
        elif key.alg != sig["alg"]:
            self.problem(where, entry, f"checkpoint names key {key.kid} but algorithm "
                                       f"{_show(sig['alg'])}, not {key.alg}: forged")
        elif key.verify(signing_message(entry), sig["value"]):
            self.sum.signatures_ok += 1
            self.last_signed = entry.get("seq")
        else:
            self.problem(where, entry, f"checkpoint signature does not verify under key {key.kid}: "
                                       "the entries before it were rewritten or the checkpoint "
                                       "was forged")

    def finish(self) -> None:
        last = self.last
        if last is None:
            if self.sum.files:
                self.problem(self.debris[0][0] if self.debris else "-", None,
                             "no audit entries in this chain's files")
            return
        if self._ends_cleanly():
            self._flush_debris_as_tampering()        # nothing follows a close but a resume
        else:
            covered = self.last_signed if self.keys else self.last_checkpoint
            what = "verified signature" if self.keys else "checkpoint"
            after = (f"entries after seq {covered} are not covered by a {what}" if covered is not None
                     else f"none of its entries is covered by a {what}")
            if self.live or self.writer:
                who = f" by {self.writer}" if self.writer else ""
                self.note(f"the chain is being written{who}: it ends at seq {last.get('seq')} "
                          f"without a closing checkpoint yet; {after}")
                self.debris = []
            else:
                torn = (f" and {len(self.debris)} cut line(s) after it ({self.debris[0][0]}: "
                        f"{self.debris[0][1]})" if self.debris else "")
                self.problem(self.last_where, last,
                             f"the chain ends here{torn} without a closing checkpoint, and no writer "
                             "is running: the writer stopped uncleanly (crash, kill -9, power loss) "
                             "and has not started again, or entries after it were removed; "
                             f"{after} (use --live for a log still being written elsewhere)",
                             UNCLOSED)
                self.debris = []
        if not self.keys and self.unsigned:
            self.note(f"{self.unsigned} checkpoint(s) carry no signature")


def _lines(path: str, mixed: bool):
    """(where, entry, None) for each audit entry of a file, (where, None, why) for each line
    that is not one (skipped with ``mixed``)."""
    for n, line, complete in iter_lines(path):
        where = f"{path}:{n}"
        if not complete:
            yield where, None, "torn line: the file was cut or a write was interrupted"
            continue
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not mixed:
                yield where, None, "line is not valid JSON: edited or damaged"
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("hash"), str)
                and isinstance(entry.get("seq"), int) and "prev" in entry):
            if not mixed:
                yield where, None, "line is not an audit entry: inserted or damaged"
            continue
        yield where, entry, None


def _walk_collected(result: VerifyResult, files: list[str], make) -> None:
    """A collected stdout log: the lines of several writers (workers sharing stdout, restarts)
    may interleave. Each entry joins the chain whose head its ``prev`` names; a new chain starts
    at each genesis ``open``; an entry that links to no head (edited, inserted, reordered, or
    its predecessor deleted) goes to the chain nearest its ``seq``, which reports the break."""
    walkers: list[_Walker] = []
    heads: dict[str, _Walker] = {}
    seen_in: dict[int, str] = {}           # walker id -> the file it last read from
    last: _Walker | None = None
    for path in files:
        for where, entry, bad in _lines(path, make.mixed):
            if entry is None:
                (last or make.new(walkers)).debris.append((where, bad))
                continue
            seq, prev = entry["seq"], entry.get("prev")
            walker = heads.pop(prev, None) if isinstance(prev, str) else None
            if walker is None:
                genesis = entry.get("t") == "open" and seq == 0 and prev == GENESIS
                if genesis or not walkers:
                    walker = make.new(walkers)
                else:
                    walker = min(walkers, key=lambda w: abs((w.expect_seq or 0) - seq))
                    heads.pop(walker.expect_prev, None)
            new_file = path if seen_in.get(id(walker)) != path else None
            if new_file is not None:
                seen_in[id(walker)] = path
                walker.sum.files += 1
            walker.take(where, entry, new_file)
            heads[walker.expect_prev] = walker
            last = walker
    if not walkers:
        make.new(walkers).sum.files = len(files)
    for walker in walkers:
        walker.finish()


def _groups(files: Iterable[str]) -> dict[tuple[str, str | None], list[str]]:
    """Files by chain: (directory, chain name) for the writer's own files, ("", None) for
    anything else (collected stdout logs), which is read as one sequence."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for path in files:
        chain = file_chain(path)
        key = (os.path.dirname(os.path.abspath(path)), chain) if chain is not None else ("", None)
        groups.setdefault(key, [])
        if path not in groups[key]:
            groups[key].append(path)
    return groups


def _first_seq(path: str) -> int:
    for _, line, _complete in iter_lines(path):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
            return entry["seq"]
    return -1


def verify(paths: list[str], keys: Signer | Iterable[Signer] | None = None, *,
           allow_partial: bool = False, live: bool = False, mixed: bool = False) -> VerifyResult:
    """Check every chain found in ``paths``: each entry's hash and link, each checkpoint's
    signature under one of ``keys`` (each known by its kid), file names and boundaries, and how
    each chain ends. ``mixed``: skip lines that are not audit entries (collected stdout)."""
    if isinstance(keys, Signer):
        keys = [keys]
    by_kid = {k.kid: k for k in keys or ()}
    result = VerifyResult()
    groups = _groups(expand_paths(paths))
    if not groups:
        result.problems.append(Problem("-", None, None, "no audit files found"))
    announced: dict[str, tuple[int, str]] = {}       # directory -> (workers, where announced)
    for (directory, chain), files in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if chain is None:
            _walk_collected(result, sorted(files, key=_first_seq),
                            _Collected(result, by_kid, allow_partial, live, mixed))
            continue
        label = f"chain {chain or 'w0'} ({directory})"
        files = sorted(files, key=lambda p: file_seq(p))
        writer = lock_holder(directory, chain)
        summary = ChainSummary(label)
        result.chains.append(summary)
        walker = _Walker(result, summary, by_kid, allow_partial=allow_partial, live=live,
                         mixed=mixed, chain=chain, writer=writer)
        for path in files:
            walker.walk_file(path)
        walker.finish()
        if walker.workers[0] > announced.get(directory, (1, ""))[0]:
            announced[directory] = walker.workers
    whole = {os.path.abspath(p) for p in paths if os.path.isdir(p)}   # every chain in scope
    for directory, (workers, where) in announced.items():
        if directory not in whole:
            continue
        present = {chain for d, chain in groups if d == directory}
        for missing in sorted({chain_name(i) for i in range(workers)} - present):
            result.problems.append(Problem(where, None, None,
                f"this open entry says {workers} workers write chains in {directory}, but chain "
                f"{missing or 'w0'} has no files there: deleted"))
    if not by_kid and result.checkpoints:
        result.warnings.append("signatures not checked: no key given (--key or "
                               "AIFW_AUDIT_SIGNING_KEY)")
    return result
