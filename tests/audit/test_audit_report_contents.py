"""What the HTML report tells a reviewer: the chain's verification and key, the policies in
force, a description beside every rule id, security blocks apart from limit refusals,
monitored, bypassed and uninspected exchanges, spend, and the exchange table its filters use."""
from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

from proxy.audit.config import compile_section
from proxy.audit.record import build_record
from proxy.audit.signing import parse_key
from proxy.audit.sinks import FileSink
from proxy.audit.writer import Writer
from proxy.cli import main as cli_main
from proxy.ruleinfo import describe
from proxy.verdict import Finding, Verdict
from tests.audit.helpers import make_exchange

KEY = "hmac:report-key"
STRICT = SimpleNamespace(name="strict", digest="sha256:" + "cd" * 32)
NOW = time.time()


def refused(ex):
    ex.decision, ex.status = "blocked", 429
    ex.verdict = Verdict("ratelimit", "Rate limit 'per_user' reached.", ("ratelimit.requests.per_user",),
                         status=429, code="rate_limit_exceeded")
    return ex


def monitored(ex):
    ex.decision = "monitored"
    ex.findings.append(Finding("injection", ("PI-1001",), 6.0, "would_block", "request"))
    return ex


def bypassed(ex):
    ex.decision = "bypassed"
    ex.uninspected.append("pii: guard failed open")
    return ex


def priced(ex):
    ex.cost = 0.0125
    return ex


@pytest.fixture
def rich_log(tmp_path):
    """12 exchanges of three callers under two policy versions: 3 security blocks, 2 refusals,
    2 monitored, 1 bypassed, the rest allowed (4 with a price); signed checkpoints."""
    directory = tmp_path / "audit"
    cfg = compile_section({"path": str(directory), "checkpointEvery": 4})
    writer = Writer(cfg, parse_key(KEY), FileSink(cfg.path))
    writer.start()
    shapes = [priced, refused, monitored, priced, bypassed, refused, monitored, priced, priced]
    for i in range(12):
        ex = make_exchange(i, user=("alice", "bob", "<b>eve</b>")[i % 3],
                           model="gpt-4o" if i % 2 else "claude-3-haiku",
                           blocked_rule="PI-1001" if i in (0, 4, 8) else None, wall=NOW - 3600 + i * 60)
        if i not in (0, 4, 8):
            shapes[i - 1 - (i > 4) - (i > 8)](ex)
        if i >= 6:
            ex.policy = STRICT
        writer.enqueue(build_record(ex))
    writer.flush(closing=True)
    return directory


def report(tmp_path, *args: str) -> str:
    out = tmp_path / "report.html"
    assert cli_main(["audit", "report", *args, "--html", str(out)]) == 0
    return out.read_text()


def test_the_report_names_the_verified_chain_and_its_key(rich_log, tmp_path, monkeypatch):
    monkeypatch.delenv("AIFW_AUDIT_SIGNING_KEY", raising=False)
    page = report(tmp_path, str(rich_log), "--verify-key", KEY)
    kid = parse_key(KEY).kid
    assert '<div class="chain ok" id="chain"><b>Audit chain verified</b>' in page
    assert f"verified under hmac-sha256 key {kid}" in page
    unchecked = report(tmp_path, str(rich_log))
    assert '<div class="chain warn"' in unchecked and "signatures not checked" in unchecked
    wrong = report(tmp_path, str(rich_log), "--verify-key", "hmac:another-key")
    assert '<div class="chain bad"' in wrong and "Audit chain TAMPERED" in wrong


def test_the_report_separates_security_blocks_refusals_monitored_and_bypassed(rich_log, tmp_path):
    page = report(tmp_path, str(rich_log))
    cards = {label: value for value, label in
             re.findall(r'<div class="card"><b>([^<]*)</b><span>([^<]*)</span>', page)}
    assert cards["security blocks"] == "3" and cards["rate-limit and quota refusals"] == "2"
    assert cards["monitored (would block)"] == "2" and cards["bypassed"] == "1"
    assert cards["not fully inspected"] == "1" and cards["spend (USD)"] == "0.05 (+8 unpriced)"
    for title in ("Security blocks (3)", "Rate-limit and quota refusals (2)",
                  "Monitored: would have been blocked (2)", "Bypassed and not fully inspected (1)",
                  "Policies in force", "Rules", "Spend by caller"):
        assert f"<h2>{title}</h2>" in page
    assert "pii: guard failed open" in page
    # policy versions with their digests and periods
    assert "<td>default</td><td>sha256:" + "ab" * 32 + "</td>" in page
    assert "<td>strict</td><td>sha256:" + "cd" * 32 + "</td>" in page


def test_every_rule_id_has_its_description_beside_it(rich_log, tmp_path):
    page = report(tmp_path, str(rich_log))
    for rule in ("PI-1001", "ratelimit.requests.per_user", "pii.email"):
        text = describe(rule)
        assert text != "(no description)"
        assert f"<td>{rule}</td><td>{text}</td>" in page.replace("&#x27;", "'")
    assert f"PI-1001: {describe('PI-1001')}" in page


def test_the_exchange_table_carries_what_the_filters_compare(rich_log, tmp_path):
    page = report(tmp_path, str(rich_log))
    assert page.count('<tr data-caller="') == 12
    assert 'data-caller="&lt;b&gt;eve&lt;/b&gt; via team-key (fp_3b1c9e)"' in page
    for name in ("caller", "rule", "model", "decision"):
        assert f'<select data-filter="{name}" id="filter-{name}">' in page
    assert '<option value="blocked">blocked (5)</option>' in page
