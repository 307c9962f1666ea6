"""Operational logs with structlog: JSON lines in production, readable in a terminal.

Logs go to stderr: stdout may carry the audit log (sink: stdout). Standard-library loggers
(aiohttp, asyncio) are routed through the same renderer so every line has one format.
"""
from __future__ import annotations

import logging
import sys
from typing import TextIO

import orjson
import structlog

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
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        tail = [structlog.processors.dict_tracebacks, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=bool(getattr(stream, "isatty", lambda: False)()))
        tail = [renderer]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return fmt
