"""The files a policy reads besides itself: term lists, rule files, the injection model.

They decide verdicts as much as the policy file does, so their contents are part of the
policy's digest (an audit record's digest names everything that judged it) and the reload
watcher watches them with the policy file. A compiler reads such a file through
``SourceRecorder.read``, which remembers what it read: the content's SHA-256 and the file's
stamp at the moment it was read (so an edit made while the policy compiles is seen by the next
poll, not lost). The keys file is not a source: issuing a key does not change the policy (it is
watched, and has its own digest); TLS files are credentials read by the client that uses them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Iterable

Reader = Callable[[str], bytes]


def read_plain(path: str) -> bytes:
    """The reader for callers outside a policy compile (CLIs, evaluation, tests)."""
    with open(path, "rb") as fh:
        return fh.read()


def stamp(path: str) -> tuple | None:
    """(inode, mtime, size) of the file ``path`` names now, following symlinks (a swapped
    ConfigMap ``..data`` link changes the inode); None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str                  # absolute
    sha256: str                # hex digest of the content the compile used
    stamp: tuple | None        # of that content (None: read twice and changed in between)


class SourceRecorder:
    """What one policy compile read (see the module doc). Not thread-safe: one per compile."""

    def __init__(self) -> None:
        self._files: dict[str, SourceFile] = {}
        self._dirs: list[str] = []
        self._tried: list[str] = []

    def read(self, path: str) -> bytes:
        path = os.path.abspath(path)
        self._tried.append(path)
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
        digest = hashlib.sha256(data).hexdigest()
        seen = self._files.get(path)
        if seen is None:
            self._files[path] = SourceFile(path, digest, (st.st_ino, st.st_mtime_ns, st.st_size))
        elif seen.sha256 != digest:
            # two parts of the policy saw two versions: no stamp matches, so the watcher
            # compiles again at its next poll and every part sees the same file
            self._files[path] = SourceFile(path, seen.sha256, None)
        return data

    def watch_dir(self, path: str) -> None:
        """A directory whose *.yaml files are all read: a file added or removed changes its
        stamp, so the watcher sees it."""
        path = os.path.abspath(path)
        if path not in self._dirs:
            self._dirs.append(path)

    @property
    def files(self) -> tuple[SourceFile, ...]:
        return tuple(self._files.values())

    @property
    def watched(self) -> tuple[str, ...]:
        """Every path to watch: files read, directories listed, files that could not be read
        (creating a missing term list must retry a reload that failed for want of it)."""
        return tuple(dict.fromkeys([*self._files, *self._dirs, *self._tried]))


def policy_digest(raw: bytes, sources: Iterable[SourceFile]) -> str:
    """``sha256:`` + hex. Without sources, the SHA-256 of the policy file. With sources, the
    SHA-256 of the policy file's length and bytes followed by each source's content digest in
    the order the compile read them (a fixed order: guards in policy order, rule files sorted).
    Paths are left out, so the same policy and files give the same digest on every host."""
    sources = tuple(sources)
    if not sources:
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    h = hashlib.sha256(b"aifw-policy\0")
    h.update(len(raw).to_bytes(8, "little"))
    h.update(raw)
    for source in sources:
        h.update(bytes.fromhex(source.sha256))
    return "sha256:" + h.hexdigest()
