"""Score a text: rule anomaly points plus the model's points, CRS style.

The score of a slot is the sum of the severities of the rules that match it plus the model's
contribution ``model_weight * p / p_op`` (p_op: the model's operating point, chosen when it was
trained), capped at ``2 * model_weight``. With the defaults (threshold 5, weight 3) the model on its
own blocks only well past its operating point, and it tips a single weak rule hit over the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import context as _context

from .matcher import match
from .normalize import Prepared
from .rules import Rule

if TYPE_CHECKING:
    from .model import LinearModel     # numpy: imported by a compile that loads a model


# Rules whose points do not count once a context rule (the system-prompt checks) has fired.
NO_STACK_WITH_CONTEXT = frozenset({"JB-2008"})
# Disguise signals (invisible characters, look-alike letters, an encoded payload to decode) are
# common in benign text (emoji sequences, names, pasted base64). They add to a score only when
# attack content was found as well: a rule of at least this many points (the views are searched
# decoded, so what a payload decodes to is that content).
DISGUISE = frozenset({"EV-3001", "EV-3003", "EV-3005"})
ATTACK_CONTENT_MIN = 4


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    rules: tuple[Rule, ...]
    model: LinearModel | None
    model_weight: float = 1.0
    threshold: float = 5.0
    # Rules judged against the request's system prompt (context.py) and their vocabulary.
    context_rules: tuple[Rule, ...] = ()
    context_vocab: Any = None


@dataclass(slots=True)
class SlotScore:
    role: str
    rule_ids: list[str] = field(default_factory=list)
    rule_score: float = 0.0
    model_probability: float | None = None      # None: the model was not run (it could not decide)
    model_points: float = 0.0
    timed_out: bool = False

    @property
    def score(self) -> float:
        return self.rule_score + self.model_points


def model_runs(rule_score: float, weight: float, threshold: float) -> bool:
    """The model's points are capped at 2 x weight: below ``threshold - cap`` the rules' score
    cannot reach the threshold whatever the model says, so the model is not run."""
    return weight > 0 and rule_score + 2 * weight >= threshold


def model_points(p: float, p_op: float, weight: float) -> float:
    return round(min(weight * p / p_op, 2 * weight), 2)


def rules_for(rules: tuple[Rule, ...], role: str) -> tuple[Rule, ...]:
    return tuple(r for r in rules if (r.roles is None or role in r.roles) and r.context is None)


def context_for(cfg: DetectorConfig, system_texts) -> "_context.SystemContext | None":
    """What the request's system/developer prompts protect; computed once per request."""
    if not cfg.context_rules:
        return None
    return _context.build(system_texts, cfg.context_vocab)


def _drop_lone_disguise(out: SlotScore, rules: tuple[Rule, ...]) -> None:
    hit = set(out.rule_ids)
    if not hit & DISGUISE:
        return
    scores = {r.id: r.score for r in rules if r.id in hit}
    if any(s >= ATTACK_CONTENT_MIN for rid, s in scores.items() if rid not in DISGUISE):
        return
    out.rule_score -= sum(s for rid, s in scores.items() if rid in DISGUISE)


def score_text(cfg: DetectorConfig, text: str, role: str = "user",
               rules: tuple[Rule, ...] | None = None,
               ctx: "_context.SystemContext | None" = None) -> SlotScore:
    prepared = Prepared(text)
    result = match(rules if rules is not None else rules_for(cfg.rules, role), prepared)
    out = SlotScore(role, result.rule_ids, float(result.score), timed_out=result.timed_out)
    _drop_lone_disguise(out, rules if rules is not None else cfg.rules)
    if ctx is not None:
        kinds = _context.hits(ctx, cfg.context_vocab, prepared.view("normalized"))
        hit = [r for r in cfg.context_rules
               if r.context in kinds and (r.roles is None or role in r.roles)]
        if hit:
            # A harm-topic cue says nothing about an application's secrets or rules: it adds to
            # jailbreak framing, not to context evidence, so the two do not stack.
            out.rule_score -= sum(r.score for r in cfg.rules
                                  if r.id in NO_STACK_WITH_CONTEXT and r.id in out.rule_ids)
            for rule in hit:
                out.rule_ids.append(rule.id)
                out.rule_score += rule.score
    # Skipping the model where it cannot decide saves a quarter of a benign request's scan; the
    # finding then carries no model probability for that slot.
    if cfg.model is not None and text.strip() \
            and model_runs(out.rule_score, cfg.model_weight, cfg.threshold):
        p = cfg.model.probability(text, prepared.view("normalized"))
        out.model_probability = p
        out.model_points = model_points(p, cfg.model.threshold, cfg.model_weight)
    return out
