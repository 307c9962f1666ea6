"""What a log line may say about an exception or a third-party message: nothing a client sent.

structlog's ``dict_tracebacks`` (and rich's console tracebacks) print every frame's local
variables: the fingerprint secret, provider and virtual keys, prompt text. Exception messages
are no safer: ``KeyError('sk-...')``, an orjson error quoting the body, a UnicodeEncodeError
quoting a header. So an exception is logged as its type and its frames (file, line, function)
only; its message is kept only for types whose message is written by the OS or a network
library about our own configuration (a host, a port, a file path), never about request data.

Messages of other libraries' loggers (aiohttp, asyncio, OpenTelemetry) are rendered from their
format string with each exception argument replaced by its type, and only their first line is
kept: asyncio's "Task exception was never retrieved" puts ``exception=KeyError('...')`` on the
lines after it, aiohttp's "Bad request" quotes the client's bytes in its argument.
"""
from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType
from typing import Any

MAX_FRAMES = 30
MAX_CHAIN = 3
MAX_FOREIGN_CHARS = 300
OWN_LOGGERS = "aifw"


def _message_is_safe(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and not isinstance(exc, UnicodeError):
        return True
    # redis-py's connection errors are not OSErrors; their text names the configured server
    return type(exc).__module__.startswith("redis.") and type(exc).__name__ in ("ConnectionError", "TimeoutError")


def _frames(tb: TracebackType | None) -> list[str]:
    out = []
    for frame in traceback.extract_tb(tb)[-MAX_FRAMES:]:
        parent = os.path.basename(os.path.dirname(frame.filename))
        out.append(f"{parent}/{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}")
    return out


def describe(exc: BaseException, depth: int = 0) -> dict[str, Any]:
    """Type, frames, the message only where it cannot carry request data, and the cause."""
    kind = type(exc)
    out: dict[str, Any] = {"type": kind.__name__ if kind.__module__ == "builtins"
                           else f"{kind.__module__}.{kind.__qualname__}"}
    if _message_is_safe(exc):
        out["message"] = str(exc)[:MAX_FOREIGN_CHARS]
    out["frames"] = _frames(exc.__traceback__)
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and depth < MAX_CHAIN:
        out["cause"] = describe(cause, depth + 1)
    return out


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1]
    if exc_info:
        return sys.exc_info()[1]
    return None


def as_text(desc: dict[str, Any]) -> str:
    """The console form of ``describe``: a traceback-like block without locals or messages."""
    lines = [f"  {frame}" for frame in desc["frames"]]
    head = desc["type"] + (f": {desc['message']}" if "message" in desc else "")
    text = "\n".join(["Traceback (locals and request data not shown):", *lines, head])
    if "cause" in desc:
        text = as_text(desc["cause"]) + "\n\nwhich caused:\n" + text
    return text


def exceptions(_logger, _name, event_dict: dict) -> dict:
    """structlog processor: ``exc_info`` becomes ``exception`` (see ``describe``)."""
    exc = _exception_of(event_dict.pop("exc_info", None))
    if exc is not None:
        event_dict["exception"] = describe(exc)
    return event_dict


def exceptions_as_text(logger, name, event_dict: dict) -> dict:
    """As ``exceptions``, rendered as text for structlog's ConsoleRenderer."""
    event_dict = exceptions(logger, name, event_dict)
    if "exception" in event_dict:
        event_dict["exception"] = as_text(event_dict["exception"])
    return event_dict


def _safe_arg(arg: Any) -> Any:
    if isinstance(arg, BaseException):
        return type(arg).__name__
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return f"<{len(arg)} bytes>"
    return arg


def foreign_message(_logger, _name, event_dict: dict) -> dict:
    """ProcessorFormatter pre-chain step for stdlib records (use_get_message=False,
    pass_foreign_args=True). Our own loggers format as usual (their arguments are ids, counts
    and policy problems); another library's message is formatted with sanitised arguments and
    keeps its first line only, cut to MAX_FOREIGN_CHARS."""
    args = event_dict.pop("positional_args", ())
    text = str(event_dict.get("event", ""))
    record = event_dict.get("_record")
    name = getattr(record, "name", "") or ""
    own = name == OWN_LOGGERS or name.startswith(OWN_LOGGERS + ".")
    if args:
        if not own and isinstance(args, tuple):
            args = tuple(_safe_arg(a) for a in args)
        try:
            text = text % args
        except (TypeError, ValueError, KeyError):
            text = f"{text} (unformattable arguments)"
    if not own:
        text = (text.splitlines() or [""])[0][:MAX_FOREIGN_CHARS]
    event_dict["event"] = text
    return event_dict
