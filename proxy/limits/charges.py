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


def _templates(config: LimitsConfig, identity, model: str | None,
               route: tuple[str | None, str | None]) -> tuple[tuple, ...]:
    """What the charges of this caller, model and route are made of, whatever the time and the
    tokens: (limit, key, param) per counter, where a calendar limit's key is the (head, tail)
    around its window id and its param comes from the time."""
    prefix = "{" + config.key_prefix + "}:rl"
    out: list[tuple] = []
    model_part = f"@{_esc(model or '-')}"
    for limit in config.limits:
        if not applies(limit, model, route):
            continue
        subs = subjects(limit, identity)
        if not subs:
            continue
        head = f"{prefix}:{KIND_TAG[limit.kind]}:{_esc(limit.name)}:"
        for sub in subs:
            if limit.per_model:
                sub += model_part
            if limit.kind in CALENDAR_KINDS:
                out.append((limit, (head, f":{sub}"), 0.0))
            elif limit.kind == "concurrency":
                out.append((limit, f"{head}c:{sub}", limit.window))
            else:
                out.append((limit, f"{head}w{limit.window:g}:{sub}", limit.window))
    return tuple(out)


def _charges(templates: tuple[tuple, ...], tokens: int, now: float) -> list[Charge]:
    charges: list[Charge] = []
    for limit, key, param in templates:
        kind = limit.kind
        if kind in CALENDAR_KINDS:
            window_id, param = calendar_window(limit.period, now)
            charges.append(Charge(limit, f"{key[0]}{window_id}{key[1]}", tokens, param))
        else:
            cost = 1 if kind in ("requests", "concurrency") else tokens
            charges.append(Charge(limit, key, cost, param))
    return charges


def build_charges(config: LimitsConfig, identity, model: str | None,
                  route: tuple[str | None, str | None], tokens: int, now: float) -> list[Charge]:
    return _charges(_templates(config, identity, model, route), tokens, now)


class ChargePlanner:
    """``build_charges`` for one config, with each caller's counter keys remembered: the same
    few keys, users, groups, models and routes come back on every request, and building the key
    strings (escaping, matching models and routes) cost more than the counting. Bounded: cleared
    when full (callers name users and models)."""

    MAX_ENTRIES = 4096

    def __init__(self, config: LimitsConfig) -> None:
        self.config = config
        self._templates: dict[tuple, tuple[tuple, ...]] = {}

    def build(self, identity, model: str | None, route: tuple[str | None, str | None],
              tokens: int, now: float) -> list[Charge]:
        # everything ``subjects`` and ``applies`` read
        who = (getattr(identity, "key_id", None), getattr(identity, "user", None),
               tuple(getattr(identity, "groups", ()) or ()))
        key = (who, model, route)
        templates = self._templates.get(key)
        if templates is None:
            templates = _templates(self.config, identity, model, route)
            if len(self._templates) >= self.MAX_ENTRIES:
                self._templates.clear()
            self._templates[key] = templates
        return _charges(templates, tokens, now)
