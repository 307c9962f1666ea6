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
import sys
import time

FILE_RE = re.compile(r"^audit-(\d{8}T\d{6}Z)-(\d+)\.jsonl$")


def file_name(seq: int, wall: float) -> str:
    return f"audit-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(wall))}-{seq:010d}.jsonl"


def file_started(name: str) -> float | None:
    m = FILE_RE.match(os.path.basename(name))
    return calendar.timegm(time.strptime(m.group(1), "%Y%m%dT%H%M%SZ")) if m else None


def audit_files(directory: str) -> list[str]:
    """The directory's audit files, oldest first (by the sequence number in the name)."""
    try:
        names = [n for n in os.listdir(directory) if FILE_RE.match(n)]
    except FileNotFoundError:
        return []
    names.sort(key=lambda n: int(FILE_RE.match(n).group(2)))
    return [os.path.join(directory, n) for n in names]


class StdoutSink:
    rotates = False
    path = "<stdout>"

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdout.fileno() if fd is None else fd
        self.size = 0
        self.opened_at = time.time()

    def write(self, data: bytes | memoryview) -> int:
        return os.write(self.fd, data)

    def sync(self) -> None:
        pass            # a pipe or a terminal: nothing to fsync

    def close(self) -> None:
        pass


class FileSink:
    """Append-only files in one directory; one process at a time (an flock on ``.lock``)."""

    rotates = True

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.fd: int | None = None
        self.path: str | None = None
        self.size = 0
        self.opened_at = 0.0
        self._lock_fd: int | None = None

    def lock(self) -> None:
        if self._lock_fd is not None:
            return
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        fd = os.open(os.path.join(self.directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OSError(f"another process is writing the audit directory {self.directory}")
        self._lock_fd = fd

    def open_new(self, seq: int, wall: float) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        path = os.path.join(self.directory, file_name(seq, wall))
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
            os.close(fd)
