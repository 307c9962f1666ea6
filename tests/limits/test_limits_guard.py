"""The ratelimit guard on Exchange objects: reservation, headers, refusals, settlement."""
from __future__ import annotations

import jsonschema
import pytest

from .helpers import make_exchange
from proxy.guards import GUARDS
from proxy.guards.base import CompileContext, StreamText
from proxy.guards.ratelimit import RateLimitCutOffGuard, compile_guard
from proxy.limits.config import SCHEMA
from proxy.services import Services
from proxy.verdict import Verdict


def make_guard(clock, services=None, failure_mode="closed", **section):
    services = services or Services()
    services.set("ratelimit.clock", clock)
    guard = compile_guard(section, CompileContext(policy_dir=".", services=services))
    guard.failure_mode = failure_mode
    return guard


def guard_on(clock, backend, **section):
    """``make_guard`` whose in-memory limits are counted by ``backend``."""
    services = Services()
    services.set("ratelimit.memory", backend)
    return make_guard(clock, services, **section)


async def admit(guard, ex):
    verdict = await guard.on_request(ex)
    return verdict


def test_registered_and_schema_is_valid():
    assert GUARDS["ratelimit"].compile is compile_guard
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    v = jsonschema.Draft202012Validator(SCHEMA)
    good = {"backend": "redis", "redis": {"url": "rediss://r:6380/0", "tls": {"caFile": "ca.pem"}},
            "limits": [{"name": "a", "scope": "group", "groups": ["interns"], "perMember": True,
                        "requests": ["10/second", "5000/day"], "tokens": "100000/minute",
                        "budget": "2000000/month", "concurrency": 4, "models": ["gpt-4*"]}]}
    assert not list(v.iter_errors(good))
    assert list(v.iter_errors({"limits": [{"name": "a", "requests": "10/second", "typo": 1}]}))
    assert list(v.iter_errors({"limits": [{"name": "a"}]}))           # no limit in it
    assert list(v.iter_errors({"limits": [{"name": "a", "requests": "ten per second"}]}))


async def test_request_limit_refusal_is_openai_shaped(clock):
    guard = make_guard(clock, limits=[{"name": "rpm", "requests": "2/minute"}])
    for _ in range(2):
        ex = make_exchange()
        assert await admit(guard, ex) is None
    assert ex.response_headers["x-ratelimit-limit-requests"] == "2"
    assert ex.response_headers["x-ratelimit-remaining-requests"] == "0"
    assert ex.response_headers["x-ratelimit-reset-requests"] == "1m0s"
    verdict = await admit(guard, make_exchange())
    assert isinstance(verdict, Verdict)
    assert (verdict.status, verdict.code, verdict.type) == (429, "rate_limit_exceeded", "rate_limit_error")
    headers = dict(verdict.headers)
    assert headers["retry-after"] == "30" and headers["retry-after-ms"] == "30000"
    assert verdict.rule_ids == ("ratelimit.requests.rpm",)
    assert "hello" not in verdict.message
    clock.advance(30)
    assert await admit(guard, make_exchange()) is None


async def test_strictest_limit_decides(clock):
    guard = make_guard(clock, limits=[{"name": "per-second", "requests": "1/second"},
                                      {"name": "per-minute", "scope": "key", "requests": "2/minute"}])
    assert await admit(guard, make_exchange()) is None
    clock.advance(1)
    assert await admit(guard, make_exchange()) is None
    verdict = await admit(guard, make_exchange())        # both refuse: the longer wait decides
    assert set(verdict.rule_ids) == {"ratelimit.requests.per-second", "ratelimit.requests.per-minute"}
    assert dict(verdict.headers)["retry-after-ms"] == "29000"


async def test_budget_refusal_says_do_not_retry(clock):
    guard = make_guard(clock, defaultMaxTokens=100, limits=[{"name": "daily", "budget": "250/day"}])
    assert await admit(guard, make_exchange()) is None
    assert await admit(guard, make_exchange()) is None
    verdict = await admit(guard, make_exchange())
    assert (verdict.status, verdict.code, verdict.type) == (429, "insufficient_quota", "insufficient_quota")
    headers = dict(verdict.headers)
    assert headers["x-should-retry"] == "false" and "retry-after" not in headers


