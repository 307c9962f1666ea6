"""proxy.telemetry.scrub through the real logging setup: no locals, no request data in messages."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import orjson
import pytest
import structlog

from proxy.telemetry.logs import setup_logging

SECRET = "sk-proj-SCRUBMARK-77"
pytestmark = pytest.mark.usefixtures("restore_logging")


def lookup(table: dict, key: str):
    secret_local = SECRET   # noqa: F841 - dict_tracebacks used to print this
    return table[key]


def raise_and_log(log_call) -> None:
    try:
        lookup({}, SECRET)
    except KeyError:
        log_call()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_exceptions_keep_type_and_frames_only(fmt):
    stream = io.StringIO()
    setup_logging(fmt, stream)
    raise_and_log(lambda: structlog.get_logger("aifw.t").exception("structlog_failure"))
    raise_and_log(lambda: logging.getLogger("aifw.t").exception("stdlib failure %s", "req_1"))
    raise_and_log(lambda: logging.getLogger("aiohttp.server").exception("Error handling request"))
    try:
        orjson.loads(b'{"prompt": "' + SECRET.encode() + b'"')   # orjson quotes the input
    except orjson.JSONDecodeError as exc:
        logging.getLogger("aifw").error("bad body", exc_info=exc)
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count("KeyError") == 3 and "JSONDecodeError" in out
    assert "test_log_scrub.py" in out and "in lookup" in out        # where it happened is kept
    if fmt == "json":
        first = json.loads(out.splitlines()[0])
        assert first["exception"]["type"] == "KeyError" and "message" not in first["exception"]
        assert "locals" not in out


def test_chained_exceptions_and_os_errors():
    stream = io.StringIO()
    setup_logging("json", stream)
    try:
        try:
            lookup({}, SECRET)
        except KeyError as exc:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6379)") from exc
    except OSError:
        logging.getLogger("aifw.limits").exception("redis down")
    line = json.loads(stream.getvalue())
    # an OS error's text names our own configuration (host, port, path): kept
    assert line["exception"]["message"].startswith("[Errno 111] Connect call failed")
    assert line["exception"]["cause"]["type"] == "KeyError" and "message" not in line["exception"]["cause"]
    assert SECRET not in stream.getvalue()


def test_foreign_messages_keep_their_first_line_and_no_exception_text():
    stream = io.StringIO()
    setup_logging("json", stream, level=logging.DEBUG)
    exc = ValueError(f"Invalid header value {SECRET}")
    logging.getLogger("aiohttp.server").debug("Bad request from %s: %r", "127.0.0.1", exc)
    logging.getLogger("asyncio").error(f"Task exception was never retrieved\nfuture: <Task exception=KeyError('{SECRET}')>")
    logging.getLogger("aiohttp.server").warning("payload %s", SECRET.encode())
    logging.getLogger("aifw.reload").error("policy reload failed; keeping policy %s:\n%s", "p", "line 2")
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["Bad request from 127.0.0.1: 'ValueError'", "Task exception was never retrieved",
                      f"payload <{len(SECRET)} bytes>", "policy reload failed; keeping policy p:\nline 2"]


def test_a_record_that_cannot_be_formatted_is_not_printed_by_logging():
    stream = io.StringIO()
    setup_logging("json", stream)
    logging.getLogger("aifw").error("%d items", SECRET)          # our own logger, bad arguments
    assert SECRET not in stream.getvalue()


async def test_asyncio_task_exception_is_scrubbed():
    stream = io.StringIO()
    setup_logging("json", stream)

    async def fail():
        lookup({}, SECRET)

    loop = asyncio.get_running_loop()
    task = loop.create_task(fail())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    loop.call_exception_handler({"message": "Task exception was never retrieved", "exception": task.exception(),
                                 "future": task})
    out = stream.getvalue()
    assert "Task exception was never retrieved" in out and "KeyError" in out and SECRET not in out
