"""The price table: shipped list with its date, policy overrides, snapshot names, arithmetic."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from proxy.cost.exchange import exchange_cost
from proxy.cost.prices import Price, to_micro
from proxy.cost.table import SHIPPED, compile_section, load_shipped
from proxy.exchange import Usage


def test_shipped_table_has_a_date_and_the_common_models():
    prices, date = load_shipped()
    assert date.count("-") == 2 and date >= "2025-01-01"
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "text-embedding-3-small",
                  "claude-sonnet-4", "claude-3-5-haiku", "claude-opus-4"):
        assert model in prices, model
    with open(SHIPPED, encoding="utf-8") as fh:
        assert yaml.safe_load(fh)["currency"] == "USD"


def test_snapshot_names_take_their_base_price_unless_listed():
    table = compile_section({})
    assert table.price("gpt-4o-2024-08-06") == table.price("gpt-4o")
    assert table.price("gpt-4o-mini-2024-07-18") == table.price("gpt-4o-mini") != table.price("gpt-4o")
    assert table.price("gpt-4o-2024-05-13").input == 5.0          # its own, older price
    assert table.price("claude-3-5-sonnet-20241022") == table.price("claude-3-5-sonnet")
    assert table.price("gpt-4-0613") == table.price("gpt-4") != table.price("gpt-4-turbo")
    assert table.price("my-azure-deployment") is None and table.price(None) is None


def test_policy_overrides_and_adds_and_can_drop_the_shipped_list():
    table = compile_section({"prices": {"gpt-4o": {"input": 1, "output": 2},
                                        "prod-4o": {"input": 2.5, "output": 10, "cachedInput": 1.25}}})
    assert table.price("gpt-4o") == Price(1.0, 2.0)
    assert table.price("prod-4o").cached_input == 1.25 and table.date is not None
    own = compile_section({"shippedPrices": False, "prices": {"x": {"input": 1, "output": 1}}})
    assert own.price("gpt-4o") is None and own.date is None and own.price("x-2025") == Price(1.0, 1.0)


def test_arithmetic_per_million_with_cache_discount():
    price = Price(input=2.5, output=10.0, cached_input=1.25)
    assert price.usd(1_000_000, 0) == pytest.approx(2.5)
    assert price.usd(1000, 500, cached=400) == pytest.approx((600 * 2.5 + 400 * 1.25 + 500 * 10) / 1e6)
    assert price.usd(100, 0, cached=500) == pytest.approx(100 * 1.25 / 1e6)   # cache <= prompt
    assert Price(1.0, 1.0).usd(10, 0, cached=10) == pytest.approx(10 / 1e6)   # no cache price: input
    assert price.ceiling(1000, 500) == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)
    assert to_micro(0.0000011) == 2 and to_micro(0.5) == 500000 and to_micro(0) == 0


def _ex(model, usage, status=200, reached=True, table=None):
    policy = SimpleNamespace(sections={"cost": table or compile_section({})})
    return SimpleNamespace(policy=policy, model=model, upstream_model=None, usage=usage, status=status,
                           upstream_started=1.0 if reached else None)


def test_exchange_cost_from_reported_usage():
    ex = _ex("gpt-4o-mini", Usage(prompt_tokens=1000, completion_tokens=1000, cached_tokens=1000))
    assert exchange_cost(ex) == pytest.approx((1000 * 0.075 + 1000 * 0.60) / 1e6)
    assert exchange_cost(_ex("gpt-4o", Usage(), reached=False)) == 0.0      # blocked before upstream
    assert exchange_cost(_ex("gpt-4o", Usage(), status=500)) == 0.0         # provider refused
    assert exchange_cost(_ex("gpt-4o", Usage())) is None                    # answered, no usage
    assert exchange_cost(_ex("unknown-model", Usage(prompt_tokens=1, completion_tokens=1))) is None
    renamed = _ex("gpt-4o", Usage(prompt_tokens=1_000_000, completion_tokens=0))
    renamed.upstream_model = "gpt-4o-mini"       # a route sent it under another name: that ran
    assert exchange_cost(renamed) == pytest.approx(0.15)
