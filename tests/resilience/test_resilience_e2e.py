"""Fallbacks, retries and breakers end to end: the proxy with the official SDKs in front of two
fake providers that fail on command."""
from __future__ import annotations

import socket

import aiohttp
import openai
import orjson
import pytest
import yaml

from proxy.resilience.breaker import CLOSED, HALF_OPEN, OPEN
from tests.conftest import minimal_policy
from tests.e2e.helpers import MSG, ant, oa, readiness
from proxy.policy.compile import check_files
from tests.e2e.test_identity import create_key
from tests.fakes.provider import run_fake_provider

TIMEOUTS = {"connect": "2s", "firstByte": "5s", "streamIdle": "5s", "total": "10s"}


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def second():
    async with run_fake_provider() as provider:
        yield provider


def dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                       # nothing listens: connection refused
    return f"http://127.0.0.1:{port}/v1"


def two_upstreams(primary="${FAKE_OPENAI_URL}", route=None, breaker=None, resilience=None, guards=None,
                  primary_provider="openai", secondary=None, audit_dir=None) -> str:
    base = yaml.safe_load(minimal_policy())
    base["upstreams"] = {
        "primary": {"provider": primary_provider, "baseUrl": primary, "timeouts": TIMEOUTS},
        "secondary": secondary or {"provider": "openai", "baseUrl": "${SECOND_URL}", "timeouts": TIMEOUTS},
    }
    if breaker is not None:
        base["upstreams"]["primary"]["breaker"] = breaker
    base["routes"] = [route or {"models": ["*"], "upstreams": ["primary", "secondary"]}]
    if resilience is not None:
        base["resilience"] = resilience
    if guards is not None:
        base["guards"] = guards
    base["audit"] = {"path": str(audit_dir), "flushInterval": 0.05} if audit_dir else {"sink": "stdout"}
    return yaml.safe_dump(base, sort_keys=False)


def records(directory):
    out = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        out += [r for r in map(orjson.loads, path.read_bytes().splitlines()) if r["t"] == "request"]
    return out


async def test_primary_down_secondary_answers_once_and_audit_says_so(start_proxy, second, tmp_path):
    proxy = await start_proxy(two_upstreams(primary=dead_url(), audit_dir=tmp_path / "a"),
                              env={"SECOND_URL": second.openai_url})
    client = oa(proxy.openai_url)
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.http_response.status_code == 200 and raw.parse().choices[0].message.content == "You said: hello there"
    assert len(second.requests) == 1
    await proxy.stop()
    (rec,) = records(tmp_path / "a")
    assert rec["upstream"] == "secondary" and rec["status"] == 200
    assert [(a["upstream"], a["status"], a["error"]) for a in rec["attempts"]] == [
        ("primary", None, "connect"), ("secondary", 200, None)]


@pytest.mark.parametrize("command", ["error:500", "error:503", "error:429", "refuse", "stall:3000"])
async def test_each_failure_before_the_first_byte_falls_back(start_proxy, fake, second, command):
    fake.state.fail_next = [command]
    policy = yaml.safe_load(two_upstreams())
    policy["upstreams"]["primary"]["timeouts"] = {**TIMEOUTS, "firstByte": "1s"}
    proxy = await start_proxy(yaml.safe_dump(policy), env={"SECOND_URL": second.openai_url})
    stream = await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "You said: hello there"
    assert len(fake.requests) == 1 and len(second.requests) == 1


async def test_mid_stream_death_is_not_retried(start_proxy, fake, second, tmp_path):
    fake.state.fail_next = ["disconnect:3"]
    proxy = await start_proxy(two_upstreams(audit_dir=tmp_path / "a"), env={"SECOND_URL": second.openai_url})
    stream = await oa(proxy.openai_url).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three four five six"}], stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    assert len(second.requests) == 0                    # the answer had started: never retried
    await proxy.stop()
    (rec,) = records(tmp_path / "a")
    assert rec["error"] == "upstream_error" and [a["upstream"] for a in rec["attempts"]] == ["primary"]


