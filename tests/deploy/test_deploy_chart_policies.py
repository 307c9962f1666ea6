"""The policies the chart ships are ones the proxy accepts, and the proxy serves with the
environment the Deployment gives it: checked with the real policy compiler and a real proxy."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest
import yaml
from deploy_chart import CI_VALUES, env_of, load_values, manifests, one, proxy_container

from proxy.policy.compile import check_files
from proxy.policy.schema import build_schema


def inline_policy(values_file: Path | None) -> tuple[str, str] | None:
    """(file name, text) of the policy the Deployment serves, when the chart renders it."""
    return inline_policy_of(manifests(load_values(values_file) if values_file else None))


def inline_policy_of(objects) -> tuple[str, str] | None:
    configmaps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "aifw-policy"]
    if not configmaps:
        return None  # existingConfigMap: the operator's files, not the chart's
    args = proxy_container(objects)["args"]
    name = Path(args[args.index("--policy") + 1]).name
    return name, configmaps[0]["data"][name]


def pod_env(objects) -> dict[str, str]:
    """The proxy container's environment as the kubelet would build it, with stand-ins for
    values that come from Secrets and the downward API."""
    env: dict[str, str] = {}
    for name, var in env_of(proxy_container(objects)).items():
        if "value" in var:
            value = var["value"]
            for known, resolved in env.items():  # $(VAR) refers to variables defined before
                value = value.replace(f"$({known})", resolved)
            env[name] = value
        elif "secretKeyRef" in var.get("valueFrom", {}):
            env[name] = "rediss://:from-secret@redis.example:6380/0" if name == "AIFW_REDIS_URL" else "from-secret-0123456789"
        else:
            env[name] = "aifw-7d9f8-abcde"
    return env


def unregistered(policy_text: str) -> set[str]:
    """Top-level sections and guards the policy uses that this proxy build does not know yet."""
    schema = build_schema()["properties"]
    policy = yaml.safe_load(policy_text)
    missing = {k for k in policy if k not in schema}
    known_guards = schema["guards"].get("properties", {})
    missing |= {f"guards.{g}" for g in policy.get("guards") or {} if g not in known_guards}
    return missing


def assert_registered(policy_text: str) -> None:
    missing = unregistered(policy_text)
    assert not missing, f"the chart's policy uses sections or guards this proxy does not know: {sorted(missing)}"


def _has_inline_policy(values_file) -> bool:
    objects = manifests(load_values(values_file) if values_file else None)
    return inline_policy_of(objects) is not None


# Cases that mount an operator's existing ConfigMap have no chart policy to check.
CASES = [pytest.param(v, id=v.stem if v else "default")
         for v in [None, *CI_VALUES] if _has_inline_policy(v)]


@pytest.mark.parametrize("values_file", CASES)
def test_chart_policy_passes_aifw_policy_check(values_file, tmp_path, monkeypatch):
    objects = manifests(load_values(values_file) if values_file else None)
    name, text = inline_policy_of(objects)
    assert_registered(text)
    path = tmp_path / name
    path.write_text(text)
    env = pod_env(objects)
    # The ratelimit guard reads AIFW_REDIS_URL from os.environ rather than the env handed to
    # the compiler, so the pod's environment goes to both.
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert check_files([str(path)], env=env) == []


async def test_default_chart_policy_serves_through_the_openai_sdk(start_proxy, fake, tmp_path):
    """The proxy started with the chart's default policy and the Deployment's plain env."""
    objects = manifests(None)
    name, text = inline_policy(None)
    assert_registered(text)
    env = pod_env(objects)
    env.update({"AIFW_UPSTREAM_URL": fake.openai_url, "AIFW_AUDIT_DIR": str(tmp_path / "audit")})
    proxy = await start_proxy(text, env=env, name=name)
    client = openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-test", max_retries=0)
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert answer.choices[0].message.content
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with session.get(proxy.url + path) as response:
                assert response.status == 200, path