async def test_reserves_prompt_plus_output_and_headers_show_tokens(clock):
    guard = make_guard(clock, limits=[{"name": "tpm", "tokens": "10000/minute"}])
    ex = make_exchange(messages=("hello world",), body_extra={"max_tokens": 50})
    assert await admit(guard, ex) is None
    res = ex.state["ratelimit"]
    assert res.prompt_tokens == 2 + 3 + 3          # 2 text tokens + message and reply framing
    assert res.output_tokens == 50
    assert ex.usage.reserved_tokens == 58
    assert ex.response_headers["x-ratelimit-remaining-tokens"] == str(10000 - 58)
    assert "x-ratelimit-limit-requests" not in ex.response_headers


async def test_settlement_uses_reported_usage(clock):
    guard = make_guard(clock, limits=[{"name": "tpm", "tokens": "1000/minute"}])
    ex = make_exchange(body_extra={"max_completion_tokens": 900})
    assert await admit(guard, ex) is None
    assert await admit(guard, make_exchange(body_extra={"max_tokens": 900})) is not None
    ex.upstream_started, ex.status = 1.0, 200
    ex.usage.prompt_tokens, ex.usage.completion_tokens = 10, 20
    await guard.on_complete(ex)
    nxt = make_exchange(body_extra={"max_tokens": 900})
    assert await admit(guard, nxt) is None
    assert nxt.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 30 - nxt.usage.reserved_tokens)


async def test_settlement_estimates_streamed_text_without_usage(clock):
    guard = make_guard(clock, charsPerToken=4, limits=[{"name": "tpm", "tokens": "1000/minute"}])
    ex = make_exchange(body_extra={"max_tokens": 500})
    await admit(guard, ex)
    prompt = ex.state["ratelimit"].prompt_tokens
    ex.upstream_started, ex.status = 1.0, 200
    ex.usage.streamed_chars = 400                     # ~100 tokens
    await guard.on_complete(ex)
    probe = make_exchange(body_extra={"max_tokens": 0})
    await admit(guard, probe)
    used = 1000 - int(probe.response_headers["x-ratelimit-remaining-tokens"]) - probe.usage.reserved_tokens
    assert used == prompt + 100


async def test_nothing_charged_when_the_request_never_left(clock):
    guard = make_guard(clock, limits=[{"name": "tpm", "tokens": "1000/minute"}])
    ex = make_exchange(body_extra={"max_tokens": 900})
    await admit(guard, ex)
    await guard.on_complete(ex)                       # blocked by a later guard: no upstream call
    assert await admit(guard, make_exchange(body_extra={"max_tokens": 900})) is None


async def test_concurrency_released_on_complete_even_after_errors(clock):
    guard = make_guard(clock, limits=[{"name": "one", "concurrency": 1}])
    ex = make_exchange()
    assert await admit(guard, ex) is None
    assert (await admit(guard, make_exchange())).code == "rate_limit_exceeded"
    ex.upstream_started, ex.status = 1.0, 502
    await guard.on_complete(ex)
    assert await admit(guard, make_exchange()) is None


async def test_stream_asks_for_usage_and_hides_it(clock):
    guard = make_guard(clock, limits=[{"name": "tpm", "tokens": "100000/minute"}])
    ex = make_exchange(stream=True)
    await admit(guard, ex)
    assert ex.body["stream_options"] == {"include_usage": True}
    assert ex.body_changed and ex.strip_usage_chunk
    ex2 = make_exchange(stream=True, body_extra={"stream_options": {"include_usage": True}})
    await admit(guard, ex2)
    assert not ex2.body_changed and not ex2.strip_usage_chunk
    ex3 = make_exchange(stream=True, path="/v1/messages", model="claude-3-5-sonnet")
    await admit(guard, ex3)
    assert "stream_options" not in ex3.body
    only_requests = make_guard(clock, limits=[{"name": "rpm", "requests": "10/minute"}])
    ex4 = make_exchange(stream=True)
    await admit(only_requests, ex4)
    assert "stream_options" not in ex4.body


