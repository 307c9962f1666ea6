"""A tiny character trigram language model of ordinary English text: the "gibberish" signal.

Optimised adversarial suffixes (GCG, DSN, adaptive random search) end a fluent request with token
soup: glued words, odd casing, stray brackets. Such text is improbable under a character model of
ordinary prose, and the model needs no attack data at all: it is estimated from the English
documentation shipped with CPython (``pydoc_data.topics``, PSF licence), never from the evaluation
families. ``train/build_charlm.py`` writes the table to ``charlm.npz`` (~40 KiB) so inference does
not depend on the local Python's copy of that text.

Characters are folded into 64 classes (lower- and upper-case letters kept apart, digits as one
class, punctuation in nine groups, whitespace as one, anything non-ASCII as "unknown", which is
excluded from every average: the signal speaks about ASCII text only).

Signals (negative log-probability per character, nats):
- ``window_max``: the highest mean over any 40-character window (a burst of gibberish anywhere);
- ``tail`` / ``tail_contrast``: the mean over the last 60 characters, and that minus the mean over
  everything before them (fluent request, then a suffix of noise).
"""
from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import numpy as np

from .charclass import join_split

N_CLASSES = 64
WINDOW = 40
TAIL = 60
DEFAULT_TABLE = Path(__file__).resolve().parent / "charlm.npz"
_PUNCT_GROUPS = (".,", ";:", "!?", "'\"`", "()", "[]{}", "<>", "-_", "/\\|@#$%^&*+=~")


def _class_table() -> np.ndarray:
    t = np.zeros(128, dtype=np.int64)      # non-ASCII -> 0 (unknown)
    for c in range(128):
        ch = chr(c)
        if ch.isspace() or c < 32:
            t[c] = 1
        elif "a" <= ch <= "z":
            t[c] = 2 + c - ord("a")
        elif "A" <= ch <= "Z":
            t[c] = 28 + c - ord("A")
        elif ch.isdigit():
            t[c] = 54
        else:
            for g, chars in enumerate(_PUNCT_GROUPS):
                if ch in chars:
                    t[c] = 55 + g
                    break
    return t


_CLASSES = _class_table()


def classes(text: str) -> np.ndarray:
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    out = np.zeros(len(cps), dtype=np.int64)
    ascii_ = cps < 128
    out[ascii_] = _CLASSES[cps[ascii_]]
    return out


def estimate(text: str, k: float = 0.1) -> np.ndarray:
    """Negative log-probabilities ``-log P(c3 | c1 c2)`` (add-k smoothed), shape (64**3,)."""
    x = classes(" ".join(text.split()))
    tri = (x[:-2] * N_CLASSES + x[1:-1]) * N_CLASSES + x[2:]
    counts = np.bincount(tri, minlength=N_CLASSES ** 3).reshape(N_CLASSES ** 2, N_CLASSES)
    counts = counts.astype(np.float64)
    nll = -np.log((counts + k) / (counts.sum(1, keepdims=True) + k * (N_CLASSES - 1)))
    return nll.ravel().astype(np.float32)


def save(path: str | Path, nll: np.ndarray, meta: str) -> None:
    # 1/16-nat resolution in a byte: more than enough for a mean over 40 characters.
    q = np.clip(np.round(nll * 16), 0, 255).astype(np.uint8)
    np.savez_compressed(path, nll_q16=q, meta=np.frombuffer(meta.encode(), np.uint8))


@functools.lru_cache(maxsize=4)
def load(path: str | None = None) -> np.ndarray:
    with np.load(path or DEFAULT_TABLE) as data:
        return data["nll_q16"].astype(np.float32) / 16.0


def signals(text: str, table: np.ndarray | None = None) -> tuple[float, float, float]:
    """(window_max, tail, tail_contrast) of ``text``; zeros when there is too little ASCII text."""
    if table is None:
        table = load()
    x = classes(" " + " ".join(text.split()))
    if len(x) < 3:
        return 0.0, 0.0, 0.0
    tri = (x[:-2] * N_CLASSES + x[1:-1]) * N_CLASSES + x[2:]
    nll = table[tri]
    known = x[2:] != 0
    nll = np.where(known, nll, 0.0)
    csum = np.concatenate(([0.0], np.cumsum(nll, dtype=np.float64)))
    ccnt = np.concatenate(([0], np.cumsum(known)))
    n = len(nll)
    window_max = 0.0
    if n >= WINDOW:
        s = csum[WINDOW:] - csum[:-WINDOW]
        c = ccnt[WINDOW:] - ccnt[:-WINDOW]
        good = c >= 0.8 * WINDOW
        if good.any():
            window_max = float((s[good] / c[good]).max())
    elif ccnt[-1] >= 0.8 * n and n >= 12:
        window_max = float(csum[-1] / ccnt[-1])
    tail = contrast = 0.0
    if n >= TAIL + 40:
        t_cnt = ccnt[-1] - ccnt[-TAIL - 1]
        h_cnt = ccnt[-TAIL - 1]
        if t_cnt >= 0.8 * TAIL and h_cnt >= 30 and ccnt[-1] >= 0.8 * n:
            tail = float((csum[-1] - csum[-TAIL - 1]) / t_cnt)
            contrast = tail - float(csum[-TAIL - 1] / h_cnt)
    return window_max, tail, contrast


