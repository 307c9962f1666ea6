"""The price table: the shipped list (prices.yaml, with its date) plus the policy's ``cost``
section, which overrides or adds models. Compiled once; lookups are dict hits."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import yamlfast

from .prices import Price

SHIPPED = os.path.join(os.path.dirname(__file__), "prices.yaml")

_PRICE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["input", "output"],
    "properties": {
        "input": {"type": "number", "minimum": 0, "description": "USD per million prompt tokens."},
        "output": {"type": "number", "minimum": 0, "description": "USD per million completion tokens."},
        "cachedInput": {"type": "number", "minimum": 0,
                        "description": "USD per million prompt tokens read from the provider's cache (default: input)."},
    },
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Cost in US dollars: a shipped price table per model, overridden or extended here.",
    "properties": {
        "prices": {"type": "object", "additionalProperties": _PRICE_SCHEMA,
                   "propertyNames": {"minLength": 1},
                   "description": "Prices per model name (USD per million tokens); a name also prices "
                                  "its dated snapshots (gpt-4o prices gpt-4o-2024-08-06). Wins over the shipped table."},
        "shippedPrices": {"type": "boolean",
                          "description": "Use the shipped price table (default true); false prices only the models listed here."},
        "streamUsage": {"type": "boolean",
                        "description": "Ask OpenAI-dialect streams to report usage (stream_options.include_usage; the "
                                       "extra chunk is hidden from clients that did not ask) so streams are priced "
                                       "from real usage (default true)."},
    },
}


def _price(raw: Mapping[str, Any]) -> Price:
    cached = raw.get("cachedInput")
    return Price(float(raw["input"]), float(raw["output"]), None if cached is None else float(cached))


@dataclass(frozen=True, slots=True)
class PriceTable:
    prices: Mapping[str, Price]
    date: str | None = None          # of the shipped table, when it is used
    stream_usage: bool = True
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def price(self, model: str | None) -> Price | None:
        """The price of ``model``: its own entry, else the longest listed name it extends with
        a dash (a dated snapshot such as gpt-4o-mini-2024-07-18), else None."""
        if not model:
            return None
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self.prices.get(model)
        if found is None:
            name = model
            while "-" in name and found is None:
                name = name.rsplit("-", 1)[0]
                found = self.prices.get(name)
        if len(self._cache) < 4096:     # model names come from clients: keep the cache bounded
            self._cache[model] = found
        return found


def load_shipped(path: str = SHIPPED) -> tuple[dict[str, Price], str]:
    with open(path, encoding="utf-8") as fh:
        data = yamlfast.safe_load(fh)
    return {name: _price(raw) for name, raw in data["prices"].items()}, str(data["date"])


_SHIPPED: tuple[dict[str, Price], str] | None = None


def shipped() -> tuple[dict[str, Price], str]:
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = load_shipped()
    return _SHIPPED


def compile_section(section: Mapping[str, Any], ctx: Any = None) -> PriceTable:
    prices: dict[str, Price] = {}
    date = None
    if section.get("shippedPrices", True):
        base, date = shipped()
        prices.update(base)
    for name, raw in (section.get("prices") or {}).items():
        prices[name] = _price(raw)
    return PriceTable(prices, date, bool(section.get("streamUsage", True)))
