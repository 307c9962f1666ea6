"""Score a text: rule anomaly points plus the model's points, CRS style.

The score of a slot is the sum of the severities of the rules that match it plus the model's
contribution ``model_weight * p / p_op`` (p_op: the model's operating point, chosen when it was
trained), capped at ``2 * model_weight``. With the defaults (threshold 5, weight 3) the model on its
own blocks only well past its operating point, and it tips a single weak rule hit over the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .matcher import match
from .model import LinearModel
from .normalize import Prepared
from .rules import Rule


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    rules: tuple[Rule, ...]
    model: LinearModel | None
    model_weight: float = 1.0
    threshold: float = 5.0


@dataclass(slots=True)
class SlotScore:
    role: str
    rule_ids: list[str] = field(default_factory=list)
    rule_score: float = 0.0
    model_probability: float = 0.0
    model_points: float = 0.0
    timed_out: bool = False

    @property
    def score(self) -> float:
        return self.rule_score + self.model_points


def rules_for(rules: tuple[Rule, ...], role: str) -> tuple[Rule, ...]:
    return tuple(r for r in rules if r.roles is None or role in r.roles)


def score_text(cfg: DetectorConfig, text: str, role: str = "user",
               rules: tuple[Rule, ...] | None = None) -> SlotScore:
    prepared = Prepared(text)
    result = match(rules if rules is not None else rules_for(cfg.rules, role), prepared)
    out = SlotScore(role, result.rule_ids, float(result.score), timed_out=result.timed_out)
    if cfg.model is not None and cfg.model_weight > 0 and text.strip():
        p = cfg.model.probability(text, prepared.view("normalized"))
        out.model_probability = p
        out.model_points = round(min(cfg.model_weight * p / cfg.model.threshold,
                                     2 * cfg.model_weight), 2)
    return out
