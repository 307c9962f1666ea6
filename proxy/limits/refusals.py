"""What a client sees: OpenAI-style ``x-ratelimit-*`` headers and the 429 answers."""
from __future__ import annotations

import math
from typing import Sequence

from ..verdict import Verdict
from .backend import NEVER, ItemResult
from .charges import Charge
from .config import CALENDAR_KINDS
from .spec import describe_window, format_reset

GUARD = "ratelimit"


def rate_headers(charges: Sequence[Charge], items: Sequence[ItemResult]) -> dict[str, str]:
    """OpenAI's headers for the tightest request rate and the tightest token rate (else token
    budget). Runs on every allowed request: one pass, the tighter pick inline (a call per charge
    cost more than the comparison), header names as literals; tests/limits/test_rate_headers.py
    holds the same spelled out (``rate_headers_plain``) and compares the two."""
    # per kind the tightest: fewest units left; on a tie the one that takes longest to refill;
    # on a full tie the first
    requests = tokens = budget = None
    for charge, item in zip(charges, items):
        kind = charge.limit.kind
        if kind == "requests":
            if requests is None or (item.remaining, -item.reset) < (requests[1].remaining, -requests[1].reset):
                requests = charge, item
        elif kind == "tokens":
            if tokens is None or (item.remaining, -item.reset) < (tokens[1].remaining, -tokens[1].reset):
                tokens = charge, item
        elif kind == "budget":
            if budget is None or (item.remaining, -item.reset) < (budget[1].remaining, -budget[1].reset):
                budget = charge, item
    headers: dict[str, str] = {}
    if requests is not None:
        charge, item = requests
        headers["x-ratelimit-limit-requests"] = str(charge.limit.amount)
        headers["x-ratelimit-remaining-requests"] = str(item.remaining)
        headers["x-ratelimit-reset-requests"] = format_reset(item.reset)
    pick = tokens or budget
    if pick is not None:
        charge, item = pick
        headers["x-ratelimit-limit-tokens"] = str(charge.limit.amount)
        headers["x-ratelimit-remaining-tokens"] = str(item.remaining)
        headers["x-ratelimit-reset-tokens"] = format_reset(item.reset)
    return headers


def _what(charge: Charge) -> str:
    lim = charge.limit
    if lim.kind == "concurrency":
        return f"concurrent requests per {lim.scope}"
    if lim.kind == "budget":
        return f"tokens per {lim.period} per {lim.scope}"
    if lim.kind == "spend":
        return f"US dollars per {lim.period} per {lim.scope}"
    return f"{lim.kind} per {describe_window(lim.window)} per {lim.scope}"


def refusal(charges: Sequence[Charge], items: Sequence[ItemResult], tokens: int) -> Verdict:
    """The 429 for a refused reservation. A spent budget decides over a rate (waiting for a
    rate does not help while the budget is gone); among rates the longest wait decides."""
    failed = [(c, i) for c, i in zip(charges, items) if not i.allowed]
    headers = rate_headers(charges, items)
    budgets = [p for p in failed if p[0].limit.kind in CALENDAR_KINDS]
    if budgets:
        charge, item = max(budgets, key=lambda p: p[1].reset)
        lim = charge.limit
        renew = "never suffices for this request" if item.retry_after == NEVER else \
            f"renews in {format_reset(item.reset)}"
        if lim.kind == "spend":
            need = (f"this request may cost up to ${charge.cost / 1e6:.6f} and "
                    f"${item.remaining / 1e6:.6f} are left")
            what = "spend budget"
        else:
            need = f"this request needs {tokens} tokens and {item.remaining} are left"
            what = "token budget"
        message = (f"You exceeded your {what} ({_what(charge)}: limit '{lim.name}', {lim.text}); "
                   f"{need}. The budget {renew}.")
        headers["x-should-retry"] = "false"
        return Verdict(GUARD, message, rule_ids=(f"ratelimit.{lim.kind}.{lim.name}",), status=429,
                       code="insufficient_quota", type="insufficient_quota",
                       headers=tuple(headers.items()))
    charge, item = max(failed, key=lambda p: p[1].retry_after)
    lim = charge.limit
    rule_ids = tuple(dict.fromkeys(f"ratelimit.{c.limit.kind}.{c.limit.name}" for c, _ in failed))
    if item.retry_after == NEVER:
        message = (f"Request too large for {_what(charge)} (limit '{lim.name}', {lim.text}): "
                   f"it needs {charge.cost} and at most {lim.amount} are allowed.")
        headers["x-should-retry"] = "false"
    else:
        wait = max(item.retry_after, 0.001)
        message = (f"Rate limit reached for {_what(charge)} (limit '{lim.name}', {lim.text}). "
                   f"Please try again in {format_reset(wait)}.")
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    return Verdict(GUARD, message, rule_ids=rule_ids, status=429, code="rate_limit_exceeded",
                   type="rate_limit_error", headers=tuple(headers.items()))


def unpriced(exc) -> Verdict:
    """A spend budget applies but the model has no price: the budget cannot be enforced, so
    the request is refused (fail closed) until the policy's cost section prices the model."""
    return Verdict(GUARD, f"Model {exc.model!r} has no price, so spend limit '{exc.limit}' cannot be "
                   "enforced; the operator must add it to the policy's cost.prices.",
                   rule_ids=(f"ratelimit.spend.{exc.limit}",), status=403, code="model_not_priced",
                   type="invalid_request_error")
