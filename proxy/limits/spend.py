"""Spend budgets in dollars: what a request may cost at most (reserved before it is forwarded)
and what it did cost (settled afterwards), in micro-dollars like every other counter unit."""
from __future__ import annotations

from ..cost.exchange import exchange_cost, price_of, table_of
from ..cost.prices import Price, to_micro


class Unpriced(LookupError):
    """A spend budget applies to a model the price table does not know: it cannot be enforced."""

    def __init__(self, model: str | None, limit: str) -> None:
        super().__init__(model)
        self.model = model
        self.limit = limit


def candidate_prices(ex) -> list[Price | None]:
    """The price of every model the request may run as: the requested model, or each of its
    route's upstream-specific names (a fallback may be dearer than the primary)."""
    table = table_of(ex)
    route = ex.route
    models = [t.model or ex.model for t in route.targets] if route is not None else [ex.model]
    return [table.price(m) if table is not None else None for m in models]


def reservation_micro(ex, prompt: int, output: int, limit: str) -> int:
    prices = candidate_prices(ex)
    if not prices or any(p is None for p in prices):
        raise Unpriced(ex.model, limit)
    return max(to_micro(p.ceiling(prompt, output)) for p in prices)


def actual_micro(ex, prompt_estimate: int, completion_estimate: int) -> int:
    """Micro-dollars spent: priced from the provider's reported usage, else (no usage reported)
    from the limiter's token estimate; 0 when nothing reached a provider."""
    usd = exchange_cost(ex)
    if usd is not None:
        return to_micro(usd)
    if not prompt_estimate and not completion_estimate:
        return 0
    price = price_of(ex)
    if price is None:
        candidates = [p for p in candidate_prices(ex) if p is not None]
        if not candidates:
            return 0
        price = max(candidates, key=lambda p: p.input + p.output)
    return to_micro(price.usd(prompt_estimate, completion_estimate))
