"""One canonical form of the request target: what endpoints and pass-through globs are matched
on, and exactly what goes upstream.

A proxy that matches one form of a path and forwards another can be walked around: the raw
``/v1/files/../chat/completions`` matches a ``/v1/files*`` pass-through glob, and the upstream
(or the client library, which resolves dot segments) serves ``/v1/chat/completions`` with no
guard run. So the path is percent-decoded once, its dot segments are resolved here, and every
encoding that two parsers could read differently is refused with 400: encoded ``/``, ``\\``,
``.`` and ``%`` (double encoding), backslashes, NULs and other control characters, empty
segments (``//``: some servers merge them), ``..;`` (servlet containers read it as ``..``),
invalid percent escapes and bytes that are not UTF-8. The upstream gets the canonical path
encoded again by one fixed rule (``encode_path``), and the query string exactly as the client
sent it, once it holds only characters RFC 3986 allows there.
"""
from __future__ import annotations

import functools
import re
from urllib.parse import quote, unquote

from .errors import ProxyError

# RFC 3986 pchar (unreserved, sub-delims, ":" "@") plus "/" and percent escapes.
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_QUERY_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# escapes whose decoded character changes how the path splits or resolves
_AMBIGUOUS_ESCAPE = re.compile(r"%(?:2[Ff]|5[Cc]|2[Ee]|25|[01][0-9A-Fa-f]|7[Ff])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# the characters encode_path leaves alone: unreserved, sub-delims, ":" "@" and "/"
_SAFE = "/!$&'()*+,;=:@-._~"


def _refuse(why: str) -> ProxyError:
    return ProxyError(400, "invalid_request", f"Refused request path: {why}.")


@functools.lru_cache(maxsize=64)
def canonical_target(raw: str) -> tuple[str, str]:
    """(decoded canonical path, raw query) of a request target as it came on the request line;
    raises ProxyError 400 for anything ambiguous. Remembered per distinct target (clients send
    the same few; the checks cost ~5k instructions per request): a refusal is not remembered,
    so it is raised afresh every time."""
    return canonical_form(raw)


def canonical_form(raw: str) -> tuple[str, str]:
    """``canonical_target`` without the memory."""
    path, _, query = raw.partition("?")
    if not path.startswith("/"):
        raise _refuse("only origin-form request targets (starting with '/') are accepted")
    if not _PATH_CHARS.fullmatch(path):
        raise _refuse("it holds characters that must be percent-encoded (or backslashes)")
    if query and (not _QUERY_CHARS.fullmatch(query) or _ESCAPE.search(query)):
        raise _refuse("the query string holds characters that must be percent-encoded")
    if "%" in path:
        if _ESCAPE.search(path):
            raise _refuse("invalid percent escape")
        if _AMBIGUOUS_ESCAPE.search(path):
            raise _refuse("encoded '/', '\\', '.', '%' or control characters are ambiguous")
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            raise _refuse("percent escapes that are not UTF-8") from None
        if _CONTROL.search(path):
            raise _refuse("control characters")
    if "//" in path:
        raise _refuse("empty path segment ('//')")
    if "/." not in path:
        return path, query
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        if seg.split(";", 1)[0] in (".", "..") and ";" in seg:
            raise _refuse("dot segment with parameters ('..;')")
        if seg == ".":
            if i == len(segments) - 1:
                out.append("")
        elif seg == "..":
            if not out:
                raise _refuse("'..' above the root")
            out.pop()
            if i == len(segments) - 1:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out), query


def encode_path(path: str) -> str:
    """The one encoding of a canonical path that goes upstream (percent-encodes all but
    unreserved characters, sub-delims, ':', '@' and '/')."""
    return quote(path, safe=_SAFE)


def encode_segment(value: str) -> str:
    """One path segment (an Azure deployment name): '/' is encoded too."""
    return quote(value, safe=_SAFE[1:])


def check_body_headers(headers) -> None:
    """Headers that say how to read an inspected body, each of which must have one meaning.

    The body is read as plain JSON: a content-encoding other than identity, in any case or list
    form (``identity, gzip``), or spread over repeated header lines, is refused with 415; two
    different Content-Type lines are refused with 400 (the proxy would read the first, an
    upstream might read the last); a transfer coding other than chunked is refused with 400."""
    for value in headers.getall("content-encoding", ()):
        for coding in value.split(","):
            if coding.strip().lower() not in ("", "identity"):
                raise ProxyError(415, "unsupported_media_type", "Compressed request bodies are not accepted.")
    for value in headers.getall("transfer-encoding", ()):
        # aiohttp de-chunks but applies no other transfer coding: refuse rather than read the
        # coded bytes as the body
        if any(c.strip().lower() != "chunked" for c in value.split(",")):
            raise ProxyError(400, "invalid_request", "Transfer codings other than chunked are not accepted.")
    ctypes = headers.getall("content-type", ())
    if len(ctypes) > 1 and len({c.strip().lower() for c in ctypes}) > 1:
        raise ProxyError(400, "invalid_request", "The request carries more than one Content-Type.")
