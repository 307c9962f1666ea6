"""What the edge does with a request between reading its body and running its guards, as plain
Python: the JSON body becomes text slots, the model picks a route, the caller and model pick a
scope; and how a verdict on a whole answer becomes the answer's refusal. The edge (app.py) and the offline judge (offline.py: ``aifw scan``, ``aifw replay``)
share these steps, so a dry run sees a request exactly as the proxy does.
"""
from __future__ import annotations

from dataclasses import replace

from .errors import ProxyError
from .exchange import Exchange
from .parsing.request import Refused, Unrecognized, check_fields, check_model, parse_request, request_model
from .parsing.tools import refuse
from .verdict import Verdict


def read_slots(ex: Exchange) -> None:
    """``ex.body`` (decoded JSON) -> ``ex.request_slots``. A body the parser cannot read is
    refused or, where the policy says so, forwarded uninspected (marked bypassed)."""
    skipped: list[str] = []
    try:
        check_fields(ex.body)
        ex.request_slots = parse_request(ex.endpoint.kind, ex.body, skipped)
        ex.parsed = True
    except Refused as exc:
        raise ProxyError(400, "invalid_request", str(exc), param=exc.param) from None
    except Unrecognized as exc:
        if ex.policy.unrecognized_body == "block":
            raise ProxyError(400, "invalid_request", f"Unrecognised request body: {exc}.") from None
        ex.mark_uninspected(f"unrecognised body: {exc}")
        ex.decision = "bypassed"
    for reason in skipped:
        ex.mark_uninspected(reason)
        ex.decision = "bypassed"


def route_request(ex: Exchange, model: str | None = None) -> None:
    """Model, stream flag, route and first upstream of a request to an inspected endpoint.
    ``model``: the model when there is no body to read it from (a replayed audit record)."""
    ex.model = request_model(ex.endpoint, ex.body) if ex.body is not None else model
    try:
        check_model(ex.model)
    except Refused as exc:   # the record caps the name it keeps (proxy/audit)
        raise ProxyError(400, "invalid_request", str(exc), param=exc.param) from None
    ex.stream = isinstance(ex.body, dict) and ex.body.get("stream") is True
    ex.route = ex.policy.route(ex.model, ex.endpoint.dialect)
    if ex.route is None:
        raise ProxyError(400, "model_not_allowed",
                         f"No upstream is configured for model {ex.model!r} on {ex.endpoint.name}.",
                         param="model")
    ex.upstream = ex.route.targets[0].upstream


def refused_in_answer(ex: Exchange, verdict: Verdict) -> bool:
    """A verdict that refuses a whole answer as an answer (Verdict.in_answer): the body becomes
    the dialect's refusal, ended with ``verdict.finish_reason``, as the stream would have."""
    if not verdict.in_answer or not refuse(ex.endpoint.kind, ex.response_body):
        return False
    ex.verdict = replace(verdict, status=ex.status)
    ex.finish_reason = verdict.finish_reason
    return True
