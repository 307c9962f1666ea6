"""Identity: pass-through keys (fingerprinted) and proxy-issued virtual keys."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anthropic
import openai
import pytest
import yaml

from proxy.identity import fingerprint
from tests.e2e.helpers import MSG, ant, oa, policy

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_KEY = "sk-provider-from-env"
DENY_ALL = {"access": {"denyModels": ["*"]}}


def aifw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def create_key(keys_file, *extra: str) -> str:
    out = aifw("keys", "create", "--keys-file", str(keys_file), *extra)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("aifw-") and "\n" not in key
    assert key not in keys_file.read_text()            # only the hash is stored
    return key


def virtual_policy(scopes=None) -> str:
    data = yaml.safe_load(policy(identity={"mode": "virtualKeys", "keysFile": "keys.yaml"}))
    for up in data["upstreams"].values():
        up["apiKey"] = "${PROVIDER_KEY}"
    if scopes:
        data["scopes"] = scopes
    return yaml.safe_dump(data, sort_keys=False)


async def test_passthrough_forwards_client_key_and_fingerprints_it(fake, start_proxy):
    fp = fingerprint(b"test-secret", "sk-client-1")
    scopes = [{"name": "one-key", "match": {"keys": [fp]}, "guards": DENY_ALL}]
    proxy = await start_proxy(policy(scopes=scopes))
    with pytest.raises(openai.PermissionDeniedError):          # the fingerprint picked the scope
        await oa(proxy.openai_url, key="sk-client-1").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert fake.requests == []
    await oa(proxy.openai_url, key="sk-client-2").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert fake.last_request.headers["authorization"] == "Bearer sk-client-2"
    assert fp.startswith("fp_") and "sk-client-1" not in fp


async def test_passthrough_without_key_is_401(fake, start_proxy):
    proxy = await start_proxy()
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.openai_url + "/chat/completions", json={"model": "m", "messages": MSG}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
    assert fake.requests == []


async def test_virtual_key_lifecycle(fake, start_proxy, tmp_path):
    keys_file = tmp_path / "keys.yaml"
    key = create_key(keys_file, "--user", "alice", "--group", "eng")
    proxy = await start_proxy(virtual_policy(), env={"PROVIDER_KEY": PROVIDER_KEY})
    out = await oa(proxy.openai_url, key=key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert out.choices[0].message.content == "You said: hello there"
    seen = fake.last_request.headers
    assert seen["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert key not in str(seen) and key not in str(fake.last_request.body)

    # Anthropic SDK: its x-api-key is replaced by the provider key too
    msg = await ant(proxy.url, key=key).messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSG)
    assert msg.content[0].text == "You said: hello there"
    seen = fake.last_request.headers
    assert seen.get("x-api-key") == PROVIDER_KEY
    assert key not in str(seen)

    for bad in ("aifw-000000000000-nope", "sk-some-provider-key", key + "x"):
        with pytest.raises(openai.AuthenticationError) as info:
            await oa(proxy.openai_url, key=bad).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert info.value.code == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError):
        await ant(proxy.url, key="aifw-nope").messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSG)

    key_id = key.split("-")[1]
    listed = aifw("keys", "list", "--keys-file", str(keys_file))
    assert key_id in listed.stdout and "sha256" not in listed.stdout
    revoked = aifw("keys", "revoke", "--keys-file", str(keys_file), key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert proxy.holder.changed()            # the keys file is watched with the policy
    assert proxy.holder.reload()
    with pytest.raises(openai.AuthenticationError):
        await oa(proxy.openai_url, key=key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert aifw("keys", "revoke", "--keys-file", str(keys_file), "nosuchid").returncode == 1


async def test_key_models_restriction(fake, start_proxy, tmp_path):
    key = create_key(tmp_path / "keys.yaml", "--user", "bob", "--models", "gpt-4o-mini*")
    proxy = await start_proxy(virtual_policy(), env={"PROVIDER_KEY": PROVIDER_KEY})
    client = oa(proxy.openai_url, key=key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.PermissionDeniedError) as info:
        await client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert info.value.code == "model_not_allowed"
    assert len(fake.requests) == 1


async def test_trusted_key_asserts_user_untrusted_is_ignored(fake, start_proxy, tmp_path):
    keys_file = tmp_path / "keys.yaml"
    trusted = create_key(keys_file, "--user", "svc", "--trusted")
    plain = create_key(keys_file, "--user", "svc2")
    scopes = [{"name": "mallory", "match": {"users": ["mallory"]}, "guards": DENY_ALL}]
    proxy = await start_proxy(virtual_policy(scopes), env={"PROVIDER_KEY": PROVIDER_KEY})
    as_mallory = {"x-aifw-user": "mallory"}

    with pytest.raises(openai.PermissionDeniedError):
        await oa(proxy.openai_url, key=trusted).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, extra_headers=as_mallory)
    with pytest.raises(openai.PermissionDeniedError):     # OpenAI's `user` field asserts too
        await oa(proxy.openai_url, key=trusted).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                                        user="mallory")
    assert fake.requests == []
    # the same assertions from an untrusted key change nothing
    await oa(proxy.openai_url, key=plain).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                                  extra_headers=as_mallory)
    await oa(proxy.openai_url, key=plain).chat.completions.create(model="gpt-4o-mini", messages=MSG, user="mallory")
    assert len(fake.requests) == 2
    assert "x-aifw-user" not in fake.last_request.headers
    # a trusted key asserting someone else passes
    await oa(proxy.openai_url, key=trusted).chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                                    extra_headers={"x-aifw-user": "carol"})
    assert len(fake.requests) == 3


async def test_host_header_cannot_redirect_provider_key(fake, start_proxy, tmp_path):
    key = create_key(tmp_path / "keys.yaml", "--user", "alice")
    proxy = await start_proxy(virtual_policy(), env={"PROVIDER_KEY": PROVIDER_KEY})
    import aiohttp
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.openai_url + "/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG},
                          headers={"authorization": f"Bearer {key}", "host": "evil.example",
                                   "x-forwarded-host": "evil.example"}) as r:
            assert r.status == 200
    assert len(fake.requests) == 1     # went to the policy's upstream, the only place it can go
