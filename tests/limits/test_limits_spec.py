"""Limit notation, OpenAI duration format, calendar windows, token counting, worker check."""
from __future__ import annotations

import calendar

import pytest

from .helpers import make_exchange
from proxy.limits import check_workers
from proxy.limits.spec import LimitSpecError, calendar_window, format_reset, parse_budget, parse_rate
from proxy.limits.tokens import TokenCounter, estimate, output_allowance, prompt_tokens


@pytest.mark.parametrize("text,amount,window", [
    ("60/minute", 60, 60), ("10/second", 10, 1), ("5000/day", 5000, 86400), ("10 / s", 10, 1),
    ("100k/hour", 100_000, 3600), ("1000/5minutes", 1000, 300), ("2 per hour", 2, 3600),
])
def test_parse_rate(text, amount, window):
    rate = parse_rate(text)
    assert (rate.amount, rate.window) == (amount, window)


@pytest.mark.parametrize("text", ["60", "minute", "0/second", "1.5/second", "5/fortnight", "10/month"])
def test_parse_rate_rejects(text):
    with pytest.raises(LimitSpecError):
        parse_rate(text)


def test_parse_budget():
    assert parse_budget("2m/month").amount == 2_000_000
    assert parse_budget("5000/day").period == "day"
    with pytest.raises(LimitSpecError):
        parse_budget("5000/hour")


@pytest.mark.parametrize("seconds,text", [
    (0.02, "20ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3723, "1h2m3s"), (0, "0ms"), (59.9999, "1m0s"),
])
def test_format_reset_like_openai(seconds, text):
    assert format_reset(seconds) == text


def test_calendar_windows_are_utc():
    dec31 = calendar.timegm((2024, 12, 31, 23, 59, 0))
    assert calendar_window("month", dec31) == ("m202412", calendar.timegm((2025, 1, 1, 0, 0, 0)))
    assert calendar_window("day", dec31) == ("d20241231", calendar.timegm((2025, 1, 1, 0, 0, 0)))
    feb = calendar.timegm((2024, 2, 29, 12, 0, 0))
    assert calendar_window("month", feb)[1] == calendar.timegm((2024, 3, 1, 0, 0, 0))


def test_openai_models_use_the_real_tokenizer():
    counter = TokenCounter()
    assert counter.count(["hello world"], "gpt-4o", 4) == 2
    assert counter.encoding_for("gpt-4o").name == "o200k_base"
    assert counter.encoding_for("gpt-3.5-turbo").name == "cl100k_base"
    assert counter.encoding_for("o3-mini").name == "o200k_base"          # by prefix
    assert counter.encoding_for("claude-3-5-sonnet") is None
    # special-token text in a prompt is just text, never an error
    assert counter.count(["<|endoftext|>"], "gpt-4o", 4) > 1
    assert counter.count(["word " * 150_000], "gpt-4o", 4) == pytest.approx(150_000, rel=0.01)


def test_other_models_are_estimated():
    counter = TokenCounter()
    assert counter.count(["x" * 10], "claude-3-haiku", 4) == 3
    assert estimate(0, 4) == 0 and estimate(1, 4) == 1


def test_prompt_tokens_without_slots_charges_by_size():
    ex = make_exchange(messages=())
    ex.request_slots = []
    ex.raw_body = b"x" * 400
    assert prompt_tokens(TokenCounter(), ex, 4.0) == 100


@pytest.mark.parametrize("body,kind,expected", [
    ({"max_tokens": 10}, "chat", 10),
    ({"max_completion_tokens": 20, "max_tokens": 10}, "chat", 20),
    ({"max_output_tokens": 30}, "responses", 30),
    ({}, "chat", 4096),
    ({"max_tokens": 10, "n": 3}, "chat", 30),
    ({"input": "x"}, "embeddings", 0),
    (None, "models", 0),
])
def test_output_allowance(body, kind, expected):
    assert output_allowance(body, kind, 4096) == expected


def test_check_workers():
    section = {"limits": [{"name": "a", "requests": "1/second"}]}
    assert check_workers(section, 1) is None
    assert "redis" in check_workers(section, 4)
    assert check_workers({**section, "backend": "redis"}, 4) is None
    assert check_workers({"limits": []}, 4) is None
    assert check_workers({**section, "enabled": False}, 4) is None
    policy = {"guards": {"ratelimit": {"backend": "redis", "limits": []}},
              "scopes": [{"name": "x", "guards": {"ratelimit": {"backend": "memory", **section}}}]}
    assert "scope x" in check_workers(policy, 2)
    assert check_workers({"guards": {"ratelimit": {"backend": "redis", **section}}}, 8) is None


def test_check_workers_reads_a_compiled_policy():
    from types import SimpleNamespace

    from proxy.guards.base import CompileContext
    from proxy.guards.ratelimit import compile_guard
    from proxy.services import Services
    guard = compile_guard({"limits": [{"name": "a", "requests": "1/second"}]},
                          CompileContext(policy_dir=".", services=Services()))
    policy = SimpleNamespace(base=SimpleNamespace(name="base", guards=(guard,)), scopes=())
    assert "in-memory" in check_workers(policy, 2)
    assert check_workers(policy, 1) is None
    assert check_workers(SimpleNamespace(base=SimpleNamespace(name="base", guards=()), scopes=()), 2) is None


def test_redis_url_tls_and_password_settings(monkeypatch):
    from redis.asyncio.connection import SSLConnection

    from proxy.limits.config import compile_limits
    from proxy.limits.redis_backend import make_client
    monkeypatch.setenv("AIFW_REDIS_URL", "rediss://redis.example:6380/2")
    monkeypatch.setenv("RPW", "pw")
    import os
    cfg = compile_limits({"backend": "redis", "limits": [],
                          "redis": {"passwordEnv": "RPW", "tls": {"caFile": "ca.pem"}, "keyPrefix": "t1"}},
                         policy_dir="/etc/aifw", env=os.environ)
    assert cfg.redis.url == "rediss://redis.example:6380/2" and cfg.redis.password == "pw"
    assert cfg.redis.ca_file == "/etc/aifw/ca.pem" and cfg.key_prefix == "t1"
    client = make_client(cfg.redis)
    pool = client.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/aifw/ca.pem"
    assert pool.connection_kwargs["password"] == "pw"
    assert "pw" not in repr(cfg.redis)


def test_serve_refuses_workers_with_memory_limits():
    from types import SimpleNamespace

    from proxy.guards.base import CompileContext
    from proxy.guards.ratelimit import compile_guard
    from proxy.runtime import check_workers as serve_check
    from proxy.services import Services
    guard = compile_guard({"limits": [{"name": "a", "requests": "1/second"}]},
                          CompileContext(policy_dir=".", services=Services()))
    policy = SimpleNamespace(base=SimpleNamespace(name="base", guards=(guard,)), scopes=(), sections={})
    assert "in-memory" in serve_check(policy, 3)
