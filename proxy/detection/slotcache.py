"""Slot scores remembered across requests (proxy/scancache.py): a conversation's earlier turns
were scored when they were new, so only the new turn is scanned.

A slot's score depends on the injection settings, the slot's role, the request's system and
developer prompts (the context rules judge the slot against them) and the text: all four are in
the key. A scan cut short by its time bound is not remembered (a later request scans it again).
"""
from __future__ import annotations

import sys
from typing import Callable

from ..scancache import MISSING, Memo, text_digest
from .context import CONTEXT_ROLES
from .scanner import SlotScore, score_text
from .settings import InjectionSettings

# What a remembered score holds: (rule ids, rule score, model probability, model points). The
# rule id strings are the rules' own (shared), so the size is the tuples and the floats.
_SCORE_BYTES = sys.getsizeof((None,) * 4) + sys.getsizeof(()) + 2 * sys.getsizeof(0.0)


def _size(frozen: tuple) -> int:
    return _SCORE_BYTES + 8 * len(frozen[0])


def memo_for(settings: InjectionSettings) -> Memo:
    return Memo(settings)


def cached_scorer(memo: Memo, slots: list[tuple[str, str]],
                  digest: Callable[[str], bytes] = text_digest) -> Callable[..., SlotScore]:
    """A ``score_text`` for ``assess`` over ``slots`` that asks the cache first. ``digest``: the
    exchange's ``text_digest`` (each text digested once however many guards look it up)."""
    context: tuple[bytes, ...] | None = None
    cache = memo.cache

    def score(cfg, text: str, role: str, rules, ctx) -> SlotScore:
        nonlocal context
        if not cache.enabled:
            return score_text(cfg, text, role, rules, ctx)
        if ctx is None:
            key = memo.key(role, None, digest(text))      # judged without the system prompts
        else:
            if context is None:
                context = tuple(digest(t) for r, t in slots if r in CONTEXT_ROLES and t)
            key = memo.key(role, context, digest(text))
        found = cache.get(key)
        if found is MISSING:
            # the cache keeps an immutable copy: a caller may extend the rule ids of its own
            slot = score_text(cfg, text, role, rules, ctx)
            if not slot.timed_out:
                frozen = (tuple(slot.rule_ids), slot.rule_score, slot.model_probability,
                          slot.model_points)
                cache.put(key, frozen, _size(frozen))
            return slot
        return SlotScore(role, list(found[0]), found[1], found[2], found[3])
    return score
