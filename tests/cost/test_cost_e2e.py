"""Cost end to end with the official SDKs: audit records carry dollars (streams too), spend
budgets refuse the request that would exceed them and settle what was really spent."""
from __future__ import annotations

import re

import openai
import orjson
import pytest

from proxy.cli import main as cli_main
from tests.e2e.helpers import MSG, ant, oa, policy

PRICES = {"gpt-4o-mini": {"input": 1000, "output": 10000}}   # $0.001 / $0.01 per token


def records(directory):
    out = []
    for path in sorted(directory.rglob("audit-*.jsonl")):
        out += [r for r in map(orjson.loads, path.read_bytes().splitlines()) if r["t"] == "request"]
    return out


async def test_spend_budget_refuses_what_would_exceed_it_and_settles_actual_cost(start_proxy, fake, tmp_path):
    fake.state.usage = (10, 5)                                  # every answer costs $0.06
    proxy = await start_proxy(policy(
        cost={"prices": PRICES},
        guards={"access": {}, "ratelimit": {"limits": [{"name": "usd", "scope": "key", "spend": "1USD/day"}]}}))
    client = oa(proxy.openai_url)
    # Each reserves ~$0.51 (max_tokens 50 at $0.01); two fit in $1 only because the first
    # settled to its real $0.06.
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=50)
    forwarded = len(fake.requests)
    with pytest.raises(openai.RateLimitError) as info:          # ~$0.91 > $0.88 left
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=90)
    assert info.value.code == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert len(fake.requests) == forwarded                      # refused before the provider
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=80)
    await proxy.stop()
    costs = [r["cost"] for r in records(tmp_path / "audit")]
    assert costs == [pytest.approx(0.06), pytest.approx(0.06), 0.0, pytest.approx(0.06)]


async def test_every_audit_record_carries_cost_streams_included(start_proxy, fake, tmp_path, capsys):
    fake.state.usage = (100, 20)
    proxy = await start_proxy(policy(cost={"prices": PRICES}))
    client = oa(proxy.openai_url)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)                 # the usage aifw asked for is hidden
    anthropic_msg = await ant(proxy.url).messages.create(
        model="claude-3-5-haiku-20241022", max_tokens=50, messages=MSG, stream=False)
    assert anthropic_msg.content
    await client.chat.completions.create(model="unpriced-model", messages=MSG)
    await proxy.stop()
    recs = records(tmp_path / "audit")
    assert [r["cost"] for r in recs[:2]] == [pytest.approx(0.3), pytest.approx(0.3)]
    assert recs[1]["stream"] is True
    assert recs[2]["cost"] == pytest.approx((100 * 0.80 + 20 * 4.0) / 1e6)   # shipped table
    assert recs[3]["cost"] is None                                          # no price known

    (directory,) = {p.parent for p in (tmp_path / "audit").rglob("audit-*.jsonl")}
    capsys.readouterr()
    assert cli_main(["audit", "stats", str(directory), "--json"]) == 0
    spend = orjson.loads(capsys.readouterr().out)["spend"]
    assert spend["usd"] == pytest.approx(0.6 + 0.00016)
    assert spend["by_model"]["gpt-4o-mini"] == pytest.approx(0.6)
    assert spend["unpriced_records"] == 1 and set(spend["by_key"]) and spend["by_group"]
    assert cli_main(["audit", "stats", str(directory)]) == 0
    text = capsys.readouterr().out
    assert "spend: $0.600160 (1 answered record(s) without a price)" in text
    assert re.search(r"^gpt-4o-mini +0\.600000$", text, re.M)
    assert cli_main(["audit", "report", str(directory), "--html", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    for title in ("Spend by user", "Spend by key", "Spend by group", "Spend by model", "spend (USD)"):
        assert title in page
