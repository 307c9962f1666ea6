"""Runs the guards of the exchange's scope: decisions as values, faults as exceptions.

Request hooks in policy order, response hooks in reverse (the scope precomputed both lists).
``monitor`` turns a block into a recorded finding; a guard's exception fails closed unless its
failure mode is ``open``, and either way the exchange is marked as not fully inspected.
"""
from __future__ import annotations

import logging
import time

from .errors import ProxyError, ReportedOutage
from .exchange import Exchange
from .guards.base import Guard, StreamText, stream_guards
from .verdict import Finding, Verdict

log = logging.getLogger("aifw.pipeline")


def _fault(ex: Exchange, guard: Guard, hook: str, exc: BaseException) -> Verdict | None:
    """Record a guard fault; return a 503 Verdict when the guard fails closed."""
    ex.mark_uninspected(f"{guard.name}.{hook}: {type(exc).__name__}")
    ex.add_finding(Finding(guard.name, (f"{guard.name}.fault",), action="fault",
                           direction="response" if hook != "on_request" else "request"))
    if not isinstance(exc, ReportedOutage):
        log.error("guard %s.%s failed: %s", guard.name, hook, type(exc).__name__, exc_info=exc)
    if guard.failure_mode == "open":
        ex.decision = "bypassed"
        return None
    return Verdict(guard.name, f"The {guard.name} guard is unavailable; the request was not forwarded.",
                   (f"{guard.name}.fault",), status=503, code="guardrail_unavailable", type="server_error")


def _decide(ex: Exchange, guard: Guard, verdict: Verdict) -> Verdict | None:
    """Apply the guard's mode to a verdict it returned."""
    if guard.mode == "monitor" and verdict.code != "guardrail_unavailable":
        if not any(f.guard == guard.name and f.action == "would_block" for f in ex.findings):
            ex.add_finding(Finding(guard.name, verdict.rule_ids, action="would_block"))
        ex.mark_monitored()
        return None
    ex.verdict = verdict
    ex.decision = "blocked"
    return verdict


# guard name -> its span's name, made once rather than formatted for every hook call (guard
# names come from the policy: few)
_SPAN_NAMES: dict[str, str] = {}


def _span_name(guard: str) -> str:
    name = _SPAN_NAMES[guard] = f"guard.{guard}"
    return name


def _timed(ex: Exchange, guard: Guard, start: float) -> None:
    end = time.monotonic()
    name = guard.name
    ex.guard_seconds[name] = ex.guard_seconds.get(name, 0.0) + (end - start)
    ex.spans.append((_SPAN_NAMES.get(name) or _span_name(name), start, end))


async def run_request(ex: Exchange) -> Verdict | None:
    for guard in ex.scope.request_guards:
        start = time.monotonic()
        try:
            verdict = await guard.on_request(ex)
        except ProxyError:
            raise
        except Exception as exc:  # noqa: BLE001 - any guard fault is handled the same way
            verdict = _fault(ex, guard, "on_request", exc)
        finally:
            _timed(ex, guard, start)
        if verdict is not None and _decide(ex, guard, verdict) is not None:
            return verdict
    return None


async def _run_answer(ex: Exchange, guards, hook: str, *args) -> Verdict | None:
    for guard in guards:
        start = time.monotonic()
        try:
            verdict = await getattr(guard, hook)(ex, *args)
        except Exception as exc:  # noqa: BLE001
            verdict = _fault(ex, guard, hook, exc)
        finally:
            _timed(ex, guard, start)
        if verdict is not None and _decide(ex, guard, verdict) is not None:
            return verdict
    return None


async def run_response(ex: Exchange) -> Verdict | None:
    return await _run_answer(ex, ex.scope.response_guards, "on_response")


async def run_stream_answer(ex: Exchange, data: bytes) -> Verdict | None:
    """A held stream (``data``: its decoded SSE) before any of it goes out."""
    return await _run_answer(ex, ex.scope.stream_answer_guards, "on_stream_answer", data)


def _stream_hook(ex: Exchange, guard: Guard, key: StreamText, text: str | None) -> str | Verdict:
    """``on_chunk(text)``, or ``on_end`` when ``text`` is None: the text to pass on, or the
    verdict that ends the stream. A fault fails closed or passes the text on (open); a
    monitored verdict passes the text on."""
    start = time.perf_counter()
    hook = "on_end" if text is None else "on_chunk"
    try:
        out = guard.on_end(ex, key) if text is None else guard.on_chunk(ex, key, text)
    except Exception as exc:  # noqa: BLE001
        out = _fault(ex, guard, hook, exc)
    ex.guard_seconds[guard.name] = ex.guard_seconds.get(guard.name, 0.0) + time.perf_counter() - start
    if isinstance(out, Verdict) and _decide(ex, guard, out) is not None:
        return out
    if out is None or isinstance(out, Verdict):
        return text or ""
    return out


def chunk_runner(ex: Exchange):
    guards = stream_guards(ex, ex.scope.chunk_guards)
    if not guards:
        return None

    def run(ex: Exchange, key: StreamText, text: str):
        for guard in guards:
            out = _stream_hook(ex, guard, key, text)
            if isinstance(out, Verdict):
                return out
            text = out
        return text
    return run


def end_runner(ex: Exchange):
    ending = stream_guards(ex, ex.scope.end_guards)
    if not ending:
        return None
    chunkers = set(map(id, stream_guards(ex, ex.scope.chunk_guards)))
    enders = set(map(id, ending))
    guards = tuple(g for g in reversed(ex.scope.guards) if id(g) in chunkers or id(g) in enders)

    def run(ex: Exchange, key: StreamText) -> str | Verdict:
        # Text flushed by an outer guard still passes through the inner ones (onion order). A
        # verdict here, on the last text of the stream, ends it like one mid-stream.
        text = ""
        for guard in guards:
            if text and id(guard) in chunkers:
                out = _stream_hook(ex, guard, key, text)
                if isinstance(out, Verdict):
                    return out
                text = out
            if id(guard) in enders:
                out = _stream_hook(ex, guard, key, None)
                if isinstance(out, Verdict):
                    return out
                text += out
        return text
    return run


async def run_complete(ex: Exchange) -> None:
    for guard in ex.scope.complete_guards if ex.scope else ():
        start = time.monotonic()
        try:
            await guard.on_complete(ex)
        except Exception as exc:  # noqa: BLE001 - completion must reach every guard
            ex.mark_uninspected(f"{guard.name}.on_complete: {type(exc).__name__}")
            if not isinstance(exc, ReportedOutage):
                log.error("guard %s.on_complete failed", guard.name, exc_info=exc)
        finally:
            _timed(ex, guard, start)
