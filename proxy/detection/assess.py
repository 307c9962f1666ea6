"""Assess a request's text slots: every scanned role, every slot, in full.

A slot is judged on its own (the exchange score is the highest slot score), so a long
conversation of harmless turns does not add up into a block, while one hostile tool result or
retrieved document is enough.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from .context import CONTEXT_ROLES
from .scanner import SlotScore, context_for, score_text
from .settings import InjectionSettings

MODEL_RULE_ID = "ML-9001"     # reported when the model's points helped reach the threshold


@dataclass(slots=True)
class Assessment:
    score: float = 0.0
    attack: bool = False
    rule_ids: tuple[str, ...] = ()
    slots_scanned: int = 0
    chars_scanned: int = 0
    roles_flagged: dict[str, int] = field(default_factory=dict)
    max_model_probability: float | None = None   # None: no slot's score was close enough to run it
    timed_out: bool = False
    # (role, text, score) of every scanned slot: model escalation (escalation.py) re-judges those
    # whose score falls in the policy's band. Never logged.
    slot_scores: list[tuple[str, str, float]] = field(default_factory=list)


def slot_rule_ids(slot: SlotScore) -> list[str]:
    """The rule ids a slot that reached the threshold reports (the model's own id included)."""
    ids = list(slot.rule_ids)
    if slot.model_points >= 1.0:
        ids.append(MODEL_RULE_ID)
    return ids


def assess(settings: InjectionSettings, slots: Iterable[tuple[str, str]],
           score: Callable[..., SlotScore] = score_text) -> Assessment:
    """``slots``: (role, text) pairs. Roles the policy does not scan are skipped, but system and
    developer slots are read (once) as the context the other slots are judged against.
    ``score``: ``score_text`` or a stand-in that remembers its results (slotcache.py)."""
    cfg = settings.detector
    out = Assessment()
    flagged: list[str] = []
    weak: list[str] = []
    slots = list(slots)
    ctx = context_for(cfg, [t for r, t in slots if r in CONTEXT_ROLES and t])
    for role, text in slots:
        if role not in settings.roles or not text:
            continue
        out.slots_scanned += 1
        out.chars_scanned += len(text)
        slot = score(cfg, text, role, settings.rules_by_role.get(role, cfg.rules),
                     ctx if role not in CONTEXT_ROLES else None)
        out.timed_out |= slot.timed_out
        if slot.model_probability is not None:
            out.max_model_probability = max(out.max_model_probability or 0.0, slot.model_probability)
        out.score = max(out.score, slot.score)
        out.slot_scores.append((role, text, slot.score))
        if slot.score >= cfg.threshold:
            out.roles_flagged[role] = out.roles_flagged.get(role, 0) + 1
            flagged.extend(slot_rule_ids(slot))
        else:
            weak.extend(slot.rule_ids)
    out.attack = out.score >= cfg.threshold
    out.rule_ids = tuple(dict.fromkeys(flagged if out.attack else weak))
    out.score = round(out.score, 2)
    return out
