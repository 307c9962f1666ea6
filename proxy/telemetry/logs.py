"""Operational logs with structlog: JSON lines in production, readable in a terminal.

Logs go to stderr: stdout may carry the audit log (sink: stdout). Standard-library loggers
(aiohttp, asyncio, OpenTelemetry) and uncaught exceptions are routed through the same renderer
so every line has one format, and through proxy.telemetry.scrub, so no line carries a local
variable, an exception message that could quote a request, or a library's echo of client bytes.
"""
from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

import orjson
import structlog

from .scrub import exceptions, exceptions_as_text, foreign_message

_HANDLER_NAME = "aifw"


def _orjson_dumps(obj, **_kw) -> str:
    return orjson.dumps(obj, default=str).decode()


def resolve_format(fmt: str, stream: TextIO) -> str:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return "console" if isatty is not None and isatty() else "json"
    return fmt


def setup_logging(fmt: str = "auto", stream: TextIO | None = None, level: int = logging.INFO) -> str:
    """Configure structlog and the stdlib root logger; returns the format chosen."""
    stream = stream or sys.stderr
    fmt = resolve_format(fmt, stream)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # exc_info is turned into a scrubbed "exception" field before any renderer could format a
    # traceback (dict_tracebacks and rich both print locals)
    if fmt == "json":
        tail = [exceptions, structlog.processors.JSONRenderer(serializer=_orjson_dumps)]
    else:
        tail = [exceptions_as_text,
                structlog.dev.ConsoleRenderer(colors=bool(getattr(stream, "isatty", lambda: False)()))]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, foreign_message],
        use_get_message=False, pass_foreign_args=True,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # a record that fails to format must not be printed with its arguments by logging itself
    logging.raiseExceptions = False
    return fmt


def route_uncaught() -> None:
    """Python's own last-resort printers show exception messages: log through ours instead
    (called by `aifw serve`, not by setup_logging: the test runner keeps its own hooks)."""
    logger = logging.getLogger("aifw")
    def excepthook(kind, exc, tb):
        logger.critical("uncaught exception", exc_info=(kind, exc, tb))

    def thread_excepthook(args):
        if args.exc_value is not None:
            logger.critical("uncaught exception in a thread",
                            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
