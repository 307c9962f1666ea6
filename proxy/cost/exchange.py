"""What one exchange cost, from the usage its provider reported, priced by the policy's table."""
from __future__ import annotations

from typing import Any

from ..parsing.usage_request import ask_for_usage
from .prices import Price
from .table import PriceTable

SECTION = "cost"


def table_of(ex: Any) -> PriceTable | None:
    sections = getattr(ex.policy, "sections", None)
    return sections.get(SECTION) if sections else None


def priced_model(ex: Any) -> str | None:
    """The model the provider ran: the name sent upstream (a route may rename it per upstream)."""
    return ex.upstream_model or ex.model


def price_of(ex: Any) -> Price | None:
    table = table_of(ex)
    return table.price(priced_model(ex)) if table is not None else None


def exchange_cost(ex: Any) -> float | None:
    """USD for the reported usage; 0.0 when nothing reached a provider or it refused; None when
    the model has no price or the provider reported no usage for an answer it gave."""
    usage = ex.usage
    if usage.prompt_tokens is None and usage.completion_tokens is None:
        if ex.upstream_started is None or (ex.status is not None and ex.status >= 400):
            return 0.0
        return None
    price = price_of(ex)
    if price is None:
        return None
    return round(price.usd(usage.prompt_tokens or 0, usage.completion_tokens or 0,
                           usage.cached_tokens or 0), 10)


def request_stream_usage(ex: Any) -> None:
    """Streams are priced from the usage they report: ask OpenAI-dialect streams for it."""
    if ex.stream and ex.parsed:   # the facts on the exchange first: most requests do not stream
        table = table_of(ex)
        if table is not None and table.stream_usage:
            ask_for_usage(ex)
