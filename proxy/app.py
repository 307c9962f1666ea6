"""The server side of the edge: aiohttp handlers that hand each exchange to the pipeline.

This module, upstream.py and upclient.py are the only ones that import aiohttp.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import operator
import time
import zlib
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from . import pipeline
from .canonical import canonical_target, check_body_headers
from .cost.exchange import request_stream_usage
from .deadline import Deadline
from .endpoints import passthrough, resolve
from .errors import ProxyError, error_body
from .exchange import Exchange
from .identity import apply_user_assertion, identify, reject_malformed_headers, unverified_identity
from .intake import read_slots, refused_in_answer, route_request
from .parsing import strictjson, structured
from .parsing.response import apply_usage, parse_response
from .parsing.structured import add_usage
from .parsing.sse import SSEParser
from .parsing.stream import StreamProcessor, StreamStopped, record_stop
from .reload import PolicyHolder
from .requestid import new_request_id
from .resilience.attempts import Attempt
from .resilience.plan import AttemptPlan
from .resilience.retry import exception_failure, is_retryable_status, status_failure
from .resilience.routes import passthrough_route
from .upclient import Answer
from .upstream import UpstreamPool, decoder, request_headers, response_headers, upstream_url
from .verdict import RepairRequest, Verdict, block_message

log = logging.getLogger("aifw")

REQUEST_ID = "x-aifw-request-id"
RETRY_PEEK_BYTES = 4096   # of a 429 answer: enough to find its error code
PEEK_TIMEOUT = 5.0
HOLDER_KEY = web.AppKey("holder", PolicyHolder)
POOL_KEY = web.AppKey("pool", UpstreamPool)
EDGE_KEY = web.AppKey("edge", object)
_CHANGED = operator.attrgetter("changed")   # of a TextSlot: a guard rewrote it


def _error(status: int, code: str, message: str, request_id: str, headers: dict | None = None,
           type: str | None = None, param: str | None = None) -> web.Response:
    hdrs = {REQUEST_ID: request_id, "Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(status=status, body=error_body(message, code, type, param), headers=hdrs)


def _verdict_response(v: Verdict, ex: Exchange) -> web.Response:
    message = block_message(v)
    hdrs = dict(v.headers)
    hdrs.update(ex.response_headers)
    return _error(v.status, v.code, message, ex.request_id, hdrs, v.type)


class _SendFailed(Exception):
    """An attempt got no answer: ``kind`` is connect, timeout or broken."""

    def __init__(self, kind: str, error: ProxyError) -> None:
        super().__init__(kind)
        self.kind = kind
        self.error = error


class Edge:
    def __init__(self, holder: PolicyHolder, pool: UpstreamPool) -> None:
        self.holder = holder
        self.pool = pool
        self.in_flight = 0

    # --- the proxy handler ------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        policy = self.holder.policy   # one snapshot: a stream keeps the policy it started with
        try:
            path, query = canonical_target(request.raw_path)
            bad_target = None
        except ProxyError as exc:
            path, query, bad_target = request.path, "", exc
        # positional (request_id, method, path, query, headers, client_ip, policy): matching
        # seven keywords against the dataclass's 44 parameters cost more than building it
        ex = Exchange(new_request_id(), request.method, path, query, request.headers,
                      _client_ip(request, policy.server.trust_forwarded_for), policy)
        self.in_flight += 1
        try:
            if bad_target is not None:
                raise bad_target
            return await self._handle(request, ex)
        except ProxyError as exc:
            ex.status = exc.status
            ex.error = exc.code
            if ex.identity is None:    # refused before its key was checked: still attributed
                ex.identity = unverified_identity(policy, request.headers)
            if ex.decision == "allowed":
                ex.decision = "error"
            return _error(exc.status, exc.code, exc.message, ex.request_id,
                          {**exc.headers, **ex.response_headers}, exc.type, exc.param)
        except asyncio.CancelledError:
            ex.error = ex.error or "client_disconnected"     # the record says what the client got
            if not ex.streamed:
                ex.status = None                             # no answer reached it
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must still answer with this exchange's id
            if isinstance(exc, ConnectionResetError) or ex.streamed:
                # a cut stream (or none): recorded as an error, not as the 200 it started as
                ex.error = ex.error or ("client_disconnected" if isinstance(exc, ConnectionResetError)
                                        else "internal_error")
                if not ex.streamed:
                    ex.status = None
                if not isinstance(exc, ConnectionResetError):
                    # aiohttp cannot answer once bytes are out and logs nothing: say it here
                    log.exception("unhandled error in exchange %s after its first byte", ex.request_id)
                raise
            log.exception("unhandled error in exchange %s", ex.request_id)
            ex.status, ex.error, ex.decision = 500, "internal_error", "error"
            return _error(500, "internal_error", "aifw failed to handle this request.", ex.request_id,
                          type="server_error")
        finally:
            self.in_flight -= 1
            ex.finished = time.monotonic()
            self.holder.finish(ex)

    async def _handle(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        policy = ex.policy
        reject_malformed_headers(request.headers)
        refusal = self.holder.refusal()
        if refusal:
            raise ProxyError(503, "guardrail_unavailable", refusal)
        # endpoints and pass-through globs are matched on the canonical path, which is also
        # exactly what goes upstream (proxy/canonical.py)
        endpoint = resolve(request.method, ex.path)
        if endpoint is None:
            if policy.passthrough_paths.match(ex.path) and policy.passthrough_upstream is not None:
                endpoint = passthrough(request.method, ex.path)
            else:
                raise ProxyError(404, "not_found", f"Unknown path {request.method} {ex.path[:200]}: "
                                 "aifw forwards only the OpenAI, Azure OpenAI and Anthropic endpoints it inspects.")
        ex.endpoint = endpoint
        ex.identity = identify(policy, request.headers)
        await self._read_body(request, ex)
        if ex.identity is not None:
            apply_user_assertion(ex.identity, request.headers, ex.body, policy.identity.user_header)

        if endpoint.inspected:
            route_request(ex)
        else:
            ex.upstream = policy.passthrough_upstream
            ex.route = passthrough_route(ex.upstream)
            ex.mark_uninspected("passthrough path")
            ex.decision = "bypassed"
        ex.scope = policy.select_scope(ex)
        self.holder.prepare(ex)

        verdict = await pipeline.run_request(ex)
        if verdict is not None:
            ex.status = verdict.status
            return _verdict_response(verdict, ex)
        request_stream_usage(ex)
        return await self._forward(request, ex)

    async def _read_body(self, request: web.Request, ex: Exchange) -> None:
        if not request.can_read_body:
            if ex.endpoint.has_body and ex.endpoint.inspected:
                raise ProxyError(400, "invalid_request", "This endpoint needs a JSON request body.")
            return
        limit = ex.policy.server.max_body_bytes
        length = request.content_length   # parsed from the header on every read: once
        if length is not None and length > limit:
            raise ProxyError(413, "request_too_large",
                             f"Request body of {length} bytes exceeds the limit of {limit} bytes.")
        content = request.content
        try:
            if content.is_eof():
                # the whole body came in with the headers (as a small request's usually does):
                # nothing to wait for, so no timer and no loop over chunks
                raw = content.read_nowait()
                if len(raw) > limit:
                    raise ProxyError(413, "request_too_large", f"Request body exceeds the limit of {limit} bytes.")
            else:
                raw = await _read_body_chunks(content, limit, ex.policy.server.body_timeout)
        except TimeoutError:
            raise ProxyError(408, "request_timeout", "The request body was not received in time.") from None
        except web.RequestPayloadError as exc:   # bad chunked framing, undecodable body (proxy/server.py)
            raise ProxyError(400, "invalid_request", str(exc) if str(exc).startswith("Malformed")
                             else "The request body could not be read: it is malformed.") from None
        ex.raw_body = raw
        if not ex.endpoint.inspected:
            return
        check_body_headers(request.headers)
        ctype = request.content_type
        if ctype not in ("application/json", "application/octet-stream", "") and not ctype.endswith("+json"):
            raise ProxyError(415, "unsupported_media_type", f"Expected a JSON body, got {ctype!r}.")
        try:
            ex.raw_body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProxyError(400, "invalid_request", "The request body is not valid UTF-8.") from None
        try:
            ex.body = strictjson.loads(ex.raw_body)
        except strictjson.JSONRefused as exc:
            raise ProxyError(400, "invalid_json", str(exc)) from None
        read_slots(ex)

    # --- forwarding -------------------------------------------------------------------
    async def _forward(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        plan = AttemptPlan(ex, ex.route, ex.policy.sections["resilience"])
        deadline = Deadline()    # one timer for every phase of every attempt (proxy/deadline.py)
        try:
            target = plan.first_at_once() or await plan.first()
            while True:   # attempts: fallbacks and retries, all before the first byte to the client
                attempt = plan.start(target)
                try:
                    resp = await self._post(request, ex, _attempt_body(ex, plan, target),
                                            plan.timeout(ex.upstream), deadline)
                except _SendFailed as failed:
                    target = await plan.failed(attempt, target, exception_failure(failed.kind))
                    if target is None:
                        raise failed.error from None
                    continue
                if is_retryable_status(resp.status):
                    failure = status_failure(resp.status, resp.headers, await self._peek(resp))
                    following = await plan.failed(attempt, target, failure)
                    if following is not None:
                        resp.release()
                        target = following
                        continue
                if not plan.served_at_once(attempt, target, resp.status):
                    await plan.served(attempt, target, resp.status)
                break
            ex.upstream_first_byte = time.monotonic()
            _end_first_byte_timer(resp)
            try:
                ex.status = resp.status
                if ex.endpoint.inspected and resp.status == 200 and resp.content_type == "text/event-stream":
                    # what the upstream sends decides, not what the request claimed: a lenient
                    # upstream may stream a request the proxy took for a plain one
                    ex.stream = True
                    return await self._stream(request, ex, resp, deadline)
                return await self._whole(request, ex, resp, deadline)
            finally:
                resp.release()
                ex.spans.append(("upstream", ex.upstream_started, time.monotonic()))
        finally:
            deadline.close()

    async def _post(self, request: web.Request, ex: Exchange, body: bytes, timeout: float,
                    deadline: Deadline) -> Answer:
        """Send ``body`` to ``ex.upstream``; its answer once the headers are in."""
        up = ex.upstream
        url = upstream_url(up, ex.endpoint, ex.query, ex.upstream_model)
        headers = request_headers(request.headers, up, ex.identity is not None and ex.identity.virtual)
        client = self.pool.client(up)
        ex.upstream_started = time.monotonic()
        try:
            # connect: pool wait plus TCP/TLS set-up; sock_read: the first byte, timed from the
            # moment the request is written, so connect time does not count. The outer bound
            # only catches an upstream that drips its headers or stalls the upload.
            with deadline.after(timeout):
                return await client.send(ex.method, url, headers, body,
                                         _client_timeout(up.timeouts.connect, up.timeouts.first_byte))
        except TimeoutError as exc:
            kind = "connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "timeout"
            raise _SendFailed(kind, ProxyError(504, "upstream_timeout", f"Upstream {up.name} did not answer in time.")) from None
        except aiohttp.ClientError as exc:
            kind = "connect" if isinstance(exc, aiohttp.ClientConnectorError) else "broken"
            raise _SendFailed(kind, ProxyError(502, "upstream_error", f"Upstream {up.name} is unreachable ({type(exc).__name__}).")) from None

    async def _peek(self, resp: Answer) -> bytes:
        """The start of an error answer, to tell insufficient_quota from a rate limit. What was
        read stays in the response, which may still go to the client unchanged."""
        if resp.status != 429:
            return b""
        try:
            async with asyncio.timeout(PEEK_TIMEOUT):
                data = await resp.read()
        except (TimeoutError, aiohttp.ClientError):
            return b""
        try:
            dec = decoder(resp.headers.get("content-encoding"))
            return dec.decompress(data, RETRY_PEEK_BYTES) if dec else data[:RETRY_PEEK_BYTES]
        except (ValueError, zlib.error):
            return b""

    async def _whole(self, request: web.Request, ex: Exchange, resp: Answer,
                     deadline: Deadline) -> web.StreamResponse:
        up = ex.upstream
        limit = ex.policy.server.max_inspected_response_bytes
        until = asyncio.get_running_loop().time() + up.timeouts.total
        try:
            with deadline.at(until):
                data, more = await _read_capped(resp, limit)
        except TimeoutError:
            raise ProxyError(504, "upstream_timeout", f"Upstream {up.name} did not finish its answer in time.") from None
        except aiohttp.ClientError as exc:
            raise ProxyError(502, "upstream_error", f"Upstream {up.name} broke off its answer ({type(exc).__name__}).") from None
        inspect = ex.endpoint.inspected and resp.status == 200 and "json" in resp.content_type
        if ex.endpoint.inspected and resp.status == 200 and not inspect:
            ex.mark_uninspected("response not inspectable")
        plain = None
        if inspect and not more:
            try:
                plain = _decompress_capped(resp.headers.get("content-encoding"), data, limit)
                more = plain is None
            except (ValueError, zlib.error) as exc:
                ex.mark_uninspected(f"response body unreadable: {type(exc).__name__}")
                inspect = False
        if more:
            if inspect:
                if ex.policy.server.oversized_response == "block":
                    raise ProxyError(502, "upstream_error", f"Upstream {up.name} answered with more than {limit} "
                                     "bytes, the most aifw inspects (server.maxInspectedResponseBytes).")
                ex.mark_uninspected("response larger than server.maxInspectedResponseBytes")
                ex.decision = "bypassed" if ex.decision == "allowed" else ex.decision
            return await self._relay(request, ex, resp, data, response_headers(resp.headers, drop_encoding=False),
                                     deadline, until)
        # the headers that go out are those of the answer served (``answered``), without its
        # Content-Encoding once the body is re-encoded: filtered once, at the end
        add, answered, reencoded = apply_usage, resp.headers, False
        while inspect:   # once, or again for each corrected answer a guard asked for
            try:
                ex.response_body = orjson.loads(plain)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                ex.mark_uninspected(f"response body unreadable: {type(exc).__name__}")
                break
            add(ex, ex.response_body)
            scope = ex.scope
            if scope.response_guards or scope.complete_guards or ex.capture_text:
                # the answer's text slots, for whoever reads them (guards, the audit's text)
                ex.response_slots = parse_response(ex.endpoint.kind, ex.response_body)
            if ex.capture_text:
                ex.response_text.extend(s.text for s in ex.response_slots)
            verdict = await pipeline.run_response(ex) if scope.response_guards else None
            if verdict is not None and not refused_in_answer(ex, verdict):
                ex.status = verdict.status
                return _verdict_response(verdict, ex)
            if verdict is not None or (ex.response_slots and any(s.changed for s in ex.response_slots)):
                data, reencoded = orjson.dumps(ex.response_body), True
            repair, ex.repair = ex.repair, None
            if repair is None or verdict is not None:
                break
            again = await self._repair(request, ex, repair, plain, deadline)
            if again is None:   # no corrected answer came: the guard's fallback decides
                ex.add_finding(repair.failed)
                block = repair.fallback
                if block is not None:
                    ex.verdict, ex.decision = block, "blocked"
                    if not refused_in_answer(ex, block):
                        ex.status = block.status
                        return _verdict_response(block, ex)
                    data, reencoded = orjson.dumps(ex.response_body), True
                break
            answered, plain = again
            data, reencoded, add = plain, True, add_usage
        headers = response_headers(answered, drop_encoding=reencoded)
        headers.update(ex.response_headers)
        headers[REQUEST_ID] = ex.request_id
        return web.Response(status=resp.status, body=data, headers=headers)

    async def _repair(self, request: web.Request, ex: Exchange, repair: RepairRequest,
                      plain: bytes, deadline: Deadline) -> tuple[Any, bytes] | None:
        """Ask the upstream that answered once more, with its answer (as it sent it: masked
        text stays masked) and the problem a guard found; recorded as a further attempt. The
        new answer's headers and decoded body, or None when none came."""
        up = ex.upstream
        kind = ex.endpoint.kind
        answer = dict(structured.answers(kind, orjson.loads(plain)))[repair.answer]
        body = orjson.dumps(structured.repair_body(kind, ex.body, answer, repair.problem))
        now = time.monotonic()
        ex.spans.append(("upstream", ex.upstream_started, now))
        attempt = Attempt(up.name, ex.upstream_model, now, repair=True)
        ex.attempts.append(attempt)
        limit = ex.policy.server.max_inspected_response_bytes
        try:
            resp = await self._post(request, ex, body, up.timeouts.connect + up.timeouts.first_byte, deadline)
        except _SendFailed as failed:
            attempt.ended, attempt.error = time.monotonic(), failed.kind
            return None
        try:
            attempt.ended, attempt.status = time.monotonic(), resp.status
            if resp.status != 200 or "json" not in resp.content_type:
                attempt.error = "status"
                return None
            with deadline.after(up.timeouts.total):
                data, more = await _read_capped(resp, limit)
            fixed = None if more else _decompress_capped(resp.headers.get("content-encoding"), data, limit)
        except (TimeoutError, aiohttp.ClientError, ValueError, zlib.error) as exc:
            attempt.error = "timeout" if isinstance(exc, TimeoutError) else "broken"
            return None
        finally:
            resp.release()
        if fixed is None:
            attempt.error = "too_large"
            return None
        for prior in ex.attempts:   # this answer replaces the one served so far
            prior.served = prior is attempt
        return resp.headers, fixed

    async def _relay(self, request: web.Request, ex: Exchange, resp: Answer, head: bytes,
                     headers, deadline: Deadline, until: float) -> web.StreamResponse:
        """An answer too large to hold: what was read, then the rest as it comes, unchanged."""
        up = ex.upstream
        headers.update(ex.response_headers)
        headers[REQUEST_ID] = ex.request_id
        out = web.StreamResponse(status=resp.status, headers=headers)
        await out.prepare(request)
        ex.streamed = True
        await out.write(head)
        try:
            with deadline.at(until):
                async for chunk in resp.content.iter_any():
                    await out.write(chunk)
        except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            # the answer is cut: break the client's connection rather than end it cleanly
            ex.error = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"
            resp.close()
            raise ConnectionResetError(f"upstream {up.name} broke off an oversized answer") from None
        await out.write_eof()
        return out

    async def _stream(self, request: web.Request, ex: Exchange, resp: Answer,
                      deadline: Deadline) -> web.StreamResponse:
        up = ex.upstream
        try:
            dec = decoder(resp.headers.get("content-encoding"))
        except ValueError:
            dec = None
            ex.mark_uninspected("stream encoding not decodable")
        held: list[bytes] = []      # read whole before anything goes out (answer hooks)
        live = True                 # after the held chunks, read on from the upstream
        if ex.scope.stream_answer_guards and "stream encoding not decodable" not in ex.uninspected:
            outcome = await _hold(ex, resp, deadline)
            if isinstance(outcome, web.Response):
                return outcome
            held, live = outcome
        headers = response_headers(resp.headers, drop_encoding=dec is not None)
        headers.update(ex.response_headers)
        headers[REQUEST_ID] = ex.request_id
        out = web.StreamResponse(status=resp.status, headers=headers)
        proc = StreamProcessor(ex, ex.endpoint.kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
        parser = SSEParser()
        raw_passthrough = "stream encoding not decodable" in ex.uninspected
        passive = proc.passive
        await out.prepare(request)
        ex.streamed = True

        async def broke_off(message: str, code: str) -> web.StreamResponse:
            # The client already has a 200: an error event the SDKs raise says the answer broke
            # off, and the record says so too.
            ex.error = code
            if ex.decision == "allowed":
                ex.decision = "error"
            await out.write(b"".join(proc.error_events(message, code)))
            resp.close()
            return out

        pending = iter(held)
        try:
            while True:
                try:
                    # the held chunks first, then (unless the hold read to the end) the upstream's
                    chunk = next(pending, b"") if held else b""
                    if not chunk and live:
                        with deadline.after(up.timeouts.stream_idle):
                            chunk = await resp.content.readany()
                except TimeoutError:
                    return await broke_off(f"Upstream {up.name} went silent mid-stream.", "upstream_timeout")
                except aiohttp.ClientError as exc:
                    return await broke_off(f"Upstream {up.name} broke off the stream ({type(exc).__name__}).",
                                           "upstream_error")
                if not chunk:
                    break
                if raw_passthrough:
                    await out.write(chunk)
                    continue
                if dec is not None:
                    try:
                        chunk = dec.decompress(chunk)
                    except zlib.error:
                        return await broke_off(f"Upstream {up.name} sent a corrupt compressed stream.",
                                               "upstream_error")
                if passive:
                    # nothing to rewrite: forward first, then read usage off what was sent
                    await out.write(chunk)
                pieces: list[bytes] = []
                try:
                    if passive:
                        for block in parser.blocks(chunk):
                            proc.observe(block)
                        continue
                    events = parser.feed(chunk)
                except ValueError:   # one event larger than the parser's bound
                    return await broke_off(f"Upstream {up.name} sent an oversized stream event.", "upstream_error")
                try:
                    for event in events:
                        pieces.extend(proc.process(event))
                except StreamStopped as stop:
                    # events of this read that came before the cut still go out, first
                    stop.events[:0] = pieces
                    raise
                if pieces:
                    await out.write(b"".join(pieces))
            tail = parser.rest()
            pieces = proc.finish()
            if tail.strip() and not passive:   # a passive stream sent it already
                pieces.insert(0, tail)
            if dec is not None and not dec.eof and not raw_passthrough:
                if pieces:
                    await out.write(b"".join(pieces))
                return await broke_off(f"Upstream {up.name} sent a truncated compressed stream.", "upstream_error")
            if not proc.done and not raw_passthrough:
                if pieces:
                    await out.write(b"".join(pieces))
                return await broke_off(f"Upstream {up.name} ended the stream early.", "upstream_error")
            if pieces:
                await out.write(b"".join(pieces))
            await out.write_eof()
        except StreamStopped as stop:
            ex.finish_reason = stop.verdict.finish_reason
            record_stop(ex, stop.verdict)
            await out.write(b"".join(stop.events))
            await out.write_eof()
            resp.close()   # stop the upstream generating (and charging for) the rest
        except (ConnectionResetError, aiohttp.ClientConnectionResetError, asyncio.CancelledError):
            ex.error = "client_disconnected"
            resp.close()   # the client went away: cancel the upstream request
            raise
        return out


def _attempt_body(ex: Exchange, plan: AttemptPlan, target) -> bytes:
    """The body of one attempt: as the client sent it, unless a guard rewrote it or the target
    runs another model."""
    if plan.rebody(target):
        return orjson.dumps({**ex.body, "model": target.model})
    if ex.body_changed or any(map(_CHANGED, ex.request_slots)):   # map: no generator per request
        return orjson.dumps(ex.body)
    return ex.raw_body


async def _hold(ex: Exchange, resp: Answer, deadline: Deadline) -> tuple[list[bytes], bool] | web.Response:
    """Answer hooks judge a streamed answer whole, before any of it goes out: read the stream to
    its end (bounded like a whole answer) and run them. Returns the raw chunks read and whether
    the upstream must still be read on (a stream too large to hold goes out live, uninspected
    by them), or the HTTP error of a refusal. Nothing was sent yet, so faults are HTTP errors."""
    up = ex.upstream
    limit = ex.policy.server.max_inspected_response_bytes
    dec = decoder(resp.headers.get("content-encoding"))
    chunks: list[bytes] = []
    plain: list[bytes] = []
    size = 0
    while True:
        try:
            with deadline.after(up.timeouts.stream_idle):
                chunk = await resp.content.readany()
        except TimeoutError:
            raise ProxyError(504, "upstream_timeout", f"Upstream {up.name} went silent mid-stream.") from None
        except aiohttp.ClientError as exc:
            raise ProxyError(502, "upstream_error",
                             f"Upstream {up.name} broke off the stream ({type(exc).__name__}).") from None
        if not chunk:
            break
        chunks.append(chunk)
        try:
            text = dec.decompress(chunk) if dec is not None else chunk
        except zlib.error:
            raise ProxyError(502, "upstream_error", f"Upstream {up.name} sent a corrupt compressed stream.") from None
        size += len(text)
        if size > limit:
            if ex.policy.server.oversized_response == "block":
                raise ProxyError(502, "upstream_error", f"Upstream {up.name} streamed more than {limit} bytes, "
                                 "the most aifw holds for answer hooks (server.maxInspectedResponseBytes).")
            ex.mark_uninspected("streamed answer larger than server.maxInspectedResponseBytes: not held "
                                "for the answer hooks")
            return chunks, True
        plain.append(text)
    verdict = await pipeline.run_stream_answer(ex, b"".join(plain))
    if verdict is not None:
        ex.status = verdict.status
        return _verdict_response(verdict, ex)
    return chunks, False


def _end_first_byte_timer(resp: Answer) -> None:
    """The answer has started: sock_read served as the first-byte timeout and must not go on
    timing gaps in the body (streams have their own idle timeout, whole answers a total)."""
    proto = resp.connection.protocol if resp.connection is not None else None
    if proto is not None:
        proto.read_timeout = None
        proto.start_timeout()   # re-arms with no timeout: cancels the pending timer


async def _read_body_chunks(content, limit: int, timeout: float) -> bytes:
    """A request body that is still arriving, within ``timeout`` and ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        async for chunk in content.iter_any():
            size += len(chunk)
            if size > limit:
                raise ProxyError(413, "request_too_large", f"Request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
    return b"".join(chunks)


async def _read_capped(resp: Answer, limit: int) -> tuple[bytes, bool]:
    """Up to a little more than ``limit`` bytes of the body, and whether there is more."""
    if resp.content.at_eof():   # read already (a 429 peeked at for its code) or empty
        data = await resp.read()
        return data, len(data) > limit
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.readany()
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), True


def _decompress_capped(encoding: str | None, data: bytes, limit: int) -> bytes | None:
    """The decoded body, or None when it decodes to more than ``limit`` bytes (a small gzip can
    hold gigabytes). Raises ValueError or zlib.error for what cannot be decoded."""
    dec = decoder(encoding)
    if dec is None:
        return data
    plain = dec.decompress(data, limit + 1)
    if len(plain) > limit or dec.unconsumed_tail:
        return None
    plain += dec.flush()
    return plain if len(plain) <= limit else None


@functools.lru_cache(maxsize=64)     # immutable: one per upstream's timeouts
def _client_timeout(connect: float, first_byte: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=first_byte)


def _client_ip(request: web.Request, trust_forwarded: bool) -> str | None:
    if trust_forwarded:
        fwd = request.headers.get("x-forwarded-for")
        if fwd and fwd.isascii():   # an address is ASCII; other bytes must not reach the record
            return fwd.split(",")[0].strip()[:64]
    return request.remote


def own_answer(response: web.StreamResponse) -> web.StreamResponse:
    """Every answer in aifw's shape: errors aiohttp raises itself (a request target no route
    matches, a 405) in OpenAI's error shape, and an ``x-aifw-request-id`` on answers that have
    none (/healthz, /readyz, /metrics). Applied by the connection (server.AifwRequestHandler)
    to each response once, where a middleware would wrap every handler call in two more
    coroutines."""
    if isinstance(response, web.HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(response.status, "invalid_request")
        return _error(response.status, code, response.reason or "Bad request", new_request_id())
    if REQUEST_ID not in response.headers and not response.prepared:
        response.headers[REQUEST_ID] = new_request_id()
    return response


def create_app(holder: PolicyHolder) -> web.Application:
    pool = UpstreamPool()
    edge = Edge(holder, pool)
    app = web.Application(client_max_size=holder.policy.server.max_body_bytes)
    app[HOLDER_KEY] = holder
    app[POOL_KEY] = pool

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready, details = holder.readiness()
        body = {"status": "ready" if ready else "not_ready"}
        auth = request.headers.get("authorization")
        token = holder.policy.server.readiness_token
        if auth is not None and token:
            # detail (policy path, reload error text, backend problems) is for operators only
            if not hmac.compare_digest(auth.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode()):
                return _error(401, "invalid_api_key", "Wrong readiness token.", new_request_id())
            body.update(details)
        return web.Response(status=200 if ready else 503, body=orjson.dumps(body),
                            content_type="application/json")

    async def metrics(request: web.Request) -> web.Response:
        body, ctype = holder.metrics_text()
        return web.Response(body=body, headers={"Content-Type": ctype})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", edge.handle)

    async def on_startup(app: web.Application) -> None:
        await holder.start()

    async def on_shutdown(app: web.Application) -> None:
        # Let running streams finish (bounded by the grace period), then close backends.
        deadline = time.monotonic() + holder.policy.server.shutdown_grace
        while edge.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def on_cleanup(app: web.Application) -> None:
        await holder.stop()
        await pool.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app[EDGE_KEY] = edge
    return app


def runner_kwargs(policy) -> dict[str, Any]:
    s = policy.server
    return dict(
        handler_cancellation=True,
        # aiohttp's keep-alive timer also closes connections that never complete their request
        # headers, so it doubles as the header-read timeout.
        keepalive_timeout=min(s.keep_alive, s.header_timeout),
        max_line_size=s.max_header_bytes, max_field_size=s.max_header_bytes,
        access_log=None, shutdown_timeout=s.shutdown_grace,
    )
