"""Evasion transforms: the views of a text that rules are matched against.

Attackers hide trigger phrases behind Unicode tricks (full-width letters, Cyrillic look-alikes,
zero-width joiners, tag characters, bidi overrides), spacing and punctuation ("i.g.n.o.r.e"),
leetspeak ("1gn0r3") and encodings (base64, hex, URL escapes, rot13). Each rule names the views
it needs; a ``Prepared`` text builds every view at most once, lazily, and counts the tricks it
removed because their mere presence is a signal.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse

import regex

from ..lazyimport import lazy
from .charclass import b64_tail, glue_any, glue_count, join_split, odd_count

# The character model (numpy and its table) is needed by the first scan, not by the rule loader
# or `aifw policy check`: a start imports it (settings.compile_settings), a check never does.
charlm = lazy("proxy.detection.charlm", globals(), "charlm")
# The indirect-request analysis (~250 patterns compiled at import) likewise: a scan's first use.
indirect = lazy("proxy.detection.indirect", globals(), "indirect")

# Zero-width characters, word joiners, BOM, soft hyphen, Mongolian vowel separator, the
# Unicode tag block (invisible "ASCII smuggling") and bidi embedding/override/isolate controls.
_INVISIBLE = regex.compile(
    r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
# ZWJ/ZWNJ are legitimate in Indic and Arabic scripts and in emoji sequences: stripped, not
# counted as a signal.
_INVISIBLE_SIGNAL = regex.compile(
    r"[\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\U000e0000-\U000e007f]"
)
_TAG_BLOCK = regex.compile(r"[\U000e0020-\U000e007e]")

# Confusable folding (a subset of Unicode TR39 confusables.txt: the Cyrillic and Greek letters
# that render like Latin ones). Applied only inside words that mix scripts, so genuine Russian or
# Greek text is left alone while "ignоre" (Cyrillic o) becomes "ignore".
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m",
    "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q",
    "ԝ": "w", "ӏ": "l", "ɡ": "g", "ո": "n", "ս": "u",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c",
})
_MIXED_WORD = regex.compile(r"\b(?=\w*\p{Latin})(?=\w*[\p{Cyrillic}\p{Greek}])\w+\b")

# Letters written with emoji-like symbols NFKC leaves alone: regional indicators (the letters of
# flag pairs, "🇮🇬🇳🇴🇷🇪"), negative circled and negative squared capitals ("🅸🅶🅽🅾🆁🅴").
_LETTER_SYMBOLS = {**{0x1F1E6 + i: chr(97 + i) for i in range(26)},
                   **{0x1F150 + i: chr(97 + i) for i in range(26)},
                   **{0x1F170 + i: chr(97 + i) for i in range(26)}}
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_WS = regex.compile(r"\s+")
_WORDS = regex.compile(r"\w+")
_ASCII_WORDS = re.compile(r"\w+")          # the stdlib engine is faster; same words on ASCII


def words(text: str) -> list[str]:
    """The runs of word characters of ``text``."""
    return (_ASCII_WORDS if text.isascii() else _WORDS).findall(text)


# Characters dropped by the "collapse" view: everything but letters, digits, whitespace and the
# leet symbols (translated before the drop).
_PUNCT = regex.compile(r"[^\w\s]+|_+")
# "i g n o r e" / "i.g.n.o.r.e": runs of single letters separated by one non-letter get joined.
_SPACED_LETTERS = regex.compile(r"\b(?:\w[\s.\-_*]){3,}\w\b")

# Encoded segments worth decoding. Lengths keep ordinary words and numbers out.
_B64 = regex.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = regex.compile(r"(?:(?:\\x|0x)?[0-9a-fA-F]{2}[\s:,]?){8,}")
_URLENC = regex.compile(r"(?:%[0-9a-fA-F]{2}[^\s%]{0,3}){4,}")
_BINARY = regex.compile(r"(?:[01]{8}\s?){4,}")
_ROT13_HINT = regex.compile(r"\brot[\s\-_]?13\b", regex.I)
_MAX_SEGMENTS = 32
# Necessary conditions for the encoded-segment patterns, run with the stdlib engine (several times
# faster on prose): a base64 segment holds 16 consecutive base64 characters, a hex segment is a
# run of at least 16 characters drawn from hex digits, separators and the \x / 0x prefixes (the
# stdlib \s is a superset of the regex package's), a binary one 8 consecutive bits. Only when one
# holds is the exact pattern run, so the segments found are the same.
_MAY_B64 = re.compile(r"[A-Za-z0-9+/]{16}")
_MAY_HEX = re.compile(r"[0-9a-fA-Fx\\:,\s]{16}")
_MAY_BINARY = re.compile(r"[01]{8}")
# On ASCII text the two first tests are run on byte-mapped copies instead, one per class (tables
# derived from the same character classes): a member becomes "b" (base64) or "h" (hex run), any
# other byte ".".
_MAY_B64_CLASS = re.compile(r"[A-Za-z0-9+/]")
_MAY_HEX_CLASS = re.compile(r"[0-9a-fA-Fx\\:,\s]")


def _class_map(member: re.Pattern, mark: bytes) -> bytes:
    return bytes.maketrans(bytes(range(128)),
                           b"".join(mark if member.fullmatch(chr(c)) else b"." for c in range(128)))


_B64_MAP = _class_map(_MAY_B64_CLASS, b"b")
_HEX_MAP = _class_map(_MAY_HEX_CLASS, b"h")
_HEX_RUN = re.compile(rb"h{16,}")
_BINARY_ONLY = bytes.maketrans(bytes(range(256)), bytes(98 if c in b"01" else 46 for c in range(256)))

# Chat-template control tokens of common open models; inside user content they try to open a
# fake system or assistant turn.
CHAT_TEMPLATE = regex.compile(
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|"
    r"end_header_id|eot_id)\|>|\[/?INST\]|<<\s*/?SYS\s*>>|<\s*/?(?:start_of_turn|end_of_turn)>|"
    r"^\s*###\s*(?:System|Instruction|Assistant)\s*:",
    regex.I | regex.M,
)



def template_tokens(text: str) -> int:
    """``len(CHAT_TEMPLATE.findall(text))``. Every alternative holds "<|", "<<", "[INST]" or
    "[/INST]", "<" with "start_of_turn"/"end_of_turn", or "###" (the letters in any case), so
    ASCII text with none of those holds no token (in ASCII text only ASCII letters match the
    pattern's letters, which lower-casing equates). Text with a "<" that is none of them, such as
    the PII guard's placeholders (``<EMAIL_ADDRESS_1>``), then costs a few substring tests
    instead of a search."""
    if not ("<" in text or "[" in text or "#" in text):
        return 0
    if text.isascii() and not ("<|" in text or "<<" in text or "###" in text):
        lower = text.lower()
        if not ("inst]" in lower or "<" in text and "_of_turn" in lower):
            return 0
    return len(CHAT_TEMPLATE.findall(text))


VIEWS = ("raw", "normalized", "collapsed", "decoded")

# Optimised adversarial suffixes (GCG-style) end an otherwise plain request with a run of tokens
# glued to brackets, backslashes and case flips: "...bomb $\\{fen AS <?hide](textitspanifying6<<".
# The symbols and the glued pairs are counted by charclass.py.
_PLAIN_WORD = regex.compile(r"\b[a-z]{3,}\b")


SUFFIX_TAIL = 160           # the symbol and glue counts read the last line's last 160 characters


class LastLine:
    """A text's last line, as the suffix signals read it, and the odd-symbol and glued-pair counts
    of its last ``SUFFIX_TAIL`` characters, each counted on first use: JB-2007
    (``adversarial_suffix``) and JB-2010 (``gibberish_suffix``) read the same two counts of the
    same characters, so a text's ``Prepared`` hands both one of these."""

    __slots__ = ("line", "tail", "_odd", "_glue")

    def __init__(self, text: str):
        self.line = text.rstrip().rsplit("\n", 1)[-1]
        self.tail = self.line[-SUFFIX_TAIL:]
        self._odd: int | None = None
        self._glue: int | None = None

    def odd(self) -> int:
        """``odd_count(self.tail)``."""
        if self._odd is None:
            self._odd = odd_count(self.tail)
        return self._odd

    def glue(self) -> int:
        """``glue_count(self.tail)``."""
        if self._glue is None:
            self._glue = glue_count(self.tail)
        return self._glue


def adversarial_suffix(text: str, last: LastLine | None = None) -> int:
    """1 when the last line ends in a glued-symbol run after a plain-language opening.
    ``last``: ``LastLine(text)`` when the caller keeps one."""
    if last is None:
        last = LastLine(text)
    tail = last.tail
    if len(tail) < 40:
        return 0
    return int(last.odd() >= 5 and last.glue() >= 3
               and sum(map(str.isalpha, tail)) / len(tail) > 0.45
               and len(_PLAIN_WORD.findall(text[:300])) >= 4)


def filler_suffix(text: str) -> int:
    """Lone "!" tokens in the last line: GCG-style optimisers start their suffix as twenty "!"
    separated by spaces and replace only some of them, so a run of them trails the request. A "!!!"
    of excitement is one token and does not count."""
    if text.count("!") < 5:
        return 0
    tokens = text.rstrip().rsplit("\n", 1)[-1].split()[-40:]
    lone = sum(1 for t in tokens if t[0] == "!" and (len(t) == 1 or t[1] != "!") and len(t) <= 3)
    return lone if lone >= 5 and lone * 5 >= len(tokens) else 0


SUFFIX_CHARS = 600          # the gibberish signal reads at most this much of the last line
_PROSE_TAIL = re.compile(r"[A-Za-z][A-Za-z ,.'\u2019:;-]*[.?!\"'\u2019)]\s*")
# The ASCII characters _PROSE_TAIL can match at all (any of its classes); the rest are deleted
# from the bytes by ``_may_be_prose_tail``.
_PROSE_ASCII = bytes(c for c in range(128)
                     if re.fullmatch(r"[A-Za-z ,.'\u2019:;-]|[.?!\"'\u2019)]|\s", chr(c)))


def _prose_tail(text: str) -> bool:
    """``_PROSE_TAIL.fullmatch(text) is not None``. A full match consumes every character with
    one of the pattern's classes, so ASCII text holding any other character (a digit, a bracket,
    a "#") has none: one deletion from the bytes instead of the pattern's backtracking over
    the whole span."""
    if text.isascii() and text.encode("ascii").translate(None, _PROSE_ASCII):
        return False
    return _PROSE_TAIL.fullmatch(text) is not None


def gibberish_suffix(text: str, adversarial: int | None = None, last_line: LastLine | None = None) -> int:
    """Adversarial-suffix score x100 of the last line: how much less probable its last 60
    characters are than the rest of the line under a character model of ordinary English
    (charlm.py, estimated from CPython's documentation, no attack data), plus a little for odd
    symbols and glued tokens in its tail. 0 for short or mostly non-ASCII lines, and when the older
    structural heuristic (``adversarial_suffix``, JB-2007) fires already. JB-2010 fires at
    95, the highest value seen on the NotInject and plain-harmful-goal benign families.
    ``last_line``: ``LastLine(text)`` when the caller keeps one."""
    if last_line is None:
        last_line = LastLine(text)
    last = last_line.line[-SUFFIX_CHARS:]
    if len(last) < 100 or (adversarial_suffix(text, last_line) if adversarial is None else adversarial):
        return 0         # JB-2007 already counts this suffix: the two never add up
    # An encoded payload at the end ("decode this base64: V3JpdGUg...") is improbable English by
    # construction: it is judged by what it decodes to (the decoded view), not as a suffix.
    if b64_tail(last) or _hex_in(last[-80:]):
        return 0
    # A tail of plain words that ends a sentence ("... the Rosetta Stone in deciphering Egyptian
    # hieroglyphs.") is prose, however rare its names: optimised suffixes glue tokens to symbols
    # and do not stop at a full stop. The character model alone read proper names as noise.
    end = last[-charlm.TAIL:]      # the span the character model compares with the rest
    if _prose_tail(end.split(" ", 1)[-1]) and not glue_any(end):
        return 0
    contrast = charlm.tail_contrast(last)
    # last_line.tail is last[-SUFFIX_TAIL:]: SUFFIX_CHARS is the longer
    score = (contrast + 0.08 * min(last_line.odd(), 10)
             + 0.08 * min(last_line.glue(), 10))
    return max(int(score * 100), 0)


def _hex_in(text: str) -> bool:
    """``_HEX.search(text) is not None``: a match is 16 or more characters of the hex-run class,
    so on ASCII text without such a run (the byte-class copy ``decode_segments`` uses) there is
    none."""
    if text.isascii() and \
            b"h" * 16 not in text.encode("ascii").translate(_HEX_MAP):
        return False
    return _HEX.search(text) is not None


def _fold_mixed(match: regex.Match) -> str:
    return match.group(0).translate(_CONFUSABLES)


def _printable_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    good = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    return good / len(data)


def _try_text(data: bytes) -> str | None:
    if len(data) < 6 or _printable_ratio(data) < 0.9:
        return None
    return data.decode("ascii", "ignore")


_PRINTABLE_RUN = re.compile(rb"[\t\n\r\x20-\x7e]{12,}")


def _text_runs(data: bytes) -> str | None:
    """The readable stretches of a damaged payload: one corrupted base64 quad turns the rest of a
    segment into noise for a strict decoder, while the instruction before it still reads."""
    runs = _PRINTABLE_RUN.findall(data)
    return " ".join(r.decode("ascii") for r in runs) if runs else None


def decode_segments(text: str) -> list[str]:
    """Decoded plain text of base64/hex/binary/URL-encoded (and, when hinted, rot13) segments."""
    out: list[str] = []
    hex_spans: list[tuple[int, int]] | None = None      # None: search the whole text
    data = text.encode("ascii") if text.isascii() else None
    if data is not None:
        # The same two tests on byte-mapped copies: 16 consecutive class members.
        may_b64 = b"b" * 16 in data.translate(_B64_MAP)
        hexes = data.translate(_HEX_MAP)
        may_hex = b"h" * 16 in hexes
        if may_hex:
            # every character of a hex match is a class member: search the long runs only
            hex_spans = [m.span() for m in _HEX_RUN.finditer(hexes)]
    else:
        may_b64 = max(map(len, text.split()), default=0) >= 16 and _MAY_B64.search(text)
        may_hex = _MAY_HEX.search(text)
    # A base64 run has no white space, so it lies inside one str.split() token, whose ends see
    # what the pattern's lookarounds would see there (a non-member).
    b64 = (m for tok in text.split() if len(tok) >= 16 for m in _B64.finditer(tok)) if may_b64 else ()
    for m in b64:
        seg = m.group(0)
        try:
            raw = base64.b64decode(seg + "=" * (-len(seg) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        dec = _try_text(raw) or _text_runs(raw)
        if dec:
            out.append(dec)
        if len(out) >= _MAX_SEGMENTS:
            return out
    spans = ((0, len(text)),) if hex_spans is None else hex_spans
    for m in ((m for a, b in spans for m in _HEX.finditer(text, a, b)) if may_hex else ()):
        digits = regex.sub(r"\\x|0x|[\s:,]", "", m.group(0))
        try:
            dec = _try_text(bytes.fromhex(digits[: len(digits) // 2 * 2]))
        except ValueError:
            continue
        if dec:
            out.append(dec)
    if data is not None:      # eight binary digits in a row, found on a byte-mapped copy
        may_binary = b"b" * 8 in data.translate(_BINARY_ONLY)
    else:
        may_binary = ("0" in text or "1" in text) and _MAY_BINARY.search(text)
    for m in (_BINARY.finditer(text) if may_binary else ()):
        bits = "".join(m.group(0).split())     # the separators may be newlines or tabs too
        raw = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits) - 7, 8))
        dec = _try_text(raw)
        if dec:
            out.append(dec)
    for m in (_URLENC.finditer(text) if "%" in text else ()):
        out.append(urllib.parse.unquote(m.group(0)))
    if "13" in text and _ROT13_HINT.search(text):
        out.append(codecs.decode(text, "rot13"))
    return out[:_MAX_SEGMENTS]


# The only characters str.split() treats as whitespace and the regex package's \s does not.
_ODD_SPACE = ("\x1c", "\x1d", "\x1e", "\x1f")


# The other characters str.split() and ``_WS`` treat as white space in ASCII text.
_ASCII_SPACE = ("\t", "\n", "\x0b", "\x0c", "\r")


def squeeze(text: str) -> str:
    """``_WS.sub(" ", text).strip()``, computed with str.split() when that is the same thing."""
    if text.isascii():
        return _squeeze_ascii(text)
    if any(map(text.__contains__, _ODD_SPACE)):      # a C loop: no generator frame
        return _WS.sub(" ", text).strip()
    return " ".join(text.split())


def _squeeze_ascii(text: str) -> str:
    """``squeeze`` of ASCII text: with ``_ODD_SPACE`` the pattern; else ``" ".join(text.split())``
    as every white space character made a space, runs of spaces halved until none is left and
    the ends stripped: a few substring scans instead of one string per word (a fifth of the time
    on 20 KB of prose, which has no run of spaces to halve)."""
    if any(map(text.__contains__, _ODD_SPACE)):      # a C loop: no generator frame
        return _WS.sub(" ", text).strip()
    return join_split(text, _ASCII_SPACE)


def normalize(text: str, lower: str | None = None) -> str:
    """``lower``: ``text.lower()`` when the caller has it (read only for ASCII text)."""
    if text.isascii():      # NFKC, invisible stripping and folding are no-ops on ASCII
        return squeeze(text.lower() if lower is None else lower)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _MIXED_WORD.sub(_fold_mixed, text)
    if text and "\U0001f150" <= max(text):      # empty: the text was only invisible characters
        text = text.translate(_LETTER_SYMBOLS)
    return squeeze(text.casefold())


# ASCII fast path of ``collapse``, tables derived from the patterns themselves. A spaced-letter
# match "x.y.z.w" alternates word characters and separators; mapping each ASCII character to its
# class (w: word only, s: separator only, b: both, i.e. "_", x: neither), no such run of seven in
# the mapped text means ``_SPACED_LETTERS`` cannot match, so its search is skipped.
_SPACED_SEP = regex.compile(r"[\s.\-_*]")
_WORD_CHAR = regex.compile(r"\w")


def _ascii_class(c: str) -> str:
    w, s = _WORD_CHAR.fullmatch(c) is not None, _SPACED_SEP.fullmatch(c) is not None
    return "b" if w and s else "w" if w else "s" if s else "x"


_SPACED_CLASS = bytes.maketrans(bytes(range(128)),
                                "".join(_ascii_class(chr(c)) for c in range(128)).encode())
# Leet substitution then ``_PUNCT`` in one byte table: a character that is neither \w nor \s
# after substitution, or "_", becomes a space. ``squeeze`` then joins the runs of spaces this
# leaves exactly as it joins the single space ``_PUNCT`` puts in place of each run.
_LEET_PUNCT = bytes.maketrans(bytes(range(128)), bytes(
    32 if (_PUNCT.fullmatch(chr(c).translate(_LEET)) is not None) else ord(chr(c).translate(_LEET))
    for c in range(128)))


# A match needs four single word characters with a separator between each: seven characters of
# classes w s w s w s w ("_" is both, class b).
_SPACED_RUN = re.compile(rb"[wb][sb][wb][sb][wb][sb][wb]")


# More "_" than this (snake_case code, say): one search of the whole text beats a search per "_".
_SPACED_B_WINDOWS = 8


def _may_have_spaced_letters(text: str) -> bool:
    if not text.isascii():
        return True
    mapped = text.encode("ascii").translate(_SPACED_CLASS)
    if b"wswswsw" in mapped:
        return True               # the only match without a "b"
    # Every other match holds a "b" ("_"), so lies within six bytes of one: search there only.
    # A PII placeholder (``<phone_number_1>`` once lower-cased) holds two.
    at = mapped.find(b"b")
    if at == -1:
        return False
    if mapped.count(b"b") > _SPACED_B_WINDOWS:
        return _SPACED_RUN.search(mapped) is not None
    while at != -1:
        if _SPACED_RUN.search(mapped, max(0, at - 6), at + 7) is not None:
            return True
        at = mapped.find(b"b", at + 1)
    return False


def collapse(normalized: str) -> str:
    """Leet substitution, spaced-letter joining and punctuation removal on a normalized text."""
    if _may_have_spaced_letters(normalized):
        text = _SPACED_LETTERS.sub(lambda m: regex.sub(r"[\s.\-_*]", "", m.group(0)), normalized)
    else:
        text = normalized
    if text.isascii():
        return _squeeze_ascii(text.encode("ascii").translate(_LEET_PUNCT).decode("ascii"))
    text = text.translate(_LEET)
    text = _PUNCT.sub(" ", text)
    return squeeze(text)


# "i g n o r e   a l l": letters one space apart, words three or more apart. Squeezing the
# whitespace first would run the words together; joined here, they stay words.
_SPACED_WORDS = regex.compile(r"(?<!\S)(?:\w ){2,}\w(?:\s{3,}(?:\w ){1,}\w)+(?!\S)")


def join_spaced_words(text: str) -> str:
    return _SPACED_WORDS.sub(
        lambda m: " ".join(w.replace(" ", "") for w in regex.split(r"\s{3,}", m.group(0))), text)


def collapse_reference(normalized: str) -> str:
    """``collapse`` without the fast paths (tests/detection/test_speed.py)."""
    text = _SPACED_LETTERS.sub(lambda m: regex.sub(r"[\s.\-_*]", "", m.group(0)), normalized)
    text = text.translate(_LEET)
    text = _PUNCT.sub(" ", text)
    return squeeze(text)


class Prepared:
    """One text and its lazily built views, plus the evasion signals seen while building them."""

    __slots__ = ("raw", "_views", "_anchor_hits", "_words", "invisible", "tags", "mixed_script",
                 "template_tokens", "_adversarial_suffix", "_gibberish_suffix", "_filler_suffix",
                 "_requests", "_embedded_task", "_lower", "_last_line")

    def __init__(self, text: str):
        self.raw = text
        self._views: dict[str, str] = {"raw": text}
        self._anchor_hits: dict[str, tuple] = {}
        self._words: dict[str, list[str]] = {}
        self.invisible = len(_INVISIBLE_SIGNAL.findall(text)) if not text.isascii() else 0
        self.tags = len(_TAG_BLOCK.findall(text)) if self.invisible else 0
        self.mixed_script = 0 if text.isascii() else len(_MIXED_WORD.findall(
            unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))))
        self.template_tokens = template_tokens(text)
        # The suffix signals are read only by rules of the slots they apply to (a user's request,
        # not a fetched document): computed on first use.
        self._adversarial_suffix: int | None = None
        self._gibberish_suffix: int | None = None
        self._filler_suffix: int | None = None
        self._last_line: LastLine | None = None
        self._requests: indirect.Requests | None = None
        self._embedded_task: int | None = None
        self._lower: str | None = None

    @property
    def last_line(self) -> LastLine:
        """The last line and its tail's counts, shared by the two suffix signals below."""
        if self._last_line is None:
            self._last_line = LastLine(self.raw)
        return self._last_line

    @property
    def adversarial_suffix(self) -> int:
        if self._adversarial_suffix is None:
            self._adversarial_suffix = adversarial_suffix(self.raw, self.last_line)
        return self._adversarial_suffix

    @property
    def gibberish_suffix(self) -> int:
        if self._gibberish_suffix is None:
            self._gibberish_suffix = gibberish_suffix(self.raw, self.adversarial_suffix,
                                                      self.last_line)
        return self._gibberish_suffix

    @property
    def filler_suffix(self) -> int:
        if self._filler_suffix is None:
            self._filler_suffix = filler_suffix(self.raw)
        return self._filler_suffix

    @property
    def lower(self) -> str:
        """``raw.lower()``: the indirect checks read it, and so does the normalized view of ASCII
        text (one lower-casing of a 20 KB tool result instead of three)."""
        if self._lower is None:
            self._lower = self.raw.lower()
        return self._lower

    @property
    def requests(self) -> "indirect.Requests":
        """Requests to an assistant in data (indirect.py); computed on first use, so only slots a
        rule reads them for (tool results, documents) pay for them."""
        if self._requests is None:
            self._requests = indirect.analyse(self.raw, self.lower)
        return self._requests

    @property
    def secondary_task(self) -> int:
        """Off-topic requests to an assistant planted in data (IND-4001)."""
        return self.requests.secondary

    @property
    def assistant_request(self) -> int:
        """Requests to an assistant anywhere in data, on topic or not (IND-4008)."""
        return self.requests.any

    @property
    def embedded_task(self) -> int:
        """A request to an assistant inside the text a message asks to process (indirect.py)."""
        if self._embedded_task is None:
            self._embedded_task = indirect.embedded_tasks(self.raw, self.lower)
        return self._embedded_task

    def anchor_hits(self, name: str, compute):
        """``compute(view)`` (the rules' literal prefilter hits, ``prefilter_hit_set``), once per
        view."""
        got = self._anchor_hits.get(name)
        if got is None:
            got = self._anchor_hits[name] = compute(self.view(name))
        return got

    def words(self, name: str) -> list[str]:
        """The words of a view (word-list rules look them up), once per view."""
        got = self._words.get(name)
        if got is None:
            text = self.view(name)
            got = self._words[name] = words(text)
        return got

    def view(self, name: str) -> str:
        got = self._views.get(name)
        if got is not None:
            return got
        if name == "normalized":
            # the lower-cased text only where normalize reads it (other text is case-folded)
            got = normalize(self.raw, self.lower) if self.raw.isascii() else normalize(self.raw)
        elif name == "collapsed":
            base = self.view("normalized")
            got = collapse(base if "   " not in self.raw else normalize(join_spaced_words(self.raw)))
            if got == base:
                got = base      # same object: matchers skip a view identical to one already read
        elif name == "decoded":
            # Tag characters carry hidden ASCII: decode them along with the encoded segments.
            parts = decode_segments(self.raw)
            if self.tags:
                parts.append("".join(chr(ord(c) - 0xE0000) for c in _TAG_BLOCK.findall(self.raw)))
            # ". " between segments: every run of white space in a view is one space (prefilter
            # anchors rely on it) and no phrase runs on from one segment into the next.
            got = ". ".join(normalize(p) for p in parts)
        else:
            raise KeyError(f"unknown view {name!r}")
        self._views[name] = got
        return got
