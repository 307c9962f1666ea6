"""Judge a request and its answer as the proxy would, without a socket or an upstream: the engine
of ``aifw scan`` and ``aifw replay``.

The same steps as the edge (intake.py: body -> text slots, model -> route, caller -> scope), the
same compiled guards, the same pipeline (pipeline.py) and the same settling of the decision
(outcome.py). Left out are the guards whose verdict depends on traffic seen before rather than
on this exchange (``Guard.counts_traffic``: rate limits, budgets), since a dry run must neither
spend a caller's quota nor be refused for it; a replay of audit records, which keep text slots
only, also leaves out the guards that read the bodies (``Guard.reads_body``).
"""
from __future__ import annotations

import dataclasses
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from . import pipeline
from .endpoints import Endpoint, resolve
from .errors import ProxyError
from .exchange import Exchange, Identity
from .intake import read_slots, refused_in_answer, route_request
from .outcome import settle
from .parsing.response import parse_response
from .policy.compile import Policy, PolicyError, Scope, compile_policy
from .textslots import TextSlot
from .verdict import Verdict

# Endpoint names as audit records and --endpoint give them -> the path a client would call.
ENDPOINT_PATHS = {
    "chat.completions": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
_UNSET = re.compile(r"environment variable ([A-Za-z_][A-Za-z0-9_]*) is not set")


def endpoint_named(name: str) -> Endpoint:
    path = ENDPOINT_PATHS.get(name)
    if path is None:
        raise ValueError(f"unknown endpoint {name!r}; one of: {', '.join(ENDPOINT_PATHS)}")
    return resolve("POST", path)


def load_policy(path: str, services: Any) -> Policy:
    """Compile a policy for judging offline. Provider keys need not be set, nor the variables
    the policy uses without a default (provider keys, mostly): judging calls no upstream, so
    each unset one stands for itself. Raises PolicyError for anything else. ``services``: the
    process's backends (proxy.services.Services); ``finish`` closes them with the policy."""
    env = dict(os.environ)
    try:
        return compile_policy(path, services, env, provider_keys=False)
    except PolicyError as exc:
        found = [_UNSET.search(p.message) for p in exc.problems]
        if not all(found):
            raise
        unset = {m.group(1) for m in found}
    env.update({name: f"unset-{name}" for name in unset})
    return compile_policy(path, services, env, provider_keys=False)


async def finish(policy: Policy, services: Any) -> None:
    """Release what judging opened (the injection guard's escalation client, limit stores)."""
    await policy.close()
    await services.close()


@dataclass
class Trace:
    """What the guards worked with, collected only when judging offline (``ex.trace``)."""

    injection: Any = None          # the InjectionSettings of the injection guard that ran
    slot_scores: list = field(default_factory=list)    # (role, text, SlotScore), as scored

    def scorer(self, settings: Any, score: Callable) -> Callable:
        self.injection = settings

        def recording(cfg, text, role, rules, ctx):
            result = score(cfg, text, role, rules, ctx)
            self.slot_scores.append((role, text, result))
            return result
        return recording


@dataclass
class Judgement:
    ex: Exchange
    refused: ProxyError | None = None       # the edge answers this before any guard runs
    request_verdict: Verdict | None = None
    response_verdict: Verdict | None = None
    answer_judged: bool = False             # the response guards ran on an answer
    original: list[str] = field(default_factory=list)   # request slot texts before the guards

    @property
    def verdict(self) -> Verdict | None:
        return self.request_verdict or self.response_verdict


_SCOPES: dict[tuple, Scope] = {}


def offline_scope(scope: Scope, leave_out: tuple[str, ...]) -> Scope:
    """``scope`` without the guards that have any of the ``leave_out`` flags set."""
    key = (id(scope), leave_out)
    cached = _SCOPES.get(key)
    if cached is not None and cached[0] is scope:
        return cached[1]

    def keep(guards: tuple) -> tuple:
        return tuple(g for g in guards if not any(getattr(g, flag) for flag in leave_out))
    out = dataclasses.replace(scope, **{name: keep(getattr(scope, name)) for name in (
        "guards", "request_guards", "response_guards", "chunk_guards", "end_guards",
        "complete_guards", "stream_answer_guards")})
    if len(_SCOPES) > 256:
        _SCOPES.clear()
    _SCOPES[key] = (scope, out)
    return out


def new_exchange(policy: Policy, endpoint: Endpoint, identity: Identity | None,
                 request_id: str | None = None, *, trace: bool = False) -> Exchange:
    """``trace``: collect what the guards worked with (``ex.trace``), to explain the verdict."""
    ex = Exchange(request_id=request_id or "scan_" + uuid.uuid4().hex, method="POST",
                  path=ENDPOINT_PATHS.get(endpoint.name, "/v1/" + endpoint.name), query="",
                  headers={}, client_ip=None, policy=policy, endpoint=endpoint, identity=identity)
    ex.trace = Trace() if trace else None
    return ex


def answer_slots(ex: Exchange, answer: Any) -> None:
    """The answer as the response guards see it: a provider response body (its text slots,
    parsed as the edge parses it), plain text (one answer slot) or a list of text slots."""
    if isinstance(answer, str):
        ex.response_slots = [TextSlot("assistant", "output", answer, index=0)]
    elif isinstance(answer, list):     # slots already (an audit record's answer texts)
        ex.response_slots = answer
    else:
        ex.response_body = answer
        ex.response_slots = parse_response(ex.endpoint.kind, answer)


async def judge(ex: Exchange, *, body: Any = None, slots: list[TextSlot] | None = None,
                model: str | None = None, answer: Any = None,
                leave_out: tuple[str, ...] = ("counts_traffic",)) -> Judgement:
    """Run ``ex`` through the edge's steps and the pipeline. The request is ``body`` (a request
    body, parsed as the edge parses it) or ``slots`` (text slots kept by an audit record, with
    ``model``); ``answer`` (a response body, text, or None) is judged when the request passes."""
    j = Judgement(ex)
    try:
        if slots is None:
            ex.body = body
            read_slots(ex)
        else:
            ex.request_slots, ex.parsed = slots, True
        route_request(ex, model)
    except ProxyError as exc:
        j.refused, ex.status, ex.error, ex.decision = exc, exc.status, exc.code, "error"
        return j
    j.original = [s.text for s in ex.request_slots]
    ex.scope = offline_scope(ex.policy.select_scope(ex), leave_out)
    j.request_verdict = await pipeline.run_request(ex)
    if j.request_verdict is None and answer is not None:
        answer_slots(ex, answer)
        j.answer_judged = True
        ex.status = 200                        # the upstream's answer, as the edge has it
        j.response_verdict = await pipeline.run_response(ex)
        if j.response_verdict is not None and refused_in_answer(ex, j.response_verdict):
            j.response_verdict = ex.verdict        # the answer itself says it was refused
    verdict = j.verdict
    ex.status = verdict.status if verdict is not None else 200
    await pipeline.run_complete(ex)
    settle(ex)
    return j


T = TypeVar("T")


def prepared_or_reported(prepare: Callable[[], T]) -> T | None:
    """Run an offline command's setup (load the policy, read its inputs): a problem is one
    message on stderr and None (the command exits 2), never a traceback."""
    import sys
    try:
        return prepare()
    except PolicyError as exc:
        print(f"error: the policy has problems:\n{exc}", file=sys.stderr)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return None
