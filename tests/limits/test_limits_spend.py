"""Spend budgets in dollars: notation, reservation from the dearest route target, refusals."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from proxy.cost.table import compile_section as compile_cost
from proxy.guards.ratelimit import RateLimitGuard
from proxy.limits.config import compile_limits
from proxy.limits.limiter import build_limiter
from proxy.limits.spec import LimitSpecError, parse_spend
from proxy.policy.compile import validator
from tests.limits.helpers import make_exchange

PRICES = {"cheap": {"input": 1000, "output": 10000}, "dear": {"input": 2000, "output": 20000}}


def test_spend_notation():
    assert parse_spend("50USD/month").amount == 50_000_000
    assert parse_spend("$12.5 / day").period == "day"
    assert parse_spend("0.25 usd per day").amount == 250_000
    for bad in ("50USD/hour", "50EUR/month", "USD/day", "0USD/day"):
        with pytest.raises(LimitSpecError):
            parse_spend(bad)


def test_schema_accepts_spend_and_rejects_nonsense():
    ok = {"version": 1, "upstreams": {"o": {"provider": "openai", "baseUrl": "https://x"}},
          "guards": {"ratelimit": {"limits": [{"name": "s", "spend": ["50USD/month", "$5/day"]}]}},
          "cost": {"prices": {"m": {"input": 1, "output": 2}}}}
    assert not list(validator().iter_errors(ok))
    ok["guards"]["ratelimit"]["limits"][0]["spend"] = "fifty dollars"
    assert list(validator().iter_errors(ok))


def _guard(limits):
    guard = RateLimitGuard(build_limiter(compile_limits({"limits": limits})))
    guard.mode, guard.failure_mode = "enforce", "closed"
    return guard


def _exchange(model, max_tokens, route_models=None):
    ex = make_exchange(model=model, body_extra={"max_tokens": max_tokens})
    ex.policy = SimpleNamespace(sections={"cost": compile_cost({"shippedPrices": False, "prices": PRICES})})
    if route_models is not None:
        ex.route = SimpleNamespace(targets=tuple(SimpleNamespace(model=m) for m in route_models))
    return ex


async def test_reservation_is_the_dearest_target_and_refusal_is_insufficient_quota():
    guard = _guard([{"name": "usd", "spend": "1USD/day"}])
    ex = _exchange("cheap", 40, route_models=[None, "dear"])   # may fall back to the dear one
    assert await guard.on_request(ex) is None
    (charge,) = ex.state["ratelimit"].charges
    prompt = ex.state["ratelimit"].prompt_tokens
    assert charge.cost == prompt * 2000 + 40 * 20000            # micro-dollars at the dear price
    ex2 = _exchange("cheap", 40, route_models=[None, "dear"])
    verdict = await guard.on_request(ex2)
    assert verdict.status == 429 and verdict.code == "insufficient_quota"
    assert "spend budget" in verdict.message and "$" in verdict.message
    assert dict(verdict.headers)["x-should-retry"] == "false"
    assert verdict.rule_ids == ("ratelimit.spend.usd",)


async def test_unpriced_model_is_refused_when_a_spend_budget_applies():
    guard = _guard([{"name": "usd", "spend": "1USD/day"}])
    verdict = await guard.on_request(_exchange("mystery-model", 10))
    assert verdict.status == 403 and verdict.code == "model_not_priced"
    # a budget for other models does not touch it
    other = _guard([{"name": "usd", "spend": "1USD/day", "models": ["cheap"]}])
    assert await other.on_request(_exchange("mystery-model", 10)) is None


async def test_settles_to_reported_usage():
    guard = _guard([{"name": "usd", "spend": "1USD/day"}])
    ex = _exchange("cheap", 50)
    assert await guard.on_request(ex) is None
    ex.upstream_started, ex.status = 1.0, 200
    ex.usage.prompt_tokens, ex.usage.completion_tokens = 10, 5      # $0.06
    await guard.on_complete(ex)
    backend = guard.limiter.primary
    (charge,) = ex.state["ratelimit"].charges
    assert backend.used[charge.key][0] == 60_000
    refused = _exchange("cheap", 50)
    refused.upstream_started = None                                 # never forwarded: costs nothing
    assert await guard.on_request(refused) is None
    await guard.on_complete(refused)
    assert backend.used[charge.key][0] == 60_000
