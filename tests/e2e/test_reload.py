"""Hot reload: file changes, ConfigMap symlink swaps, bad files, streams keeping their policy."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml

import proxy.reload
from tests.e2e.helpers import MSG, oa, policy, readiness

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch):
    monkeypatch.setattr(proxy.reload, "POLL_SECONDS", 0.05)


def with_guards(text: str, guards: dict) -> str:
    data = yaml.safe_load(text)
    data["guards"] = guards
    return yaml.safe_dump(data, sort_keys=False)


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def rewrite(path: str, text: str) -> None:
    # write-then-rename, as editors and config tools do
    tmp = path + ".tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, path)


async def test_changed_file_is_picked_up_by_the_watcher(fake, start_proxy):
    text = policy()
    proxy = await start_proxy(text)
    client = oa(proxy.openai_url)
    await client.chat.completions.create(model="gpt-4o", messages=MSG)
    old = proxy.holder.policy.digest
    rewrite(proxy.policy_path, with_guards(text, {"access": {"denyModels": ["gpt-4o"]}}))
    await until(lambda: proxy.holder.policy.digest != old)
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="gpt-4o", messages=MSG)
    status, details = await readiness(proxy.url)
    assert status == 200 and details["policy"]["digest"] == proxy.holder.policy.digest
    assert details["reloads"]["ok"] == 1 and details["lastReloadError"] is None


async def test_in_place_edit_is_picked_up(fake, start_proxy):
    text = policy()
    proxy = await start_proxy(text)
    old = proxy.holder.policy.digest
    Path(proxy.policy_path).write_text(text + "# edited in place\n")
    await until(lambda: proxy.holder.policy.digest != old)


async def test_kubernetes_configmap_symlink_swap(fake, start_proxy, tmp_path):
    text = policy()
    cfg = tmp_path / "cfg"
    (cfg / "..2026_01").mkdir(parents=True)
    os.symlink("..2026_01", cfg / "..data")
    os.symlink("..data/policy.yaml", cfg / "policy.yaml")
    proxy = await start_proxy(text, name="cfg/policy.yaml")
    assert (cfg / "..2026_01" / "policy.yaml").read_text() == text
    old = proxy.holder.policy.digest

    # what the kubelet does: a new timestamped dir, then an atomic rename of the ..data link
    (cfg / "..2026_02").mkdir()
    (cfg / "..2026_02" / "policy.yaml").write_text(with_guards(text, {"access": {"denyModels": ["*"]}}))
    os.symlink("..2026_02", cfg / "..data_tmp")
    os.replace(cfg / "..data_tmp", cfg / "..data")
    await until(lambda: proxy.holder.policy.digest != old)
    with pytest.raises(openai.PermissionDeniedError):
        await oa(proxy.openai_url).chat.completions.create(model="gpt-4o", messages=MSG)


async def test_bad_file_keeps_last_good_policy(fake, start_proxy):
    text = policy()
    proxy = await start_proxy(text)
    good = proxy.holder.policy.digest
    rewrite(proxy.policy_path, text + "bogus: 1\n")
    await until(lambda: proxy.holder.last_error is not None)
    assert proxy.holder.policy.digest == good
    await oa(proxy.openai_url).chat.completions.create(model="gpt-4o", messages=MSG)
    status, details = await readiness(proxy.url)
    assert details["policy"]["digest"] == good
    assert "$.bogus: unknown key 'bogus'" in details["lastReloadError"]
    assert proxy.policy_path in details["lastReloadError"]
    assert details["reloads"]["failed"] == 1
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/metrics") as r:
            metrics = await r.text()
    assert 'aifw_policy_reloads_total{result="failed"} 1' in metrics
    # a failed file is not retried until it changes; a fixed one loads
    await asyncio.sleep(0.2)
    assert proxy.holder.reloads_failed == 1
    rewrite(proxy.policy_path, with_guards(text, {"access": {"maxOutputTokens": 5}}))
    await until(lambda: proxy.holder.last_error is None)
    assert proxy.holder.policy.digest != good
    status, details = await readiness(proxy.url)
    assert details["lastReloadError"] is None


async def test_explicit_reload_and_digest(fake, start_proxy):
    text = policy()
    proxy = await start_proxy(text)
    old = proxy.holder.policy.digest
    Path(proxy.policy_path).write_text(text.replace("name: test", "name: renamed"))
    assert proxy.holder.reload()
    assert proxy.holder.policy.name == "renamed" and proxy.holder.policy.digest != old


async def test_stream_in_flight_keeps_its_policy(fake, start_proxy):
    text = policy()
    proxy = await start_proxy(text)
    judged = []
    original = proxy.holder.record

    def record(ex):
        judged.append((ex.policy.digest, ex.status, ex.error))
        original(ex)
    proxy.holder.record = record
    first = proxy.holder.policy.digest

    client = oa(proxy.openai_url)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True,
        extra_headers={"x-fake-mode": "slow:100", "x-fake-chunks": "6", "x-fake-reply": "abcdefghijkl"})
    text_out = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text_out.append(chunk.choices[0].delta.content)
            if len(text_out) == 1:
                Path(proxy.policy_path).write_text(with_guards(text, {"access": {"denyModels": ["*"]}}))
                assert proxy.holder.reload()
                with pytest.raises(openai.PermissionDeniedError):
                    await client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert "".join(text_out) == "abcdefghijkl"
    await until(lambda: len(judged) == 2)
    second = proxy.holder.policy.digest
    assert second != first
    assert sorted(judged) == sorted([(first, 200, None), (second, 403, None)])


async def test_missing_keys_file_keeps_last_good_keys(fake, start_proxy, caplog):
    # issue 12: a keys file that disappears (deleted, a bad mount) was accepted as "no keys",
    # and every client got 401. It is refused like a malformed one: the last good keys stay.
    from proxy.keys import create_key
    from tests.e2e.test_identity import PROVIDER_KEY, virtual_policy
    proxy = await start_proxy(virtual_policy(), env={"PROVIDER_KEY": PROVIDER_KEY})
    keys = Path(proxy.dir) / "keys.yaml"
    _, key = create_key(str(keys), user="alice")
    await until(lambda: proxy.holder.policy.keys.lookup(key) is not None)
    good = proxy.holder.policy
    saved = keys.read_text()
    keys.unlink()
    await until(lambda: proxy.holder.last_error is not None)
    assert proxy.holder.policy is good
    await oa(proxy.openai_url, key=key).chat.completions.create(model="gpt-4o", messages=MSG)
    status, details = await readiness(proxy.url)
    assert f"keys file {keys} does not exist" in details["lastReloadError"]
    assert "$.identity.keysFile" in details["lastReloadError"]
    assert any("policy reload failed" in r.getMessage() and "does not exist" in r.getMessage()
               for r in caplog.records)
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/metrics") as r:
            metrics = await r.text()
    assert "aifw_policy_reload_failing 1" in metrics
    assert 'aifw_policy_reloads_total{result="failed"} 1' in metrics
    # the file back: it loads, and the failure is cleared
    keys.write_text(saved)
    await until(lambda: proxy.holder.last_error is None)
    assert proxy.holder.policy is not good and proxy.holder.policy.keys.lookup(key) is not None


async def test_an_edited_term_list_is_picked_up_without_sighup(fake, start_proxy, tmp_path):
    """A term list is part of the policy: adding a name masks it from the next request on (the
    scan cache keeps no judgement made under the old list), and the audit records of the two
    requests carry two digests."""
    from tests.audit.test_audit_e2e import audit_entries
    audit_dir = tmp_path / "audit-terms"
    data = yaml.safe_load(policy(guards={"pii": {
        "termLists": [{"name": "CODENAME", "file": "codenames.txt"}],
        "entities": {"CODENAME": "replace"}}}))
    data["audit"] = {"path": str(audit_dir), "flushInterval": 0.05}
    proxy = await start_proxy(yaml.safe_dump(data, sort_keys=False),
                              files={"codenames.txt": "bluefin\n"})
    client = oa(proxy.openai_url)
    said = [{"role": "user", "content": "status of project marlin and bluefin?"}]
    await client.chat.completions.create(model="gpt-4o", messages=said)
    first = fake.last_request.json["messages"][0]["content"]
    assert "marlin" in first and "bluefin" not in first          # the list as started

    old = proxy.holder.policy.digest
    rewrite(str(tmp_path / "codenames.txt"), "bluefin\nmarlin\n")
    await until(lambda: proxy.holder.policy.digest != old)
    await client.chat.completions.create(model="gpt-4o", messages=said)
    second = fake.last_request.json["messages"][0]["content"]
    assert "marlin" not in second and "bluefin" not in second    # the new name is masked too
    status, details = await readiness(proxy.url)
    assert details["reloads"]["ok"] == 1
    assert str(tmp_path / "codenames.txt") in [f["path"] for f in details["policy"]["files"]]

    await proxy.stop()
    records = [e for e in audit_entries(audit_dir) if e["t"] == "request"]
    assert [r["policy"]["digest"] for r in records] == [old, proxy.holder.policy.digest]
