"""A fake OpenAI / Azure OpenAI / Anthropic provider that speaks the real wire formats.

It is an aiohttp app, so tests can run it in their own event loop and the benchmark can run
it in its own process (bench/upstream.py). Shapes follow the providers byte for byte where a
proxy could care: OpenAI pretty-prints its JSON bodies, streams `data: {chunk}\\n\\n` ...
`data: [DONE]\\n\\n` for chat/completions and `event: <type>\\ndata: ...` for the Responses
API; Azure prepends a `prompt_filter_results` chunk with `choices: []`; Anthropic streams named
events and compact JSON.

Use in tests::

    @pytest.fixture
    async def fake_provider():
        async with run_fake_provider() as fake:
            yield fake

    client = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="sk-test")
    await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-test"

`fake.url` is the root (`http://127.0.0.1:PORT`), `fake.openai_url` is `fake.url + "/v1"`
(what the OpenAI SDK and AIFW_UPSTREAM_URL want), Anthropic's SDK and Azure's
`azure_endpoint` take `fake.url`.

The reply echoes the last user text ("You said: ...") unless `state.replies` (a script: one
reply consumed per request, in order, e.g. invalid JSON and then valid JSON for a client that
asks again), `x-fake-reply` (percent-decoded) or `state.reply` sets it. Request headers that steer one exchange (they win over the knobs on
`FakeState`):

- `x-fake-mode`: comma list of `error:<status>`, `gzip`, `disconnect:<n>` (abort the
  connection after n SSE events), `slow:<ms>` (pause between events), `stall:<ms>` (pause
  before the first byte), `keepalive` (`: keep-alive` comments between events), `no-usage`
  (omit usage; OpenAI formats only, Anthropic always reports usage), `tool` (answer with a
  call of the first tool the request offers), `hold:<n>` (after n SSE events, wait until the
  test sets `state.release`), `gzip` on a stream (gzip-compressed SSE, flushed per event),
  `corrupt:<n>` (with `gzip`: bytes that are not gzip after n events), `sse` (stream the answer
  whatever the request's `stream` says, as lenient servers do when they read `"stream": "true"`
  as true).
- `refuse` (drop the connection without answering), `quota` (429 `insufficient_quota`, the
  answer of an account without credit).
- `x-fake-reply`, `x-fake-chunks: N` (N deltas instead of one per word),
  `x-fake-tool-call: <tool name>`, `x-fake-tool-args: <json>`, `x-fake-usage: P,C`.

Failing on command, per instance (run one fake per upstream): `state.fail_next` is a list of
modes, one consumed per request in order ("" answers normally), e.g.
`fake.state.fail_next = ["error:500", "refuse", "stall:3000", "disconnect:2", "quota", ""]`;
`error:429` answers with `retry-after: state.retry_after`.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import re
import secrets
import socket
import struct
import time
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator
from urllib.parse import unquote

import orjson
from aiohttp import web

from .classifier import add_classifier_routes
from .hook import add_hook_routes

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small")
STATE_KEY = web.AppKey("fake_state", object)
COMMAND_KEY = web.RequestKey("fake_command", str)
JSON_KEY = web.RequestKey("fake_json", object)
OPENAI_ERROR_KINDS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    json: Any  # the parsed body, or None when absent or not JSON
    body: bytes
    raw_path: str = ""  # the request target exactly as it came on the request line


@dataclass
class FakeState:
    """Knobs (apply to every request unless a request header overrides) and recordings."""

    reply: str | None = None
    replies: list[str] = field(default_factory=list)  # one reply per request, consumed in order
    chunks: int | None = None
    modes: list[str] = field(default_factory=list)  # same syntax as x-fake-mode
    fail_next: list[str] = field(default_factory=list)  # one mode per request, consumed in order
    tool_call: str | None = None  # tool name to call when the request offers tools
    tool_args: str | None = None  # JSON arguments for that call
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens instead of estimates
    require_auth: bool = True
    api_keys: set[str] | None = None  # accepted keys; None accepts any non-empty key
    models: tuple[str, ...] = DEFAULT_MODELS
    embedding_dimensions: int = 8
    retry_after: str = "1"
    record: bool = True  # the benchmark turns recording off so memory stays flat
    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: int = 0
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    completed_streams: int = 0
    events_sent: int = 0  # SSE events whose write returned (a blocked write has not)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends a `hold:<n>` pause


@dataclass(frozen=True)
class Modes:
    error: int | None = None
    gzip: bool = False
    disconnect_after: int | None = None
    slow_ms: int = 0
    stall_ms: int = 0
    keepalive: bool = False
    no_usage: bool = False
    tool: bool = False
    sse: bool = False
    hold_after: int | None = None
    corrupt_after: int | None = None
    refuse: bool = False
    quota: bool = False


def request_modes(request: web.Request, state: FakeState) -> Modes:
    """The state's modes, this request's command from ``fail_next``, and its x-fake-mode header."""
    return parse_modes(list(state.modes) + [request.get(COMMAND_KEY, "")]
                       + request.headers.get("x-fake-mode", "").split(","))


def parse_modes(items: list[str]) -> Modes:
    opts: dict[str, Any] = {}
    for raw in items:
        name, _, arg = raw.strip().partition(":")
        if not name:
            continue
        if name == "error":
            opts["error"] = int(arg)
        elif name == "disconnect":
            opts["disconnect_after"] = int(arg or 0)
        elif name in ("slow", "stall"):
            opts[f"{name}_ms"] = int(arg)
        elif name in ("hold", "corrupt"):
            opts[f"{name}_after"] = int(arg)
        elif name in ("gzip", "keepalive", "tool", "refuse", "quota", "sse"):
            opts[name] = True
        elif name == "no-usage":
            opts["no_usage"] = True
        else:
            raise ValueError(f"unknown x-fake-mode {name!r}")
    return Modes(**opts)


# ---------------------------------------------------------------------------------------------
# What the request asks for


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    """Everything a handler needs to answer one request, decided before the first byte."""

    modes: Modes
    text: str
    chunks: int | None
    tool: ToolCall | None
    prompt_tokens: int
    completion_tokens: int

    @property
    def pieces(self) -> list[str]:
        # Only streams need pieces; splitting lazily keeps the benchmark's upstream cheap.
        return split_pieces(self.tool.arguments if self.tool else self.text, self.chunks)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif part.get("type") == "tool_result":
                    parts.append(_text_of(part.get("content")))
        return "\n".join(p for p in parts if p)
    return ""


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list) or not messages:
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text_of(msg.get("content"))
    last = messages[-1]
    if isinstance(last, dict):
        return _text_of(last.get("content") or last.get("output"))
    return ""


def _all_strings(value: Any, out: list[str]) -> list[str]:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _all_strings(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _all_strings(v, out)
    return out


def _estimate_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def split_pieces(text: str, n: int | None) -> list[str]:
    """One piece per word by default (like token deltas), or exactly n pieces."""
    if n is None:
        return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    n = max(1, n)
    return [text[round(i * len(text) / n): round((i + 1) * len(text) / n)] for i in range(n)]


def _tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        # chat: {"type":"function","function":{"name"}}; responses and anthropic: {"name"}
        fn = tool.get("function")
        name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
        if isinstance(name, str):
            names.append(name)
    return names


def make_plan(request: web.Request, state: FakeState, body: Any, prompt_source: Any,
              call_prefix: str = "call_") -> Plan:
    headers = request.headers
    modes = request_modes(request, state)
    if state.replies:
        text = state.replies.pop(0)
    elif "x-fake-reply" in headers:
        text = unquote(headers["x-fake-reply"])
    elif state.reply is not None:
        text = state.reply
    else:
        text = f"You said: {_last_user_text(prompt_source)}"
    chunks = int(headers["x-fake-chunks"]) if "x-fake-chunks" in headers else state.chunks

    tool = None
    offered = _tool_names(body.get("tools")) if isinstance(body, dict) else []
    wanted = headers.get("x-fake-tool-call", state.tool_call)
    if offered and (wanted or modes.tool):
        name = wanted if wanted in offered else offered[0]
        args = headers.get("x-fake-tool-args", state.tool_args)
        if args is None:
            args = orjson.dumps({"text": text}).decode()
        tool = ToolCall(call_prefix + secrets.token_hex(12), name, args)

    if "x-fake-usage" in headers:
        p, c = (int(x) for x in headers["x-fake-usage"].split(","))
    elif state.usage is not None:
        p, c = state.usage
    else:
        p = _estimate_tokens("".join(_all_strings(prompt_source, [])))
        c = _estimate_tokens(tool.arguments if tool else text)
    return Plan(modes, text, chunks, tool, p, c)


# ---------------------------------------------------------------------------------------------
# Responses: headers, errors, JSON and SSE


def _openai_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    h = {
        "x-request-id": "req_" + secrets.token_hex(16),
        "openai-organization": "user-fakeorg",
        "openai-processing-ms": str(secrets.randbelow(300) + 20),
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-remaining-tokens": "29999000",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-reset-tokens": "0s",
    }
    if extra:
        h.update(extra)
    return h


def _azure_headers() -> dict[str, str]:
    return _openai_headers({"apim-request-id": secrets.token_hex(16), "x-ms-region": "East US",
                            "azureml-model-session": "d001-20250101000000"})


def _anthropic_headers() -> dict[str, str]:
    reset = (datetime.now(timezone.utc) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    h = {"request-id": "req_" + secrets.token_urlsafe(18), "anthropic-organization-id": "fake-org"}
    for kind, limit in (("requests", 4000), ("tokens", 400000), ("input-tokens", 200000),
                        ("output-tokens", 80000)):
        h[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        h[f"anthropic-ratelimit-{kind}-remaining"] = str(limit - 1)
        h[f"anthropic-ratelimit-{kind}-reset"] = reset
    return h


def _json_response(payload: Any, headers: dict[str, str], status: int = 200,
                   pretty: bool = True, compress: bool = False) -> web.Response:
    data = orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0)
    headers = dict(headers)
    if compress:
        data = gzip.compress(data)
        # Set by hand so aiohttp's own compression machinery stays out of the way.
        headers["content-encoding"] = "gzip"
    return web.Response(body=data, status=status, headers=headers,
                        content_type="application/json")


_DEFAULT: Any = object()


def openai_error(status: int, message: str | None = None, code: Any = _DEFAULT,
                 headers: dict[str, str] | None = None, retry_after: str = "1") -> web.Response:
    etype, default_code, default_message = OPENAI_ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}"))
    h = headers if headers is not None else _openai_headers()
    if status == 429 or status >= 500:
        h["retry-after"] = retry_after
    if status == 429:
        h["x-ratelimit-remaining-requests"] = "0"
    body = {"error": {"message": message or default_message, "type": etype, "param": None,
                      "code": default_code if code is _DEFAULT else code}}
    return _json_response(body, h, status)


def anthropic_error(status: int, message: str | None = None, retry_after: str = "1") -> web.Response:
    h = _anthropic_headers()
    if status == 429 or status >= 500:
        h["retry-after"] = retry_after
    body = {"type": "error",
            "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"),
                      "message": message or f"Error {status}"},
            "request_id": h["request-id"]}
    return _json_response(body, h, status, pretty=False)


class ClientGone(Exception):
    """The client closed the connection before the stream ended."""

    def __init__(self, resp: web.StreamResponse | None):
        super().__init__("client went away")
        self.resp = resp


class SSEWriter:
    """Writes events, applying the slow/keepalive/disconnect modes, and notices a client that
    went away (a failed write) so tests can assert that the proxy cancelled upstream."""

    def __init__(self, request: web.Request, state: FakeState, modes: Modes):
        self.request, self.state, self.modes = request, state, modes
        self.resp: web.StreamResponse | None = None
        self.sent = 0
        self.gzip = zlib.compressobj(wbits=16 + zlib.MAX_WBITS) if modes.gzip else None

    async def start(self, headers: dict[str, str]) -> web.StreamResponse:
        headers = dict(headers)
        headers["content-type"] = "text/event-stream; charset=utf-8"
        headers["cache-control"] = "no-cache"
        if self.gzip is not None:
            headers["content-encoding"] = "gzip"
        self.resp = web.StreamResponse(status=200, headers=headers)
        await self._write(None)
        if self.modes.disconnect_after == 0:
            self._abort()
        return self.resp

    async def event(self, data: Any, event: str | None = None) -> None:
        if self.sent and self.modes.slow_ms:
            await asyncio.sleep(self.modes.slow_ms / 1000)
        if self.sent and self.sent == self.modes.hold_after:
            await self.state.release.wait()
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        prefix = b": keep-alive\n\n" if self.sent and self.modes.keepalive else b""
        head = b"event: " + event.encode() + b"\n" if event else b""
        raw = prefix + head + b"data: " + payload + b"\n\n"
        if self.gzip is not None:
            raw = self.gzip.compress(raw) + self.gzip.flush(zlib.Z_SYNC_FLUSH)
            if self.sent == self.modes.corrupt_after:
                raw = b"\xde\xad\xbe\xef not gzip at all" * 4
        await self._write(raw)
        self.sent += 1
        self.state.events_sent += 1
        if self.modes.disconnect_after is not None and self.sent >= self.modes.disconnect_after:
            self._abort()

    async def finish(self) -> web.StreamResponse:
        assert self.resp is not None
        try:
            if self.gzip is not None:
                await self.resp.write(self.gzip.flush())
            await self.resp.write_eof()
        except ConnectionResetError:
            self._gone()
            raise ClientGone(self.resp) from None
        self.state.completed_streams += 1
        return self.resp

    async def _write(self, data: bytes | None) -> None:
        assert self.resp is not None
        try:
            if data is None:
                await self.resp.prepare(self.request)
            else:
                await self.resp.write(data)
        except ConnectionResetError:
            self._gone()
            raise ClientGone(self.resp) from None
        except asyncio.CancelledError:
            self._gone()
            raise

    def _gone(self) -> None:
        self.state.disconnects += 1
        self.state.disconnected.set()

    def _abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        raise ProviderAborted(self.resp)


class ProviderAborted(ClientGone):
    """Raised after the fake deliberately cut the connection (disconnect mode)."""


# ---------------------------------------------------------------------------------------------
# OpenAI chat completions (also Azure)


def _chat_usage(plan: Plan) -> dict[str, Any]:
    return {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


AZURE_FILTER = {k: {"filtered": False, "severity": "safe"}
                for k in ("hate", "self_harm", "sexual", "violence")}


async def chat_completions(request: web.Request, body: dict, azure: str | None = None) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    plan = make_plan(request, state, body, body.get("messages"))
    model = azure or body.get("model", "gpt-4o-mini")
    headers = _azure_headers() if azure else _openai_headers()
    cid, created, fp = "chatcmpl-" + secrets.token_urlsafe(21), int(time.time()), "fp_" + secrets.token_hex(5)
    finish = "tool_calls" if plan.tool else "stop"
    if plan.modes.stall_ms:
        await asyncio.sleep(plan.modes.stall_ms / 1000)

    if not (body.get("stream") or plan.modes.sse):
        message: dict[str, Any] = {"role": "assistant", "content": None if plan.tool else plan.text,
                                   "refusal": None, "annotations": []}
        if plan.tool:
            message["tool_calls"] = [{"id": plan.tool.call_id, "type": "function",
                                      "function": {"name": plan.tool.name,
                                                   "arguments": plan.tool.arguments}}]
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        payload: dict[str, Any] = {"id": cid, "object": "chat.completion", "created": created,
                                   "model": model, "choices": [choice]}
        if not plan.modes.no_usage:
            payload["usage"] = _chat_usage(plan)
        payload["service_tier"] = "default"
        payload["system_fingerprint"] = fp
        if azure:
            choice["content_filter_results"] = AZURE_FILTER
            payload["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": AZURE_FILTER}]
        return _json_response(payload, headers, compress=plan.modes.gzip)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not plan.modes.no_usage
    sse = SSEWriter(request, state, plan.modes)
    await sse.start(headers)
    if azure:
        await sse.event({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                         "prompt_filter_results": [{"prompt_index": 0,
                                                    "content_filter_results": AZURE_FILTER}]})

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                             "model": model, "service_tier": "default", "system_fingerprint": fp,
                             "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}]}
        if azure:
            c["choices"][0]["content_filter_results"] = {} if finish_reason else AZURE_FILTER
        if include_usage:
            c["usage"] = None
        return c

    if plan.tool:
        await sse.event(chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": plan.tool.call_id, "type": "function",
             "function": {"name": plan.tool.name, "arguments": ""}}], "refusal": None}))
        for piece in plan.pieces:
            await sse.event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        await sse.event(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in plan.pieces:
            await sse.event(chunk({"content": piece}))
    await sse.event(chunk({}, finish))
    if include_usage:
        await sse.event({"id": cid, "object": "chat.completion.chunk", "created": created,
                         "model": model, "service_tier": "default", "system_fingerprint": fp,
                         "choices": [], "usage": _chat_usage(plan)})
    await sse.event(b"[DONE]")
    return await sse.finish()


# ---------------------------------------------------------------------------------------------
# OpenAI legacy completions (also Azure)


async def completions(request: web.Request, body: dict, azure: str | None = None) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    prompt = body.get("prompt", "")
    plan = make_plan(request, state, None, prompt[-1] if isinstance(prompt, list) and prompt else prompt)
    model = azure or body.get("model", "gpt-3.5-turbo-instruct")
    headers = _azure_headers() if azure else _openai_headers()
    cid, created = "cmpl-" + secrets.token_urlsafe(21), int(time.time())
    usage = {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
             "total_tokens": plan.prompt_tokens + plan.completion_tokens}
    if plan.modes.stall_ms:
        await asyncio.sleep(plan.modes.stall_ms / 1000)

    def obj(choices: list, with_usage: bool) -> dict[str, Any]:
        o: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created,
                             "model": model, "choices": choices, "system_fingerprint": None}
        if with_usage:
            o["usage"] = usage
        return o

    def choice(text: str, finish: str | None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}

    if not (body.get("stream") or plan.modes.sse):
        return _json_response(obj([choice(plan.text, "stop")], not plan.modes.no_usage), headers,
                              compress=plan.modes.gzip)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not plan.modes.no_usage
    sse = SSEWriter(request, state, plan.modes)
    await sse.start(headers)
    pieces = plan.pieces
    for i, piece in enumerate(pieces):
        await sse.event(obj([choice(piece, "stop" if i == len(pieces) - 1 else None)], False))
    if include_usage:
        await sse.event(obj([], True))
    await sse.event(b"[DONE]")
    return await sse.finish()


# ---------------------------------------------------------------------------------------------
# OpenAI embeddings (also Azure)


def fake_embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector per text, so equal inputs give equal vectors."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [(seed[i % 32] ^ (i * 37 % 256)) / 127.5 - 1.0 for i in range(dims)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    # Round-trip through float32 so the float and base64 encodings carry identical values.
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


async def embeddings(request: web.Request, body: dict, azure: str | None = None) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    modes = request_modes(request, state)
    inputs = body.get("input", "")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    dims = int(body.get("dimensions") or state.embedding_dimensions)
    data = []
    for i, item in enumerate(inputs):
        vec = fake_embedding(item if isinstance(item, str) else orjson.dumps(item).decode(), dims)
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = _estimate_tokens("".join(x if isinstance(x, str) else "" for x in inputs))
    payload: dict[str, Any] = {"object": "list", "data": data,
                               "model": azure or body.get("model", "text-embedding-3-small")}
    if not modes.no_usage:
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if modes.stall_ms:
        await asyncio.sleep(modes.stall_ms / 1000)
    return _json_response(payload, _azure_headers() if azure else _openai_headers(),
                          compress=modes.gzip)


# ---------------------------------------------------------------------------------------------
# OpenAI Responses API


async def responses(request: web.Request, body: dict) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    plan = make_plan(request, state, body, body.get("input"), call_prefix="call_")
    rid, created = "resp_" + secrets.token_hex(24), int(time.time())
    item_id = ("fc_" if plan.tool else "msg_") + secrets.token_hex(24)
    if plan.modes.stall_ms:
        await asyncio.sleep(plan.modes.stall_ms / 1000)

    def response_obj(status: str, output: list, usage: bool) -> dict[str, Any]:
        r: dict[str, Any] = {
            "id": rid, "object": "response", "created_at": created, "status": status,
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None, "model": body.get("model", "gpt-4o-mini"), "output": output,
            "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": None, "reasoning": {"effort": None, "summary": None},
            "safety_identifier": None, "service_tier": "default", "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **(body.get("text") or {})},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "usage": None, "user": body.get("user"), "metadata": body.get("metadata") or {},
        }
        if usage and not plan.modes.no_usage:
            r["usage"] = {"input_tokens": plan.prompt_tokens,
                          "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                          "output_tokens": plan.completion_tokens,
                          "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": plan.prompt_tokens + plan.completion_tokens}
        return r

    def item(status: str, text: str) -> dict[str, Any]:
        if plan.tool:
            return {"id": item_id, "type": "function_call", "status": status, "arguments": text,
                    "call_id": plan.tool.call_id, "name": plan.tool.name}
        content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
        return {"id": item_id, "type": "message", "status": status,
                "content": content if status == "completed" else [], "role": "assistant"}

    full = plan.tool.arguments if plan.tool else plan.text
    if not (body.get("stream") or plan.modes.sse):
        return _json_response(response_obj("completed", [item("completed", full)], True),
                              _openai_headers(), compress=plan.modes.gzip)

    sse = SSEWriter(request, state, plan.modes)
    await sse.start(_openai_headers())
    seq = 0

    async def emit(etype: str, **fields: Any) -> None:
        nonlocal seq
        await sse.event({"type": etype, "sequence_number": seq, **fields}, event=etype)
        seq += 1

    await emit("response.created", response=response_obj("in_progress", [], False))
    await emit("response.in_progress", response=response_obj("in_progress", [], False))
    await emit("response.output_item.added", output_index=0, item=item("in_progress", ""))
    if plan.tool:
        for piece in plan.pieces:
            await emit("response.function_call_arguments.delta", item_id=item_id, output_index=0,
                       delta=piece)
        await emit("response.function_call_arguments.done", item_id=item_id, output_index=0,
                   name=plan.tool.name, arguments=full)
    else:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        await emit("response.content_part.added", item_id=item_id, output_index=0,
                   content_index=0, part=part)
        for piece in plan.pieces:
            await emit("response.output_text.delta", item_id=item_id, output_index=0,
                       content_index=0, delta=piece, logprobs=[])
        await emit("response.output_text.done", item_id=item_id, output_index=0,
                   content_index=0, text=full, logprobs=[])
        await emit("response.content_part.done", item_id=item_id, output_index=0,
                   content_index=0, part={**part, "text": full})
    await emit("response.output_item.done", output_index=0, item=item("completed", full))
    await emit("response.completed", response=response_obj("completed", [item("completed", full)], True))
    return await sse.finish()


# ---------------------------------------------------------------------------------------------
# Anthropic Messages API


async def messages(request: web.Request, body: dict) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    plan = make_plan(request, state, body, body.get("messages"), call_prefix="toolu_")
    model = body.get("model", "claude-sonnet-4-5")
    mid = "msg_" + secrets.token_urlsafe(18)
    stop = "tool_use" if plan.tool else "end_turn"
    if plan.modes.stall_ms:
        await asyncio.sleep(plan.modes.stall_ms / 1000)
    usage = {"input_tokens": plan.prompt_tokens, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "output_tokens": plan.completion_tokens,
             "service_tier": "standard"}

    if not (body.get("stream") or plan.modes.sse):
        if plan.tool:
            block = {"type": "tool_use", "id": plan.tool.call_id, "name": plan.tool.name,
                     "input": orjson.loads(plan.tool.arguments)}
        else:
            block = {"type": "text", "text": plan.text}
        payload = {"id": mid, "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        return _json_response(payload, _anthropic_headers(), pretty=False, compress=plan.modes.gzip)

    sse = SSEWriter(request, state, plan.modes)
    await sse.start(_anthropic_headers())
    start_usage = {**usage, "output_tokens": 1}
    await sse.event({"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start")
    if plan.tool:
        block = {"type": "tool_use", "id": plan.tool.call_id, "name": plan.tool.name, "input": {}}
        delta_of = lambda piece: {"type": "input_json_delta", "partial_json": piece}  # noqa: E731
    else:
        block = {"type": "text", "text": ""}
        delta_of = lambda piece: {"type": "text_delta", "text": piece}  # noqa: E731
    await sse.event({"type": "content_block_start", "index": 0, "content_block": block},
                    "content_block_start")
    await sse.event(b'{"type": "ping"}', "ping")
    for piece in plan.pieces:
        await sse.event({"type": "content_block_delta", "index": 0, "delta": delta_of(piece)},
                        "content_block_delta")
    await sse.event({"type": "content_block_stop", "index": 0}, "content_block_stop")
    await sse.event({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                     "usage": {"output_tokens": plan.completion_tokens}}, "message_delta")
    await sse.event({"type": "message_stop"}, "message_stop")
    return await sse.finish()


# ---------------------------------------------------------------------------------------------
# Routing, auth and recording


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _key_ok(state: FakeState, key: str) -> bool:
    return bool(key) and (state.api_keys is None or key in state.api_keys)


def _openai_auth(request: web.Request, state: FakeState) -> web.Response | None:
    if not state.require_auth:
        return None
    key = _bearer(request)
    if not key:
        return openai_error(401, "You didn't provide an API key. You need to provide your API key "
                            "in an Authorization header using Bearer auth (i.e. Authorization: "
                            "Bearer YOUR_KEY).", code=None)
    if not _key_ok(state, key):
        return openai_error(401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}.")
    return None


async def _body(request: web.Request) -> tuple[dict | None, web.Response | None]:
    body = request.get(JSON_KEY)
    if not isinstance(body, dict):
        return None, openai_error(400, "We could not parse the JSON body of your request. (HINT: "
                                  "This likely means you aren't using your HTTP library correctly.)")
    return body, None


def _mode_error(request: web.Request, state: FakeState, anthropic: bool = False) -> web.Response | None:
    modes = request_modes(request, state)
    if modes.quota:
        h = _openai_headers()
        body = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                          "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
        return _json_response(body, h, 429)
    if modes.error is None:
        return None
    if anthropic:
        return anthropic_error(modes.error, retry_after=state.retry_after)
    return openai_error(modes.error, retry_after=state.retry_after)


OPENAI_POST = {"chat/completions": chat_completions, "completions": completions,
               "embeddings": embeddings, "responses": responses}


async def openai_post(request: web.Request) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    handler = OPENAI_POST[request.match_info["endpoint"]]
    early = _mode_error(request, state) or _openai_auth(request, state)
    if early:
        return early
    body, bad = await _body(request)
    return bad or await handler(request, body)


async def azure_post(request: web.Request) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    if "api-version" not in request.query:
        return _json_response({"error": {"code": "404", "message": "Resource not found"}}, {}, 404)
    if state.require_auth and not _key_ok(state, request.headers.get("api-key", "")):
        return _json_response({"error": {"code": "401", "message": (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.")}}, _azure_headers(), 401)
    early = _mode_error(request, state)
    if early:
        return early
    body, bad = await _body(request)
    endpoint = request.match_info["endpoint"]
    if bad or endpoint == "responses":
        return bad or openai_error(404, "Resource not found")
    return await OPENAI_POST[endpoint](request, body, azure=request.match_info["deployment"])


async def anthropic_post(request: web.Request) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    early = _mode_error(request, state, anthropic=True)
    if early:
        return early
    # Anthropic takes the key as x-api-key; SDK 2.x sends it as `Authorization: Bearer` instead.
    key = request.headers.get("x-api-key") or _bearer(request)
    if state.require_auth and not _key_ok(state, key):
        return anthropic_error(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return anthropic_error(400, "anthropic-version: header is required")
    body = request.get(JSON_KEY)
    if not isinstance(body, dict):
        return anthropic_error(400, "There was an issue with the request body: invalid JSON")
    if not isinstance(body.get("max_tokens"), int):
        return anthropic_error(400, "max_tokens: Field required")
    return await messages(request, body)


def _model_obj(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1715367049, "owned_by": "system"}


async def list_models(request: web.Request) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    early = _mode_error(request, state) or _openai_auth(request, state)
    if early:
        return early
    data = [_model_obj(m) for m in state.models]
    return _json_response({"object": "list", "data": data}, _openai_headers())


async def get_model(request: web.Request) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    early = _mode_error(request, state) or _openai_auth(request, state)
    if early:
        return early
    model_id = request.match_info["model"]
    if model_id not in state.models:
        return openai_error(404, f"The model '{model_id}' does not exist", code="model_not_found")
    return _json_response(_model_obj(model_id), _openai_headers())


async def not_found(request: web.Request) -> web.StreamResponse:
    return openai_error(404, f"Invalid URL ({request.method} {request.path})", code=None)


@web.middleware
async def record_and_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    state: FakeState = request.app[STATE_KEY]
    raw = await request.read()
    parsed = None
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
    request[JSON_KEY] = parsed
    if state.record:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        state.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                              headers, parsed, raw, request.raw_path))
    if state.fail_next:
        request[COMMAND_KEY] = state.fail_next.pop(0)
    try:
        if request_modes(request, state).refuse:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        return await handler(request)
    except ValueError as exc:  # a malformed x-fake-* header is a test bug: say so loudly
        return openai_error(400, f"fake provider: {exc}")
    except ClientGone as gone:
        # The connection is gone either way; hand aiohttp the already-started response so it
        # does not try to start a second one on a dead transport.
        return gone.resp if gone.resp is not None else web.Response(status=499)


def make_provider_app(state: FakeState | None = None) -> web.Application:
    app = web.Application(middlewares=[record_and_guard], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state if state is not None else FakeState()
    app.router.add_post("/v1/{endpoint:chat/completions|completions|embeddings|responses}", openai_post)
    app.router.add_post("/openai/deployments/{deployment}/{endpoint:chat/completions|completions|embeddings|responses}",
                        azure_post)
    app.router.add_post("/v1/messages", anthropic_post)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    add_classifier_routes(app)    # /classify, /predict: the injection guard's escalation targets
    add_hook_routes(app)          # /hook/allow: an operator guard hook that allows everything
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


# ---------------------------------------------------------------------------------------------
# Running it


class FakeProvider:
    """A running fake: where it listens, what it saw, and its knobs (`.state`)."""

    def __init__(self, state: FakeState, port: int, host: str = "127.0.0.1"):
        self.state = state
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.openai_url = self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def last_request(self) -> RecordedRequest:
        return self.state.requests[-1]

    @property
    def disconnects(self) -> int:
        return self.state.disconnects

    @property
    def disconnected(self) -> asyncio.Event:
        return self.state.disconnected

    async def wait_for_disconnect(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.state.disconnected.wait(), timeout)

    def reset(self) -> None:
        self.state.requests.clear()
        self.state.disconnects = 0
        self.state.disconnected.clear()


@asynccontextmanager
async def run_fake_provider(state: FakeState | None = None, host: str = "127.0.0.1",
                            port: int = 0) -> AsyncIterator[FakeProvider]:
    state = state if state is not None else FakeState()
    runner = web.AppRunner(make_provider_app(state), access_log=None, handle_signals=False,
                           shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield FakeProvider(state, sock.getsockname()[1], host)
    finally:
        await runner.cleanup()