async def test_insufficient_quota_is_not_retried_nor_failed_over(start_proxy, fake, second):
    fake.state.fail_next = ["quota"]
    proxy = await start_proxy(two_upstreams(resilience={"retry": {"attempts": 3}}),
                              env={"SECOND_URL": second.openai_url})
    with pytest.raises(openai.RateLimitError) as info:
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.code == "insufficient_quota"      # the provider's own answer, unchanged
    assert len(fake.requests) == 1 and len(second.requests) == 0


async def test_retry_same_upstream_honours_retry_after_and_charges_limits_once(start_proxy, fake):
    fake.state.fail_next = ["error:429"]
    fake.state.retry_after = "0"
    policy = yaml.safe_load(minimal_policy())
    policy["routes"] = [{"models": ["*"], "upstream": "openai", "retry": {"attempts": 2}}]
    policy["guards"] = {"access": {}, "injection": {},
                        "ratelimit": {"limits": [{"name": "rpm", "scope": "key", "requests": "10/minute"}]}}
    policy["audit"] = {"sink": "stdout"}
    proxy = await start_proxy(yaml.safe_dump(policy))
    raw = await oa(proxy.openai_url).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.http_response.status_code == 200 and len(fake.requests) == 2
    assert raw.headers["x-ratelimit-remaining-requests"] == "9"     # one charge for two attempts


async def test_guards_run_once_whatever_the_attempts(start_proxy, fake, second, tmp_path):
    fake.state.fail_next = ["error:500"]
    proxy = await start_proxy(two_upstreams(audit_dir=tmp_path / "a", guards={"access": {}, "injection": {}}),
                              env={"SECOND_URL": second.openai_url})
    await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await proxy.stop()
    (rec,) = records(tmp_path / "a")
    assert set(rec["latency"]["guards"]) == {"access", "injection"} and len(rec["attempts"]) == 2


async def test_unsafe_failures_are_not_repeated_on_the_same_upstream(start_proxy, fake):
    fake.state.fail_next = ["error:500"]
    fake.state.retry_after = ""                          # the provider does not ask for a retry
    policy = yaml.safe_load(minimal_policy())
    policy["routes"] = [{"models": ["*"], "upstream": "openai", "retry": {"attempts": 3}}]
    proxy = await start_proxy(yaml.safe_dump(policy))
    with pytest.raises(openai.InternalServerError):
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(fake.requests) == 1


async def test_flapping_primary_opens_the_breaker_then_probes_and_closes(start_proxy, fake, second):
    breaker = {"failures": 2, "coolDown": "30s"}
    proxy = await start_proxy(two_upstreams(breaker=breaker), env={"SECOND_URL": second.openai_url})
    clock = Clock()
    proxy.holder.services.set("resilience.clock", clock)
    assert proxy.holder.reload()                        # the compiled section picks the clock up
    client = oa(proxy.openai_url)
    fake.state.fail_next = ["error:500", "error:500"]
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert proxy.holder.breaker_states() == {"primary": OPEN}
    status, body = await readiness(proxy.url)
    assert status == 200 and body["breakers"] == {"primary": OPEN}   # the secondary still serves
    async with aiohttp.ClientSession() as http:
        async with http.get(proxy.url + "/metrics") as resp:
            metrics = await resp.text()
    assert 'aifw_upstream_breaker_state{upstream="primary"} 2' in metrics
    assert 'aifw_upstream_errors_total{error="status",upstream="primary"} 2' in metrics
    before = len(fake.requests)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(fake.requests) == before and len(second.requests) == 3    # open: skipped
    clock.t += 31
    assert proxy.holder.breaker_states() == {"primary": HALF_OPEN}
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)   # the probe succeeds
    assert len(fake.requests) == before + 1
    assert proxy.holder.breaker_states() == {"primary": CLOSED}


