"""Scan results remembered per process, so a conversation's history is not judged again.

A chat client re-sends the whole conversation on every turn: without this, the twentieth turn
pays for scanning nineteen turns that were judged already. A guard asks the cache before it
scans a text and stores what the scan found (an injection slot score, the PII spans: never a
verdict, a placeholder or the text itself). The key is a tuple of

- the digest of the guard's compiled settings (``settings_digest``: every field of the frozen
  settings object, recursively, so a changed rule set, term list, threshold, paranoia level,
  model file or vocabulary gives another digest, whichever file it came from),
- what else the result depends on (the slot's role, the digests of the request's system prompts),
- the text's blake2b digest (``text_digest``, 256 bits: finding a collision is out of reach),

compared in full on lookup, so no two different inputs share a key. A text is digested once per
exchange (``Exchange.text_digest``) however many guards look it up: the digest of a 300-character
turn costs as much as the rest of a cache hit. Decisions stay outside: monitor or enforce,
blocking or masking, and the PII vault of the exchange are applied to the cached result as to a
fresh one.

Bounded by entries and by an estimate of the memory the results hold; least recently used
entries go first. ``AIFW_SCAN_CACHE_ENTRIES`` (default 8192; 0 turns the cache off) and
``AIFW_SCAN_CACHE_MB`` (default 32) size it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import re
import sys
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")

DEFAULT_ENTRIES = 8192
DEFAULT_MB = 32
MISSING = object()       # what ScanCache.get returns for a key it does not hold
_blake2b = hashlib.blake2b
KEY_BYTES = 320         # an entry's key and bookkeeping, roughly (see Memo.key)


def _state(obj: Any) -> dict[str, Any] | None:
    """The fields of a dataclass or a Python object (slots and __dict__); None for an object
    whose state Python cannot see (an extension type)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    names: dict[str, Any] = {}
    visible = hasattr(obj, "__dict__")
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__")
        if slots is None:
            continue
        visible = True
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                names[name] = getattr(obj, name)
    if hasattr(obj, "__dict__"):
        names.update(vars(obj))
    return names if visible else None


def settings_digest(settings: Any) -> bytes:
    """A digest of everything a compiled settings object holds (see the module doc).

    The object's pickle is a complete description of its state: every field, recursively,
    compiled regexes with their program, numpy arrays with their bytes, extension objects
    (the Aho-Corasick automata) by their own state. Two settings that differ anywhere pickle
    differently, so they never share a digest. The converse need not hold (set order may differ
    between two equal compiles): that only costs a cache miss. Settings that cannot be pickled
    get a random digest: their results are never shared with any other compiled guard.
    """
    try:
        data = pickle.dumps(settings, protocol=5)
    except Exception:  # noqa: BLE001 - an unpicklable field: keep this guard's entries apart
        data = os.urandom(32)
    return hashlib.blake2b(data, digest_size=32, person=b"aifw-settings").digest()


def text_digest(*parts: str | bytes) -> bytes:
    """Digest of several texts, each length-prefixed (``("ab", "c")`` is not ``("a", "bc")``)."""
    if len(parts) == 1 and isinstance(parts[0], str):
        # one text (the common case): the same bytes in one call instead of three
        data = parts[0].encode("utf-8", "surrogatepass")
        return _blake2b(len(data).to_bytes(8, "little") + data, digest_size=32).digest()
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def approx_size(obj: Any, _depth: int = 0) -> int:
    """Bytes a cached result keeps alive (containers, strings, slots), roughly."""
    size = sys.getsizeof(obj)
    if _depth > 6:
        return size
    if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
        return size
    if isinstance(obj, dict):
        return size + sum(approx_size(k, _depth + 1) + approx_size(v, _depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return size + sum(approx_size(x, _depth + 1) for x in obj)
    state = _state(obj)
    if state:
        return size + sum(approx_size(v, _depth + 1) for v in state.values())
    return size


class ScanCache:
    """A bounded LRU map from keys (tuples of digests) to scan results (thread-safe: large bodies are
    scanned in worker threads)."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES, max_bytes: int = DEFAULT_MB << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any:
        # Without the lock (which ``put`` keeps, for its bookkeeping): each OrderedDict call is
        # atomic under the GIL (keys are tuples of bytes and str: no Python code runs in their
        # hash or comparison), and an entry another thread evicts between the look-up and
        # move_to_end is still the right answer. hits/misses are statistics only.
        items = self._items
        item = items.get(key)
        if item is None:
            self.misses += 1
            return MISSING
        try:
            items.move_to_end(key)
        except KeyError:        # evicted meanwhile
            pass
        self.hits += 1
        return item[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> None:
        """``size``: the bytes ``value`` holds, when the caller knows them cheaper than
        ``approx_size`` walks them."""
        if not self.enabled:
            return
        # the key (a tuple of digests) plus the OrderedDict's node and tuple
        size = (approx_size(value) if size is None else size) + KEY_BYTES
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if re.fullmatch(r"\d+", raw) else default


# One per process: every scope and every reloaded policy shares it (their settings digests keep
# their entries apart; a reload with unchanged settings keeps its entries useful).
CACHE = ScanCache(_env_int("AIFW_SCAN_CACHE_ENTRIES", DEFAULT_ENTRIES),
                  _env_int("AIFW_SCAN_CACHE_MB", DEFAULT_MB) << 20)


class Memo:
    """The scan results of one compiled settings object (a guard's detector or injection
    settings) in the process cache. The settings digest is computed on first use (~30 ms for the
    injection settings, which hold the model's weights), not while a policy compiles."""

    __slots__ = ("settings", "cache", "_digest")

    def __init__(self, settings: Any, cache: ScanCache | None = None) -> None:
        self.settings = settings
        self.cache = cache if cache is not None else CACHE
        self._digest: bytes | None = None

    @property
    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = settings_digest(self.settings)
        return self._digest

    def key(self, *parts: str | bytes | tuple | None) -> tuple:
        """The cache key of a result under these settings. ``parts``: what else it depends on,
        as short names and digests; a text goes in as its ``text_digest`` (the cache holds no
        text)."""
        digest = self._digest     # the property only the first time (a call per key cost more)
        return (self.digest if digest is None else digest, *parts)

    def remember(self, compute: Callable[[], T], *parts: str | bytes | tuple | None,
                 keep: Callable[[T], bool] | None = None,
                 size: Callable[[T], int] | None = None) -> T:
        """``compute()``, or what it returned before for the same settings and ``parts`` (see
        ``key``). ``keep(result)`` False: the result is returned but not remembered.
        ``size(result)``: its bytes (see ``ScanCache.put``)."""
        cache = self.cache
        if not cache.enabled:
            return compute()
        digest = self._digest
        key = (self.digest if digest is None else digest, *parts)     # self.key(*parts)
        value = cache.get(key)
        if value is MISSING:
            value = compute()
            if keep is None or keep(value):
                cache.put(key, value, None if size is None else size(value))
        return value
