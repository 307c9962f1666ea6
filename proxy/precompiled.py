"""Compiled rule sets kept on disk, so a start or a `policy check` does not recompile them.

Compiling and vetting the shipped rule files takes about a second (the `regex` package parses
every pattern in Python, then each pattern is run against adversarial inputs); unpickling the
result takes ~10 ms, because a pickled `regex` pattern carries its compiled program. An entry is
keyed by the bytes it was built from plus a digest of the code that builds it (the detection
package's sources, this interpreter, the versions of the compiled-in libraries), so an edited
rule file or an upgraded aifw never meets a stale entry: it simply misses and recompiles.

Where: ``$AIFW_CACHE_DIR``, else ``$XDG_CACHE_HOME/aifw``, else ``~/.cache/aifw``;
``AIFW_CACHE_DIR=off`` turns it off. Pickle runs code when loaded, so an entry is read only from
a file and directory owned by this user and writable by nobody else: whoever could plant one
could already edit the rules or aifw itself. Every failure (unreadable, unwritable, corrupt)
falls back to compiling, the result a fresh compile would give.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

PACKAGE = Path(__file__).resolve().parent
# The code a cached object is built by: an edit to any of these files is a new cache generation.
CODE = ("detection", "yamlfast.py", "precompiled.py")
# Libraries whose objects are pickled (or whose behaviour compiled objects embed): identified by
# their installed files, since importlib.metadata alone costs ~50 ms to import.
LIBRARIES = ("regex._regex", "ahocorasick", "ahocorasick_rs.ahocorasick_rs", "numpy", "yaml")
MAX_ENTRIES = 32          # per kind: old generations and edited files are pruned past this


@functools.lru_cache(maxsize=1)
def code_digest() -> bytes:
    h = hashlib.blake2b(digest_size=32)
    h.update(sys.version.encode())
    for lib in LIBRARIES:
        try:
            # found, not imported: `aifw policy check` would otherwise import numpy for this
            where = importlib.util.find_spec(lib).origin or ""
            st = os.stat(where)
            h.update(f"{lib}={where}:{st.st_size}:{st.st_mtime_ns}\0".encode())
        except (ImportError, OSError, TypeError, AttributeError, ValueError):
            h.update(f"{lib}=-\0".encode())
    for name in CODE:
        base = PACKAGE / name
        for path in sorted(base.rglob("*.py")) if base.is_dir() else (base,):
            h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


def cache_dir() -> Path | None:
    configured = os.environ.get("AIFW_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "aifw" if xdg else Path.home() / ".cache" / "aifw"


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def entry_path(kind: str, source: bytes, directory: Path) -> Path:
    key = hashlib.blake2b(code_digest() + kind.encode() + b"\0" + source, digest_size=20).hexdigest()
    return directory / f"{kind}-{key}.pickle"


def load_or_build(kind: str, source: bytes, build: Callable[[], T]) -> T:
    """The object ``build()`` makes from ``source`` (the bytes it reads), from disk when a
    previous run built it already. ``build`` raising (an invalid rule file) stores nothing."""
    directory = cache_dir()
    if directory is None:
        return build()
    path = entry_path(kind, source, directory)
    try:
        if _private(os.stat(directory)) and _private(os.stat(path)):
            with open(path, "rb") as fh:
                return pickle.load(fh)  # noqa: S301 - private to this user, see the module doc
    except Exception:  # noqa: BLE001 - absent, foreign, truncated or stale: compile instead
        pass
    value = build()
    _store(directory, path, kind, value)
    return value


def remember(kind: str, source: bytes, value: object) -> None:
    """Store what ``load_or_build(kind, source, ...)`` would build, unless it is stored already
    (a start that built it anyway, leaving it for a later check)."""
    directory = cache_dir()
    if directory is None:
        return
    path = entry_path(kind, source, directory)
    if not path.exists():
        _store(directory, path, kind, value)


def _store(directory: Path, path: Path, kind: str, value: object) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(os.stat(directory)):
            return
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        entries = sorted(directory.glob(f"{kind}-*.pickle"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-MAX_ENTRIES]:
            old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        pass   # a read-only filesystem or an unpicklable object: next start compiles again