async def test_single_upstream_with_open_breaker_answers_503_at_once(start_proxy, fake):
    policy = yaml.safe_load(minimal_policy())
    policy["upstreams"]["openai"]["breaker"] = {"failures": 1, "coolDown": "1m"}
    proxy = await start_proxy(yaml.safe_dump(policy))
    fake.state.fail_next = ["error:502"]
    client = oa(proxy.openai_url)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 503 and info.value.code == "upstream_unavailable"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60 and len(fake.requests) == 1
    status, body = await readiness(proxy.url)
    # the anthropic route still has a closed upstream: ready
    assert status == 200 and body["breakers"] == {"openai": OPEN}


async def test_fallback_renames_the_model_for_an_azure_deployment(start_proxy, second, tmp_path):
    secondary = {"provider": "azure", "baseUrl": "${SECOND_URL}", "apiVersion": "2024-10-21",
                 "apiKey": "az-key", "timeouts": TIMEOUTS}
    route = {"models": ["gpt-4o*"], "upstreams": ["primary", {"upstream": "secondary", "model": "prod-4o"}]}
    text = yaml.safe_load(two_upstreams(primary=dead_url(), route=route, secondary=secondary))
    text["identity"] = {"mode": "virtualKeys", "keysFile": "keys.yaml"}
    text["upstreams"]["primary"]["apiKey"] = "sk-provider"
    key = create_key(tmp_path / "keys.yaml", "--user", "alice")
    proxy = await start_proxy(yaml.safe_dump(text), env={"SECOND_URL": second.url})
    answer = await oa(proxy.openai_url, key=key).chat.completions.create(model="gpt-4o", messages=MSG)
    assert answer.choices[0].message.content
    req = second.last_request
    assert req.path == "/openai/deployments/prod-4o/chat/completions" and req.json["model"] == "prod-4o"
    assert req.headers["api-key"] == "az-key"


def test_fallback_across_providers_needs_virtual_keys(tmp_path):
    secondary = {"provider": "azure", "baseUrl": "https://x.openai.azure.com", "apiVersion": "2024-10-21"}
    path = tmp_path / "p.yaml"
    path.write_text(two_upstreams(primary="https://api.openai.com/v1", secondary=secondary))
    (problem,) = check_files([str(path)])
    assert "falls back across providers" in problem.message and "virtualKeys" in problem.message


async def test_anthropic_backs_anthropic(start_proxy, second):
    secondary = {"provider": "anthropic", "baseUrl": "${SECOND_URL}", "timeouts": TIMEOUTS}
    route = {"models": ["claude-*"], "upstreams": ["primary", "secondary"]}
    proxy = await start_proxy(two_upstreams(primary="http://127.0.0.1:1", primary_provider="anthropic",
                                            route=route, secondary=secondary), env={"SECOND_URL": second.url})
    msg = await ant(proxy.url).messages.create(model="claude-3-5-haiku-latest", max_tokens=20, messages=MSG)
    assert msg.content[0].text == "You said: hello there" and second.last_request.path == "/v1/messages"


async def test_two_replicas_on_one_redis_share_the_breaker(start_proxy, fake, second, redis_url):
    text = two_upstreams(breaker={"failures": 2, "coolDown": "1m"},
                         resilience={"store": "redis", "redis": {"url": redis_url, "keyPrefix": "t-shared"}})
    a = await start_proxy(text, env={"SECOND_URL": second.openai_url}, name="a.yaml")
    b = await start_proxy(text, env={"SECOND_URL": second.openai_url}, name="b.yaml")
    fake.state.fail_next = ["error:500", "error:500"]
    for _ in range(2):
        await oa(a.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    before = len(fake.requests)
    await oa(b.openai_url).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(fake.requests) == before                 # replica b skipped what a saw failing
    assert b.holder.breaker_states() == {"primary": OPEN}
