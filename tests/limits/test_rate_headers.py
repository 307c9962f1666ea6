"""The rate-limit headers' shortcuts against their plain spellings: ``rate_headers`` (``_tighter``
inlined) against ``rate_headers_plain``, and ``format_reset`` (texts remembered by millisecond)
against computing each one, over generated charges and results (ties, several limits of a kind,
budgets with and without a token rate)."""
from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Sequence

from proxy.limits import spec
from proxy.limits.backend import ItemResult
from proxy.limits.charges import Charge
from proxy.limits.refusals import rate_headers
from proxy.limits.spec import format_reset, format_reset_ms


_HEADERS = {suffix: (f"x-ratelimit-limit-{suffix}", f"x-ratelimit-remaining-{suffix}",
                     f"x-ratelimit-reset-{suffix}") for suffix in ("requests", "tokens")}


def _tighter(best: tuple[Charge, ItemResult] | None, charge: Charge,
             item: ItemResult) -> tuple[Charge, ItemResult]:
    # fewest units left; on a tie the one that takes longest to refill; on a full tie the first
    if best is None or (item.remaining, -item.reset) < (best[1].remaining, -best[1].reset):
        return charge, item
    return best


def rate_headers_plain(charges: Sequence[Charge], items: Sequence[ItemResult]) -> dict[str, str]:
    """``rate_headers`` as it was written before its tighter pick was inlined: the reference."""
    requests = tokens = budget = None
    for charge, item in zip(charges, items):
        kind = charge.limit.kind
        if kind == "requests":
            requests = _tighter(requests, charge, item)
        elif kind == "tokens":
            tokens = _tighter(tokens, charge, item)
        elif kind == "budget":
            budget = _tighter(budget, charge, item)
    headers: dict[str, str] = {}
    for suffix, pick in (("requests", requests), ("tokens", tokens or budget)):
        if pick is not None:
            charge, item = pick
            limit, remaining, reset = _HEADERS[suffix]
            headers[limit] = str(charge.limit.amount)
            headers[remaining] = str(item.remaining)
            headers[reset] = format_reset_ms(max(0, int(round(item.reset * 1000))))
    return headers


def _case(rng: random.Random):
    charges, items = [], []
    for _ in range(rng.randrange(0, 7)):
        kind = rng.choice(["requests", "tokens", "tokens", "budget", "spend", "concurrency"])
        limit = SimpleNamespace(kind=kind, amount=rng.choice([10, 1000, 60000]))
        charges.append(Charge(limit, f"k{len(charges)}", 1, 60.0))
        # few distinct values, so ties on remaining and on reset are common
        items.append(ItemResult(rng.random() < 0.9, rng.choice([0, 3, 7, 999]),
                                rng.choice([0.0, 0.0004, 1.5, 3723.2, rng.random() * 100]),
                                0.0))
    return charges, items


def test_rate_headers_as_spelled_out():
    rng = random.Random(7)
    seen = set()
    for _ in range(4000):
        charges, items = _case(rng)
        fast, plain = rate_headers(charges, items), rate_headers_plain(charges, items)
        assert list(fast.items()) == list(plain.items())      # values and order
        seen.add(tuple(fast))
    assert len(seen) >= 4          # none, requests only, tokens only, both


def test_format_reset_remembered_as_computed():
    rng = random.Random(3)
    values = [0, 0.0004, 0.0005, 0.02, 1, 1.5, 59.9999, 360, 3723, -2.0, 86399.9995]
    values += [rng.random() * rng.choice([1, 60, 4000, 90000]) for _ in range(6000)]
    spec._RESET_TEXTS.clear()
    for seconds in values + values:          # the second round is answered from memory
        assert format_reset(seconds) == format_reset_ms(max(0, int(round(seconds * 1000))))
    assert len(spec._RESET_TEXTS) <= spec._RESET_TEXTS_MAX
    # and the computed texts are OpenAI's (test_limits_spec checks format_reset's)
    assert [format_reset_ms(ms) for ms in (20, 1000, 1500, 360000, 3723000)] == ["20ms", "1s", "1.5s", "6m0s", "1h2m3s"]
