"""What the limiter does on every request, made cheap: the charge planner remembers each caller's
counter keys and must give exactly the charges build_charges gives (every kind of limit, scope,
model and route, across calendar windows); the rate headers name the tightest limit."""
from __future__ import annotations

import itertools

from proxy.exchange import Identity
from proxy.limits.backend import ItemResult
from proxy.limits.charges import Charge, ChargePlanner, build_charges
from proxy.limits.config import Limit, compile_limits
from proxy.limits.refusals import rate_headers

CONFIG = compile_limits({"limits": [
    {"name": "rpm", "scope": "user", "requests": ["60/minute", "5/second"]},
    {"name": "tph", "scope": "key", "tokens": "100000/hour", "models": ["gpt-4o*"]},
    {"name": "day", "scope": "group", "budget": "1000000/day", "perMember": True},
    {"name": "month", "scope": "global", "budget": "5000000/month", "perModel": True},
    {"name": "dollars", "scope": "user", "spend": "$5/day"},
    {"name": "inflight", "scope": "key", "concurrency": 4},
    {"name": "emb", "scope": "group", "groups": ["eng"], "requests": "10/second",
     "routes": ["embeddings"]},
]})
WHO = (Identity(key_id="k1", user="alice", groups=("eng", "ops")), Identity(key_id="k:2"),
       Identity(key_id="k3", user="a|b@c", groups=("ops",)), None)
MODELS = ("gpt-4o", "claude-3-haiku", None)
ROUTES = (("chat.completions", "/v1/chat/completions"), ("embeddings", "/v1/embeddings"))
# 2024-02-29 23:59:59 UTC and one second later: another day and another month
TIMES = (1709251199.0, 1709251200.0)


def _plain(charges):
    return [(c.limit, c.key, c.cost, c.param) for c in charges]


def test_the_planner_gives_what_build_charges_gives():
    planner = ChargePlanner(CONFIG)
    for _ in range(2):                      # the second round answers from remembered keys
        for who, model, route, now, tokens in itertools.product(WHO, MODELS, ROUTES, TIMES, (0, 77)):
            assert _plain(planner.build(who, model, route, tokens, now)) == \
                _plain(build_charges(CONFIG, who, model, route, tokens, now))


def test_charges_are_new_objects_on_every_request():
    planner = ChargePlanner(CONFIG)
    first = planner.build(WHO[0], "gpt-4o", ROUTES[0], 0, TIMES[0])
    first[0].cost = 999                     # the limiter sets costs on the charges it got
    again = planner.build(WHO[0], "gpt-4o", ROUTES[0], 0, TIMES[0])
    assert again[0] is not first[0] and again[0].cost == 1


def test_the_planner_stays_bounded():
    planner = ChargePlanner(CONFIG)
    planner.MAX_ENTRIES = 10
    for i in range(25):
        planner.build(Identity(key_id=f"k{i}"), "gpt-4o", ROUTES[0], 0, TIMES[0])
    assert len(planner._templates) <= 10


def test_rate_headers_name_the_tightest_rate_then_the_longest_refill_then_the_first():
    def charge(name, kind, amount):
        return Charge(Limit(name=name, kind=kind, scope="user", amount=amount), name, 1, 1.0)
    charges = [charge("a", "requests", 10), charge("b", "requests", 20), charge("c", "requests", 30),
               charge("d", "budget", 500), charge("e", "tokens", 900)]
    items = [ItemResult(True, 4, 1.0, 0.0), ItemResult(True, 4, 2.0, 0.0), ItemResult(True, 4, 2.0, 0.0),
             ItemResult(True, 1, 9.0, 0.0), ItemResult(True, 800, 0.5, 0.0)]
    assert rate_headers(charges, items) == {
        "x-ratelimit-limit-requests": "20", "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "2s",
        # a token rate is named before a token budget, whatever is left of the budget
        "x-ratelimit-limit-tokens": "900", "x-ratelimit-remaining-tokens": "800",
        "x-ratelimit-reset-tokens": "500ms"}
    assert rate_headers(charges[3:4], items[3:4])["x-ratelimit-limit-tokens"] == "500"