async def test_scopes_group_pooled_and_per_member(clock):
    guard = make_guard(clock, limits=[
        {"name": "pool", "scope": "group", "groups": ["interns"], "requests": "3/minute"},
        {"name": "each", "scope": "group", "groups": ["interns"], "perMember": True, "requests": "2/minute"},
    ])
    for _ in range(2):
        assert await admit(guard, make_exchange(user="ann", groups=("interns",))) is None
    assert (await admit(guard, make_exchange(user="ann", groups=("interns",)))).rule_ids == ("ratelimit.requests.each",)
    assert await admit(guard, make_exchange(user="ben", groups=("interns",))) is None
    assert (await admit(guard, make_exchange(user="cat", groups=("interns",)))).rule_ids == ("ratelimit.requests.pool",)
    assert await admit(guard, make_exchange(user="dan", groups=("staff",))) is None


async def test_user_limit_falls_back_to_the_key_and_model_filters(clock):
    guard = make_guard(clock, limits=[{"name": "big", "models": ["gpt-4*"], "requests": "1/minute"}])
    assert await admit(guard, make_exchange(user=None, key_id="kx")) is None
    assert await admit(guard, make_exchange(user=None, key_id="kx")) is not None
    assert await admit(guard, make_exchange(user=None, key_id="ky")) is None
    assert await admit(guard, make_exchange(user=None, key_id="kx", model="claude-3-haiku")) is None


async def test_per_model_counters(clock):
    guard = make_guard(clock, limits=[{"name": "m", "perModel": True, "requests": "1/minute"}])
    assert await admit(guard, make_exchange(model="gpt-4o")) is None
    assert await admit(guard, make_exchange(model="gpt-4o-mini")) is None
    assert await admit(guard, make_exchange(model="gpt-4o")) is not None


async def test_cut_off_stream_when_reserved_output_is_used(clock):
    guard = make_guard(clock, cutOffStreams=True, charsPerToken=4,
                       limits=[{"name": "b", "budget": "100000/day"}])
    assert isinstance(guard, RateLimitCutOffGuard)
    ex = make_exchange(stream=True, body_extra={"max_tokens": 10})
    await admit(guard, ex)
    key = StreamText()
    assert guard.on_chunk(ex, key, "x" * 20) == "x" * 20          # 5 tokens
    assert guard.on_chunk(ex, key, "x" * 20) == "x" * 20          # 10 tokens
    out = guard.on_chunk(ex, key, "x" * 4)
    assert isinstance(out, Verdict) and out.finish_reason == "length"
    assert any(f.action == "cut" for f in ex.findings)
    plain = make_guard(clock, limits=[{"name": "b", "budget": "100000/day"}])
    assert type(plain).on_chunk is not RateLimitCutOffGuard.on_chunk


async def test_embeddings_reserve_no_output(clock):
    guard = make_guard(clock, limits=[{"name": "tpm", "tokens": "1000/minute"}])
    ex = make_exchange(path="/v1/embeddings", model="text-embedding-3-small")
    await admit(guard, ex)
    assert ex.state["ratelimit"].output_tokens == 0


async def test_no_applicable_limits_means_no_state(clock):
    guard = make_guard(clock, limits=[{"name": "g", "scope": "group", "groups": ["x"], "requests": "1/minute"}])
    ex = make_exchange()
    assert await admit(guard, ex) is None
    assert "ratelimit" not in ex.state and not ex.response_headers


def test_compile_errors_are_clear(clock):
    from proxy.limits.spec import LimitSpecError
    with pytest.raises(LimitSpecError, match="'a'"):
        make_guard(clock, limits=[{"name": "a", "budget": "10/hour"}])
    with pytest.raises(LimitSpecError, match="two limits"):
        make_guard(clock, limits=[{"name": "a", "requests": "1/second"}, {"name": "a", "requests": "2/second"}])
    with pytest.raises(LimitSpecError, match="AIFW_REDIS_URL"):
        from proxy.limits.config import compile_limits
        compile_limits({"backend": "redis", "limits": []}, env={})
