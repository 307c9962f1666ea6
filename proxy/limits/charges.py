"""Which limits apply to one request, and the counter keys and costs they charge."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from .config import CALENDAR_KINDS, Limit, LimitsConfig
from .spec import calendar_window

KIND_TAG = {"requests": "r", "tokens": "t", "budget": "b", "spend": "s", "concurrency": "c"}
# User-supplied parts of a key are escaped so that "a:b" as a user cannot collide with
# another user's key built from "a" and "b".
_ESCAPE = str.maketrans({"%": "%25", ":": "%3A", "|": "%7C", "@": "%40"})


@functools.lru_cache(maxsize=4096)     # the same few users, keys and limit names on every request
def _esc(value: str) -> str:
    return value.translate(_ESCAPE)


@dataclass(slots=True)
class Charge:
    """One counter one request touches."""

    limit: Limit
    key: str
    cost: int           # units: requests, tokens, micro-dollars (spend), slots
    param: float        # rates: window seconds; budgets: window end (epoch s); concurrency: lease s


def subjects(limit: Limit, identity) -> list[str]:
    """The counter subjects ``limit`` charges for this caller (empty: it does not apply)."""
    key_id = getattr(identity, "key_id", None) or "anonymous"
    user = getattr(identity, "user", None)
    # A caller without a user counts as its key's owner, so a user limit cannot be dodged
    # by leaving the user out.
    user_subject = f"u={_esc(user)}" if user else f"k={_esc(key_id)}"
    if limit.scope == "user":
        return [user_subject]
    if limit.scope == "key":
        return [f"k={_esc(key_id)}"]
    if limit.scope == "global":
        return ["*"]
    groups = getattr(identity, "groups", ()) or ()
    chosen = [g for g in groups if not limit.groups or g in limit.groups]
    if limit.per_member:
        return [f"g={_esc(g)}|{user_subject}" for g in chosen]
    return [f"g={_esc(g)}" for g in chosen]


def applies(limit: Limit, model: str | None, route: tuple[str | None, str | None]) -> bool:
    """``route``: (endpoint name, request path), matched like a scope's ``routes``."""
    if limit.models and not limit.models.match(model):
        return False
    if limit.routes and not limit.routes.match_any(route):
        return False
    return True


def build_charges(config: LimitsConfig, identity, model: str | None,
                  route: tuple[str | None, str | None], tokens: int, now: float) -> list[Charge]:
    prefix = "{" + config.key_prefix + "}:rl"
    charges: list[Charge] = []
    model_part = f"@{_esc(model or '-')}"
    for limit in config.limits:
        if not applies(limit, model, route):
            continue
        subs = subjects(limit, identity)
        if not subs:
            continue
        tag = KIND_TAG[limit.kind]
        if limit.kind in CALENDAR_KINDS:
            window_id, param = calendar_window(limit.period, now)
            cost = tokens
        elif limit.kind == "concurrency":
            window_id, param, cost = "c", limit.window, 1
        else:
            window_id, param = f"w{limit.window:g}", limit.window
            cost = 1 if limit.kind == "requests" else tokens
        for sub in subs:
            if limit.per_model:
                sub += model_part
            key = f"{prefix}:{tag}:{_esc(limit.name)}:{window_id}:{sub}"
            charges.append(Charge(limit, key, cost, param))
    return charges
