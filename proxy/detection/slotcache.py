"""Slot scores remembered across requests (proxy/scancache.py): a conversation's earlier turns
were scored when they were new, so only the new turn is scanned.

A slot's score depends on the injection settings, the slot's role, the request's system and
developer prompts (the context rules judge the slot against them) and the text: all four are in
the key. A scan cut short by its time bound is not remembered (a later request scans it again).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..scancache import Memo, text_digest
from .context import CONTEXT_ROLES
from .scanner import SlotScore, score_text
from .settings import InjectionSettings


def _copy(slot: SlotScore) -> SlotScore:
    # the cached object is never handed out: a caller may extend its rule ids
    return dataclasses.replace(slot, rule_ids=list(slot.rule_ids))


def memo_for(settings: InjectionSettings) -> Memo:
    return Memo(settings)


def cached_scorer(memo: Memo, slots: list[tuple[str, str]]) -> Callable[..., SlotScore]:
    """A ``score_text`` for ``assess`` over ``slots`` that asks the cache first."""
    context = text_digest(*(t for r, t in slots if r in CONTEXT_ROLES and t))

    def score(cfg, text: str, role: str, rules, ctx) -> SlotScore:
        found = memo.remember(lambda: _copy(score_text(cfg, text, role, rules, ctx)),
                              role, context if ctx is not None else b"-", text,
                              keep=lambda s: not s.timed_out)
        return _copy(found)
    return score
