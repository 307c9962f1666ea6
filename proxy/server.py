"""The connection layer: errors aiohttp's HTTP parser raises before any handler runs.

aiohttp answers a request it cannot parse (oversized or too many headers, a malformed request
line, duplicate Content-Length, bad chunked framing) from ``RequestHandler.handle_error`` with a
text/plain 400 and none of our headers; no middleware sees it. ``make_runner`` builds the
AppRunner both ``aifw serve`` and the tests use, whose connections answer those errors (and any
unhandled exception) in OpenAI's error shape with an ``x-aifw-request-id`` (house rule 4):

| what the parser refused | status | error.code |
|---|---|---|
| request line or header field over ``server.maxHeaderBytes``, too many headers | 431 | request_too_large |
| anything else it refused (request line, header syntax, framing, chunked encoding) | 400 | invalid_request |

Such a request never reaches a handler, so never the upstream, and the connection is closed.
A chunked-encoding error in a body the handler is already reading is handed to that handler as
a ``web.RequestPayloadError`` (the handler answers 400), instead of leaving it waiting for
bytes that will never be parsed.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from .app import REQUEST_ID, own_answer, runner_kwargs
from .errors import error_body
from .requestid import new_request_id

_TOO_MANY_HEADERS = "Too many headers received"


def _parse_error(exc: BaseException | None, limit: int) -> tuple[int, str, str]:
    """(status, code, message) for an error of aiohttp's HTTP parser."""
    if isinstance(exc, LineTooLong):
        return 431, "request_too_large", (f"The request line or a header field is longer than "
                                          f"the limit of {limit} bytes.")
    if _reason(exc).startswith(_TOO_MANY_HEADERS):
        return 431, "request_too_large", "The request has too many header fields."
    return 400, "invalid_request", f"Malformed HTTP request: {_reason(exc)}."


def _reason(exc: BaseException | None) -> str:
    # aiohttp's first line names the problem ("Duplicate Content-Length:", "Invalid character in
    # chunk size:"); the lines after it quote the client's bytes, which we do not echo.
    text = getattr(exc, "message", "") or str(exc or "")
    return (text.strip().splitlines() or ["malformed request"])[0].rstrip(":").strip()[:200]


class AifwRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol with OpenAI-shaped answers to errors it raises itself."""

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # bytes of a response are out already: the connection is broken (aiohttp's behaviour)
            raise ConnectionError("Response is sent already, cannot send another response "
                                  "with the error message")
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
            self.log_debug("Bad request from %s: %r", request.remote, exc)
            status, code, text = _parse_error(exc, max(self.max_line_size, self.max_field_size))
            etype = "invalid_request_error"
        elif status == 504:
            self.log_debug("Request handler timed out for %s", request.remote)
            code, text, etype = "timeout", "The proxy timed out handling this request.", "server_error"
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            code, text, etype = "internal_error", "The proxy failed to handle this request.", "server_error"
        resp = web.Response(status=status, body=error_body(text, code, etype),
                            headers={REQUEST_ID: new_request_id(), "Content-Type": "application/json"})
        resp.force_close()
        return resp

    def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None):
        # a plain call that hands on aiohttp's coroutine: no extra coroutine per request
        return super().finish_response(request, own_answer(resp), start_time)

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) <= queued:
            return
        err = self._messages[-1][0]
        if not isinstance(err, _ErrInfo):
            return
        # A parse error while the parser was inside a request's body (a bad chunk after the
        # headers went out): that request's handler is waiting on its payload. Fail the payload
        # so the handler answers, drop the queued error (one answer per request) and close.
        if len(self._messages) >= 2:
            payload = self._messages[-2][1]
        else:
            current = self._current_request
            payload = current.content if current is not None else None
        if payload is None or payload.is_eof():
            return
        self._messages.pop()
        payload.set_exception(web.RequestPayloadError(f"Malformed request body: {_reason(err.exc)}."))
        self.close()


class AifwServer(web.Server):
    def __call__(self) -> RequestHandler:
        return AifwRequestHandler(self, loop=self._loop, **self._kwargs)


class AifwAppRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Application._make_handler builds a plain web.Server; give it our protocol factory and
        # keep everything it set up (handler, request factory, debug, handler_args).
        server.__class__ = AifwServer
        return server


def make_runner(app: web.Application, policy: Any, *, max_shutdown_timeout: float | None = None) -> web.AppRunner:
    """The runner for `aifw serve` and the tests: the policy's server settings plus AifwServer."""
    kwargs = runner_kwargs(policy)
    if max_shutdown_timeout is not None:
        kwargs["shutdown_timeout"] = min(kwargs["shutdown_timeout"], max_shutdown_timeout)
    return AifwAppRunner(app, handle_signals=False, **kwargs)
