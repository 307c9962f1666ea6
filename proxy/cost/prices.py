"""One model's price, and the arithmetic that turns token counts into US dollars."""
from __future__ import annotations

from dataclasses import dataclass

PER = 1_000_000     # prices are per million tokens
MICRO = 1_000_000   # spend counters count micro-dollars (integers, like token counters)


@dataclass(frozen=True, slots=True)
class Price:
    input: float                  # USD per million prompt tokens
    output: float                 # USD per million completion tokens
    cached_input: float | None = None   # USD per million cached prompt tokens (None: as input)

    def usd(self, prompt: int, completion: int, cached: int = 0) -> float:
        """What ``prompt`` tokens (``cached`` of them served from the provider's cache) and
        ``completion`` tokens cost."""
        cached = min(max(cached, 0), max(prompt, 0))
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt - cached) * self.input + cached * cached_rate + completion * self.output) / PER

    def ceiling(self, prompt: int, completion: int) -> float:
        """The most ``prompt`` and ``completion`` tokens can cost (no cache discount)."""
        return (prompt * self.input + completion * self.output) / PER


def to_micro(usd: float) -> int:
    """Dollars as whole micro-dollars, rounded up: a reservation never falls short."""
    micro = usd * MICRO
    whole = int(micro)
    return whole if whole >= micro - 1e-9 else whole + 1


def from_micro(micro: float) -> float:
    return micro / MICRO
