"""OpenAI-shaped errors (house rule 4): every SDK surfaces them as the right exception."""
from __future__ import annotations

import orjson

# error.code -> error.type, as OpenAI names them
_TYPES = {
    "content_filter": "invalid_request_error",
    "invalid_api_key": "invalid_request_error",
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_quota": "insufficient_quota",
    "request_too_large": "invalid_request_error",
    "guardrail_unavailable": "server_error",
    "upstream_error": "server_error",
    "upstream_timeout": "server_error",
    "not_found": "invalid_request_error",
    "invalid_json": "invalid_request_error",
    "invalid_request": "invalid_request_error",
    "model_not_allowed": "invalid_request_error",
    "unsupported_media_type": "invalid_request_error",
    "method_not_allowed": "invalid_request_error",
    "request_timeout": "invalid_request_error",
}


class ReportedOutage(Exception):
    """A backend is down and reports that itself, once per state change (a log line when it
    goes down and when it comes back, readiness, a metric). The pipeline still records the
    fault on every exchange it hits, but does not log it again per request."""


class ProxyError(Exception):
    """An error the proxy itself answers, before or instead of the upstream."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.type = type or _TYPES.get(code, "invalid_request_error")

    def body(self) -> bytes:
        return error_body(self.message, self.code, self.type, self.param)


def error_body(message: str, code: str, type: str | None = None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {
        "message": message,
        "type": type or _TYPES.get(code, "invalid_request_error"),
        "param": param,
        "code": code,
    }})