_ASCII_CLASS_BYTES = bytes(int(c) for c in _CLASSES) + bytes(128)   # bytes.translate table


def tail_contrast(text: str, table: np.ndarray | None = None) -> float:
    """``signals(text)[2]`` only (the hot path of the gibberish-suffix signal), faster: no windows."""
    if table is None and text.isascii():
        return _ascii_tail_contrast(" " + join_split(text))
    return _tail_contrast(text, table)


def _tail_contrast(text: str, table: np.ndarray | None = None) -> float:
    """``tail_contrast`` of any text, array by array: the yardstick of the ASCII path."""
    if table is None:
        table = load()
    text = " " + " ".join(text.split())
    if text.isascii():
        x = np.frombuffer(text.encode("ascii").translate(_ASCII_CLASS_BYTES), np.uint8).astype(np.int64)
    else:
        x = classes(text)
    n = len(x) - 2
    if n < TAIL + 40:
        return 0.0
    tri = (x[:-2] * N_CLASSES + x[1:-1]) * N_CLASSES + x[2:]
    known = x[2:] != 0
    nll = np.where(known, table[tri], 0.0)
    t_cnt = int(known[-TAIL:].sum())
    h_cnt = int(known[:-TAIL].sum())
    if t_cnt < 0.8 * TAIL or h_cnt < 30 or t_cnt + h_cnt < 0.8 * n:
        return 0.0
    return float(nll[-TAIL:].sum() / t_cnt - nll[:-TAIL].sum() / h_cnt)


@functools.lru_cache(maxsize=1)
def _lookups() -> tuple[np.ndarray, np.ndarray, int]:
    """(pair, quantised, largest) tables of the ASCII path: ``pair`` maps two class bytes read as
    one little-endian 16-bit number to the trigram index of (them, class 0); ``quantised`` is the
    table in 1/16 nats (``save``) with 0 where the third class is unknown (``known`` below);
    ``largest`` its largest value (what ``_byte_sum`` may add up in one checksum)."""
    with np.load(DEFAULT_TABLE) as data:
        quantised = data["nll_q16"].copy()
    quantised[::N_CLASSES] = 0
    pair = np.zeros(1 << 16, np.intp)
    a, b = np.meshgrid(np.arange(N_CLASSES), np.arange(N_CLASSES), indexing="ij")
    pair[a + 256 * b] = (a * N_CLASSES + b) * N_CLASSES
    return pair, quantised, int(quantised.max())


_ADLER_MOD = 65521
_HIGH_NIBBLE = bytes(b >> 4 for b in range(256))      # bytes.translate tables
_LOW_NIBBLE = bytes(b & 15 for b in range(256))


def _byte_sum(data: bytes, largest: int = 255) -> int:
    """``sum(data)`` for bytes no larger than ``largest``, from zlib's Adler-32 checksum: its low
    half is 1 + the sum of the bytes modulo 65521, so it is the sum itself while that stays below
    65520 (one C pass instead of a Python int per byte). Longer data is summed as its high and
    low nibbles (each at most 15 a byte), and beyond that byte by byte."""
    if len(data) * largest < _ADLER_MOD - 1:
        return (zlib.adler32(data) & 0xFFFF) - 1
    if len(data) * 15 < _ADLER_MOD - 1:
        return 16 * ((zlib.adler32(data.translate(_HIGH_NIBBLE)) & 0xFFFF) - 1) \
            + (zlib.adler32(data.translate(_LOW_NIBBLE)) & 0xFFFF) - 1
    return sum(data)


_F32 = struct.Struct("<f")


def _f32(value: float) -> float:
    """``value`` rounded to the nearest float32 (ties to even), as a Python float."""
    return _F32.unpack(_F32.pack(value))[0]


def _ascii_tail_contrast(spaced: str) -> float:
    """``_tail_contrast`` of ASCII text, given ``" " + " ".join(text.split())``: the same value in
    four array calls instead of some twenty. The table's values are multiples of 1/16 and the
    sums stay far below 2**20, so summing the quantised bytes as integers gives the float32 sums
    exactly. The last step is the same float32 arithmetic done in doubles and rounded to float32
    after each operation: a double holds more than twice float32's precision, so rounding the
    double quotient or difference gives the correctly rounded float32 one (no double rounding
    error), without numpy's scalar machinery."""
    cls = spaced.encode("ascii").translate(_ASCII_CLASS_BYTES)
    n = len(cls) - 2
    if n < TAIL + 40:
        return 0.0
    pair, quantised, largest = _lookups()
    q = quantised[pair.take(np.ndarray((n,), "<u2", cls, 0, (1,)))
                  + np.frombuffer(cls, np.uint8, n, 2)].tobytes()
    tail = _byte_sum(q[-TAIL:], largest)
    head = _byte_sum(q, largest) - tail
    if 0 in cls:          # class 0 (unknown, DEL here) counts in no average
        t_cnt, h_cnt = TAIL - cls[-TAIL:].count(0), n - TAIL - cls[2:-TAIL].count(0)
    else:
        t_cnt, h_cnt = TAIL, n - TAIL
    if t_cnt < 0.8 * TAIL or h_cnt < 30 or t_cnt + h_cnt < 0.8 * n:
        return 0.0
    # tail / 16 and head / 16 are exact in float32 (np.float32 of them in _tail_contrast's sums)
    return _f32(_f32(tail / 16 / t_cnt) - _f32(head / 16 / h_cnt))
