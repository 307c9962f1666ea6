"""Hashed word + character n-gram features, shared by training (train/) and inference.

Pure numpy: character n-grams are hashed with a vectorised polynomial hash over the code points,
word n-grams from crc32 of each word, all folded into ``DIM`` buckets (the hashing trick: no
vocabulary to ship). A few dense structural features (symbol density, glued "adversarial suffix"
tokens, script mix) follow the hashed block; they describe how a text is built rather than what
it is about, which is what carries over to attack families the model never saw.
"""
from __future__ import annotations

import math
import re
import zlib

import numpy as np
import regex

from .normalize import normalize

DIM = 1 << 18
CHAR_NGRAMS = (3, 4, 5)
MAX_CHARS = 20000        # the model reads at most this much of a slot (rules read everything)
DENSE_NAMES = ("symbol_ratio", "glued_token_ratio", "case_flip_ratio", "log_length",
               "non_ascii_ratio", "newline_ratio")
N_FEATURES = DIM + len(DENSE_NAMES)

_WORD = regex.compile(r"\w+")
_SALT = {n: np.uint64(0x9E3779B1 * (n + 1) & 0xFFFFFFFF) for n in (1, 2, 3, 4, 5)}
_MASK = np.uint64(0xFFFFFFFF)
_P = np.uint64(1000003)
# A "glued" token: a whitespace-delimited token holding a letter followed (anywhere later) by two
# of the symbols below. The original pattern ``\S*[A-Za-z]\S*[SYM]\S*[SYM]\S*`` backtracks
# cubically inside every token; this one is deterministic (adjacent classes are disjoint), is tried
# only at token starts and counts exactly the same tokens (see tests/detection/test_speed.py).
_GLUED_REFERENCE = regex.compile(r"\S*[A-Za-z]\S*[{}\[\]()<>\\|^$=`~]\S*[{}\[\]()<>\\|^$=`~]\S*")
_GLUED = regex.compile(
    r"(?<!\S)[^\sA-Za-z]*[A-Za-z][^\s{}\[\]()<>\\|^$=`~]*[{}\[\]()<>\\|^$=`~]"
    r"[^\s{}\[\]()<>\\|^$=`~]*[{}\[\]()<>\\|^$=`~]\S*"
)
# On ASCII text without the separators \x1c-\x1f, the stdlib engine's \s is the same class as the
# regex package's, so it can run the same pattern (3x faster).
_GLUED_ASCII = re.compile(_GLUED.pattern)
_SYM_BYTES = b"{}[]()<>\\|^$=`~"
_NOT_SYM_ASCII = bytes(c for c in range(128) if c not in _SYM_BYTES)
_ODD_ASCII_SPACE = ("\x1c", "\x1d", "\x1e", "\x1f")
# On ASCII text the stdlib engine's \w is the same class as the regex package's, and faster.
_WORD_ASCII = re.compile(r"\w+")
# ASCII characters that are alphanumeric or whitespace by str.isalnum()/str.isspace().
_ALNUM_SPACE_ASCII = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace())
_CASE_FLIP = regex.compile(r"[a-z][A-Z]")
# The stdlib engine's \w is "isalnum() or _" and its \s is isspace(): the symbols of a text are
# the characters of neither class, plus "_".
_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]")
# ASCII bytes: lower-case letters to "l", upper-case to "u": "[a-z][A-Z]" matches never overlap,
# so their count is the count of "lu" in the mapped text.
_CASE_CLASS = bytes.maketrans(bytes(range(128)), bytes(
    108 if 97 <= c <= 122 else 117 if 65 <= c <= 90 else 46 for c in range(128)))
# ASCII bytes that are not \w (per the stdlib engine on str, the same as the regex package's on
# ASCII) become spaces: the words are then the ``bytes.split()`` pieces.
_NON_WORD_TO_SPACE = bytes.maketrans(bytes(range(128)), bytes(
    c if re.fullmatch(r"\w", chr(c)) else 32 for c in range(128)))
_SALT32 = {n: np.uint32(int(v)) for n, v in _SALT.items()}
_P32 = np.uint32(int(_P))
_DENSE_IDX = np.arange(DIM, N_FEATURES, dtype=np.int64)
def _all_char_hashes32(text: str) -> list[np.ndarray]:
    """``_all_char_hashes`` in uint32 arithmetic (the same values: both are modulo 2**32)."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    out = []
    h = cps
    for n in range(2, max(CHAR_NGRAMS) + 1):
        if len(cps) < n:
            h = np.empty(0, dtype=np.uint32)
        else:
            h = h[:len(cps) - n + 1] * _P32
            h += cps[n - 1:]
        if n in CHAR_NGRAMS:
            out.append(h ^ _SALT32[n])
    return out


def _char_hashes(text: str, n: int) -> np.ndarray:
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cps) < n:
        return np.empty(0, dtype=np.uint64)
    h = np.zeros(len(cps) - n + 1, dtype=np.uint64)
    for k in range(n):
        h = ((h * _P) + cps[k:len(cps) - n + 1 + k]) & _MASK
    return h ^ _SALT[n]


def glued_tokens(raw: str) -> int:
    """Count of glued tokens, ``len(_GLUED_REFERENCE.findall(raw))``."""
    if raw.isascii():
        data = raw.encode("ascii")
        if len(data.translate(None, _NOT_SYM_ASCII)) < 2:
            return 0
        if not any(c in raw for c in _ODD_ASCII_SPACE):
            return len(_GLUED_ASCII.findall(raw))
    return len(_GLUED.findall(raw))


def _all_char_hashes(text: str) -> list[np.ndarray]:
    """``[_char_hashes(text, n) for n in CHAR_NGRAMS]``, each length extending the previous one's
    hashes by one code point instead of starting over (same values: the hash is a prefix fold)."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    h = cps
    for n in range(2, max(CHAR_NGRAMS) + 1):
        if len(cps) < n:
            h = np.empty(0, dtype=np.uint64)
        else:
            h = ((h[:len(cps) - n + 1] * _P) + cps[n - 1:]) & _MASK
        if n in CHAR_NGRAMS:
            out.append(h ^ _SALT[n])
    return out


