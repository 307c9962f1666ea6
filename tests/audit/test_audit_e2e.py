"""End to end: the real proxy, the official openai SDK, the audit log and /metrics."""
from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest

import tests.conftest as shared
from proxy.audit.runtime import AuditLog
from proxy.audit.signing import parse_key
from proxy.audit.verify import verify
from proxy.telemetry import Telemetry
from tests.conftest import minimal_policy

KEY = "hmac:e2e-key"


@pytest.fixture
def wired(monkeypatch):
    """Attach the audit log and telemetry the way proxy.runtime.attach_subsystems should, unless
    the core already does."""
    monkeypatch.setenv("AIFW_AUDIT_SIGNING_KEY", KEY)
    original = shared.attach_subsystems

    def attach(holder):
        original(holder)
        if holder.audit is None:
            holder.audit = AuditLog(holder.policy.sections["audit"], holder.services)
        if holder.telemetry is None:
            holder.telemetry = Telemetry(holder.policy.sections["telemetry"])
            holder.telemetry.watch_audit(holder.audit)

    monkeypatch.setattr(shared, "attach_subsystems", attach)


def audit_entries(directory):
    out = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        out += [orjson.loads(l) for l in path.read_bytes().splitlines()]
    return out


async def test_exchanges_are_audited_chained_and_counted(wired, start_proxy, tmp_path):
    audit_dir = tmp_path / "audit"
    proxy = await start_proxy(minimal_policy(audit={"path": str(audit_dir), "flushInterval": 0.05}))
    client = openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-test-e2e-secret-key",
                                max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    request_id = raw.headers["x-aifw-request-id"]
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}], stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    async with aiohttp.ClientSession() as http:
        async with http.get(proxy.url + "/metrics") as resp:
            metrics = await resp.text()
    assert 'aifw_requests_total{decision="allowed",endpoint="chat.completions",status="200"} 2' in metrics
    assert "aifw_audit_queue_depth" in metrics
    await proxy.stop()                       # SIGTERM path: drain, final checkpoint

    entries = audit_entries(audit_dir)
    records = [e for e in entries if e["t"] == "request"]
    assert [r["id"] for r in records][0] == request_id and len(records) == 2
    first, streamed = records
    assert first["model"] == "gpt-4o-mini" and first["status"] == 200
    assert first["decision"] == "allowed" and first["policy"]["name"] == "test"
    assert first["policy"]["digest"].startswith("sha256:")
    assert first["tokens"]["prompt"] and first["tokens"]["completion"]
    assert streamed["stream"] is True
    assert "content" not in first
    blob = b"".join(p.read_bytes() for p in audit_dir.glob("audit-*.jsonl"))
    assert b"sk-test-e2e-secret-key" not in blob and b"hello there" not in blob
    assert entries[-1]["t"] == "checkpoint" and entries[-1]["reason"] == "close"
    assert verify([str(audit_dir)], parse_key(KEY)).ok


async def test_full_level_scope_stores_text(wired, start_proxy, tmp_path):
    audit_dir = tmp_path / "audit"
    policy = minimal_policy(audit={"path": str(audit_dir), "flushInterval": 0.05},
                            scopes=[{"name": "everything", "match": {"models": ["gpt-4o"]},
                                     "audit": {"level": "full"}}])
    proxy = await start_proxy(policy)
    client = openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-test", max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "remember me"}])
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "forget me"}])
    await proxy.stop()
    full, meta = [e for e in audit_entries(audit_dir) if e["t"] == "request"]
    assert full["level"] == "full" and full["scope"] == "everything"
    assert full["content"]["request"][0]["text"] == "remember me"
    assert "remember me" in full["content"]["response"][0]["text"]
    assert meta["level"] == "metadata" and "content" not in meta


async def test_broken_sink_with_failure_mode_closed_answers_503(wired, start_proxy, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the audit directory should be")
    proxy = await start_proxy(minimal_policy(audit={"path": str(blocker / "audit")}))
    proxy.holder.audit.close_retry_seconds = 0
    client = openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert info.value.body["code"] == "guardrail_unavailable"
