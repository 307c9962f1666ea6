"""Every audit record names its caller (key fingerprint or virtual key, plus the end user where
trusted), and search, stats and the report show it, never the key itself."""
from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest
import yaml

from proxy.cli import main as cli_main
from proxy.identity import caller_label, fingerprint
from proxy.keys import create_key
from proxy.audit.query import Filter, compute_stats, record_caller
from tests.audit.test_audit_e2e import audit_entries
from tests.conftest import minimal_policy

pytestmark = pytest.mark.timeout(60)

MSG = [{"role": "user", "content": "hello there"}]
SECRET = b"test-secret"       # minimal_policy's identity.fingerprintSecret


def test_caller_label_names_the_key_and_the_user():
    assert caller_label("fp_abc", None, None) == "fp_abc"
    assert caller_label("fp_abc", None, "alice") == "alice via fp_abc"
    assert caller_label("9f3c", "team-a", "bob") == "bob via team-a (9f3c)"
    assert caller_label("fp_abc", None, None, verified=False) == "fp_abc (unverified)"
    assert caller_label(None, None, "alice") is None


def test_records_written_before_the_field_get_the_same_caller():
    old = {"key": "9f3c", "key_name": "team-a", "user": "bob"}
    assert record_caller(old) == "bob via team-a (9f3c)"
    assert record_caller({"caller": "x"}) == "x"
    assert record_caller({"key": None}) == "(unidentified)"
    stats = compute_stats([old, {"caller": "fp_1"}, {"caller": "fp_1"}])
    assert stats.callers == {"fp_1": 2, "bob via team-a (9f3c)": 1}
    assert Filter(caller="fp_1")({"caller": "fp_1"}) and not Filter(caller="fp_1")(old)


async def read_records(proxy, audit_dir) -> list[dict]:
    await proxy.stop()                       # drain the queue, close the chain
    return [e for e in audit_entries(audit_dir) if e["t"] == "request"]


def cli(capsys, *args: str) -> str:
    capsys.readouterr()
    assert cli_main(list(args)) == 0
    return capsys.readouterr().out


async def test_passthrough_callers_in_records_search_and_stats(start_proxy, tmp_path, capsys):
    audit_dir = tmp_path / "audit-callers"
    proxy = await start_proxy(minimal_policy(
        audit={"path": str(audit_dir), "flushInterval": 0.05},
        identity={"mode": "passthrough", "fingerprintSecret": SECRET.decode(),
                  "trustPassthroughUsers": True}))
    await openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-client-aaaa", max_retries=0
                             ).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await openai.AsyncOpenAI(base_url=proxy.openai_url, api_key="sk-client-bbbb", max_retries=0
                             ).chat.completions.create(model="gpt-4o-mini", messages=MSG, user="alice")
    async with aiohttp.ClientSession() as http:      # no key at all: refused, still attributed
        async with http.post(proxy.openai_url + "/chat/completions",
                             json={"model": "gpt-4o-mini", "messages": MSG}) as resp:
            assert resp.status == 401
    records = await read_records(proxy, audit_dir)

    fp_a, fp_b = fingerprint(SECRET, "sk-client-aaaa"), fingerprint(SECRET, "sk-client-bbbb")
    assert [(r["caller"], r["key"], r["user"]) for r in records] == [
        (fp_a, fp_a, None), (f"alice via {fp_b}", fp_b, "alice"),
        ("anonymous (unverified)", "anonymous", None)]

    out = cli(capsys, "audit", "search", str(audit_dir), "--key", fp_a)
    assert "caller" in out.splitlines()[0] and fp_a in out and "1 record(s)" in out
    out = cli(capsys, "audit", "search", str(audit_dir), "--caller", f"alice via {fp_b}")
    assert "1 record(s)" in out and fp_b in out
    stats = orjson.loads(cli(capsys, "audit", "stats", str(audit_dir), "--json"))
    assert stats["callers"] == {fp_a: 1, f"alice via {fp_b}": 1, "anonymous (unverified)": 1}
    text = cli(capsys, "audit", "stats", str(audit_dir))
    assert f"alice via {fp_b}" in text and fp_a in text
    html = tmp_path / "report.html"
    cli(capsys, "audit", "report", str(audit_dir), "--html", str(html))
    page = html.read_text()
    assert fp_a in page and f"alice via {fp_b}" in page

    written = b"".join(p.read_bytes() for p in audit_dir.glob("audit-*.jsonl"))
    for key in (b"sk-client-aaaa", b"sk-client-bbbb"):
        assert key not in written and key.decode() not in page


async def test_virtual_key_callers_and_refused_keys(start_proxy, tmp_path, capsys):
    keys_file = tmp_path / "keys.yaml"
    key_id, key = create_key(str(keys_file), user="svc", name="billing", trusted=True)
    audit_dir = tmp_path / "audit-virtual"
    data = yaml.safe_load(minimal_policy(audit={"path": str(audit_dir), "flushInterval": 0.05},
                                         identity={"mode": "virtualKeys", "keysFile": "keys.yaml",
                                                   "fingerprintSecret": SECRET.decode()}))
    for up in data["upstreams"].values():
        up["apiKey"] = "sk-provider"
    proxy = await start_proxy(yaml.safe_dump(data))
    client = openai.AsyncOpenAI(base_url=proxy.openai_url, api_key=key, max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                         extra_headers={"x-aifw-user": "carol"})
    wrong = "aifw-000000000000-not-a-key"
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=proxy.openai_url, api_key=wrong, max_retries=0
                                 ).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    records = await read_records(proxy, audit_dir)

    fp_wrong = fingerprint(SECRET, wrong)
    assert [r["caller"] for r in records] == [
        f"svc via billing ({key_id})", f"carol via billing ({key_id})", f"{fp_wrong} (unverified)"]
    out = cli(capsys, "audit", "search", str(audit_dir), "--key", "billing")
    assert "2 record(s)" in out and f"carol via billing ({key_id})" in out
    out = cli(capsys, "audit", "search", str(audit_dir), "--key", fp_wrong)
    assert "1 record(s)" in out and fp_wrong in out
    written = b"".join(p.read_bytes() for p in audit_dir.glob("audit-*.jsonl"))
    assert key.encode() not in written and wrong.encode() not in written
