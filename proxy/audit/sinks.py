"""Where audit lines go: rotated files in a directory, or standard output.

Sinks are synchronous and called from the writer thread only. Writes use ``os.write`` so the
writer knows exactly how many bytes reached the file: after a failed or partial write (disk
full), the rest is retried from the same byte and no line is torn or duplicated.
"""
from __future__ import annotations

import calendar
import fcntl
import os
import re
import select
import socket
import sys
import time

# One directory may hold several hash chains, one per writer process (``aifw serve --workers
# N``): worker 0 writes the chain named "" (files ``audit-<time>-<seq>.jsonl``, the only chain
# before workers could share a directory), worker i the chain ``w<i>`` (``audit-w<i>-...``).
FILE_RE = re.compile(r"^audit-(?:(w\d+)-)?(\d{8}T\d{6}Z)-(\d+)\.jsonl$")


def chain_name(worker: int) -> str:
    return "" if worker <= 0 else f"w{worker}"


def file_name(seq: int, wall: float, chain: str = "") -> str:
    prefix = f"audit-{chain}-" if chain else "audit-"
    return f"{prefix}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(wall))}-{seq:010d}.jsonl"


def file_chain(name: str) -> str | None:
    """The chain a file name belongs to ("" for worker 0), None for a foreign name."""
    m = FILE_RE.match(os.path.basename(name))
    return (m.group(1) or "") if m else None


def file_seq(name: str) -> int | None:
    """The sequence number a file name says its first entry has."""
    m = FILE_RE.match(os.path.basename(name))
    return int(m.group(3)) if m else None


def file_started(name: str) -> float | None:
    m = FILE_RE.match(os.path.basename(name))
    return calendar.timegm(time.strptime(m.group(2), "%Y%m%dT%H%M%SZ")) if m else None


def audit_files(directory: str, chain: str | None = None) -> list[str]:
    """The directory's audit files of one chain (every chain when ``chain`` is None), by chain
    name and then oldest first (by the sequence number in the name)."""
    try:
        names = [n for n in os.listdir(directory) if FILE_RE.match(n)]
    except FileNotFoundError:
        return []
    if chain is not None:
        names = [n for n in names if file_chain(n) == chain]
    names.sort(key=lambda n: (file_chain(n), file_seq(n)))
    return [os.path.join(directory, n) for n in names]


def lock_path(directory: str, chain: str = "") -> str:
    return os.path.join(directory, f".lock-{chain}" if chain else ".lock")


def lock_holder(directory: str, chain: str = "") -> str | None:
    """Who holds a chain's lock, as "pid N on HOST", when a live process on this host does.
    Read from the lock file's text, never by taking the lock (a verify must not make a starting
    writer fail). A stale file (the writer died) names a process that is gone: None."""
    try:
        with open(lock_path(directory, chain), encoding="utf-8", errors="replace") as fh:
            text = fh.read(200).split()
    except OSError:
        return None
    if len(text) != 2 or not text[0].isdigit() or text[1] != socket.gethostname():
        return None
    pid = int(text[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass                        # alive, another user's
    return f"pid {pid} on {text[1]}"


class ChainBusy(OSError):
    """Another live process writes this chain: a start-up error, not a sink failure."""


PIPE_BUF = getattr(select, "PIPE_BUF", 512)   # POSIX: pipe writes up to this size are atomic


class StdoutSink:
    rotates = False
    path = "<stdout>"
    chain = ""
    workers = 1

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdout.fileno() if fd is None else fd
        self.size = 0
        self.opened_at = time.time()

    def write(self, data: bytes | memoryview) -> int:
        # whole lines per write, at most PIPE_BUF bytes when the lines allow: a pipe writes
        # those atomically, so the lines of several workers sharing stdout never tear each other
        # (the writer calls again with the rest)
        head = bytes(data[:PIPE_BUF])
        cut = head.rfind(b"\n") + 1
        if cut == 0:                 # one line longer than PIPE_BUF: write through its end
            end = bytes(data).find(b"\n")
            cut = len(data) if end < 0 else end + 1
        return os.write(self.fd, data[:cut])

    def sync(self) -> None:
        pass            # a pipe or a terminal: nothing to fsync

    def close(self) -> None:
        pass


class FileSink:
    """Append-only files of one chain in a directory; one process per chain (an flock on the
    chain's lock file, which also names the holder for ``lock_holder``)."""

    rotates = True

    def __init__(self, directory: str, chain: str = "") -> None:
        self.directory = directory
        self.chain = chain
        self.workers = 1          # writers of this directory's chains, one per worker
        self.fd: int | None = None
        self.path: str | None = None
        self.size = 0
        self.opened_at = 0.0
        self._lock_fd: int | None = None

    def lock(self) -> None:
        if self._lock_fd is not None:
            return
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        fd = os.open(lock_path(self.directory, self.chain), os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            which = f"chain {self.chain} of " if self.chain else ""
            raise ChainBusy(f"another process is writing the audit log ({which}{self.directory})")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass                    # the name is for verify's live check only
        self._lock_fd = fd

    def open_new(self, seq: int, wall: float) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        path = os.path.join(self.directory, file_name(seq, wall, self.chain))
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self.path, self.size, self.opened_at = path, 0, wall

    def open_existing(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.path = path
        self.size = os.fstat(self.fd).st_size
        self.opened_at = file_started(path) or time.time()

    def write(self, data: bytes | memoryview) -> int:
        if self.fd is None:
            raise OSError("audit file is not open")
        return os.write(self.fd, data)

    def sync(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            try:
                os.ftruncate(fd, 0)     # released cleanly: nobody is writing
            except OSError:
                pass
            os.close(fd)