def _unique_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_counts=True)`` for a 1-D array, without its overhead."""
    if len(values) == 0:
        return values, np.empty(0, dtype=np.intp)
    values = np.sort(values)
    first = np.empty(len(values), dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.empty(len(starts), dtype=np.intp)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = len(values) - starts[-1]
    return values[starts], counts


def dense(raw: str) -> np.ndarray:
    length = max(len(raw), 1)
    tokens = raw.split()
    n_tok = max(len(tokens), 1)
    if raw.isascii():
        data = raw.encode("ascii")
        symbols = len(data.translate(None, _ALNUM_SPACE_ASCII))
        non_ascii = 0
        case_flips = data.translate(_CASE_CLASS).count(b"lu")
    else:
        symbols = len(_NOT_WORD_OR_SPACE.findall(raw)) + raw.count("_")
        non_ascii = len(raw) - len(raw.encode("ascii", "ignore"))
        case_flips = len(_CASE_FLIP.findall(raw))
    return np.array([
        symbols / length,
        glued_tokens(raw) / n_tok,
        case_flips / n_tok,
        math.log1p(length) / 10.0,
        non_ascii / length,
        raw.count("\n") / n_tok,
    ], dtype=np.float32)


def dense_reference(raw: str) -> np.ndarray:
    length = max(len(raw), 1)
    tokens = raw.split()
    n_tok = max(len(tokens), 1)
    if raw.isascii():
        symbols = len(raw.encode("ascii").translate(None, _ALNUM_SPACE_ASCII))
        non_ascii = 0
    else:
        symbols = sum(1 for c in raw if not c.isalnum() and not c.isspace())
        non_ascii = sum(1 for c in raw if ord(c) > 127)
    return np.array([
        symbols / length,
        glued_tokens(raw) / n_tok,
        len(_CASE_FLIP.findall(raw)) / n_tok,
        math.log1p(length) / 10.0,
        non_ascii / length,
        raw.count("\n") / n_tok,
    ], dtype=np.float32)


def featurize(raw: str, normalized: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of one text's sparse, L2-normalised feature vector.

    ``normalized``: ``normalize(raw)`` when the caller has it already (used only when ``raw`` fits
    in ``MAX_CHARS``, where it is the same string this function would compute).

    Same output as ``featurize_reference``, computed faster: every hash is taken modulo 2**32, so
    it is computed in uint32 arithmetic (which wraps modulo 2**32); the bucket is its low 18 bits;
    on ASCII text the words are the runs of \\w bytes.
    """
    if normalized is not None and len(raw) <= MAX_CHARS:
        text = normalized
    else:
        raw = raw[:MAX_CHARS]
        text = normalize(raw)
    if text.isascii():
        words = text.encode("ascii").translate(_NON_WORD_TO_SPACE).split()
    else:
        words = [w.encode() for w in _WORD.findall(text)]
    parts = []
    if words:
        wh = np.fromiter(map(zlib.crc32, words), dtype=np.uint32, count=len(words))
        parts.append(wh ^ _SALT32[1])
        if len(wh) > 1:
            parts.append((wh[:-1] * _P32 + wh[1:]) ^ _SALT32[2])
    parts.extend(_all_char_hashes32(f" {text} "))
    if parts:
        buckets = np.concatenate(parts)
        buckets &= np.uint32(DIM - 1)
        idx, counts = _unique_counts(buckets)
        vals = 1.0 + np.log(counts.astype(np.float32))
        vals /= np.sqrt(np.dot(vals, vals))
        idx = idx.astype(np.int64)
    else:
        idx = np.empty(0, dtype=np.int64)
        vals = np.empty(0, dtype=np.float32)
    d = dense(raw)
    return (np.concatenate([idx, _DENSE_IDX]),
            np.concatenate([vals.astype(np.float32), d]))


def featurize_reference(raw: str, normalized: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``featurize`` without its fast paths (tests/detection/test_speed.py checks they agree).

    ``normalized``: ``normalize(raw)`` when the caller has it already (used only when ``raw`` fits
    in ``MAX_CHARS``, where it is the same string this function would compute).
    """
    if normalized is not None and len(raw) <= MAX_CHARS:
        text = normalized
    else:
        raw = raw[:MAX_CHARS]
        text = normalize(raw)
    words = (_WORD_ASCII if text.isascii() else _WORD).findall(text)
    parts = []
    if words:
        wh = np.array(list(map(zlib.crc32, map(str.encode, words))), dtype=np.uint64)
        parts.append(wh ^ _SALT[1])
        if len(wh) > 1:
            parts.append(((wh[:-1] * _P + wh[1:]) & _MASK) ^ _SALT[2])
    parts.extend(_all_char_hashes(f" {text} "))
    if parts:
        buckets = (np.concatenate(parts) % np.uint64(DIM)).astype(np.int64)
        idx, counts = _unique_counts(buckets)
        vals = 1.0 + np.log(counts.astype(np.float32))
        vals /= np.sqrt(np.dot(vals, vals))
    else:
        idx = np.empty(0, dtype=np.int64)
        vals = np.empty(0, dtype=np.float32)
    d = dense_reference(raw)
    return (np.concatenate([idx, np.arange(DIM, N_FEATURES, dtype=np.int64)]),
            np.concatenate([vals.astype(np.float32), d]))
