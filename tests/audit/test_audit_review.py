"""search, stats and report over a written log."""
from __future__ import annotations

import time

import orjson
import pytest

from proxy.cli import main as cli_main
from proxy.audit import report_explore
from proxy.audit.query import parse_when
from proxy.audit.record import build_record
from proxy.audit.sinks import FileSink
from proxy.audit.writer import Writer
from proxy.audit.config import compile_section
from tests.audit.helpers import make_exchange

NOW = time.time()


@pytest.fixture
def log_dir(tmp_path):
    """40 records over 4 days: users alice/bob/<b>eve</b>, two models, blocks every 4th."""
    cfg = compile_section({"path": str(tmp_path)})
    writer = Writer(cfg, None, FileSink(cfg.path))
    writer.start()
    users = ["alice", "bob", "<b>eve</b>"]
    for i in range(40):
        ex = make_exchange(i, user=users[i % 3], model="gpt-4o" if i % 2 else "claude-3-haiku",
                           blocked_rule="inj.override" if i % 4 == 0 else None,
                           wall=NOW - 4 * 86400 + i * 8640)
        writer.enqueue(build_record(ex))
    writer.flush(closing=True)
    return tmp_path


def run(capsys, *argv):
    code = cli_main(["audit", *argv])
    return code, capsys.readouterr().out


def test_search_table_and_filters(log_dir, capsys):
    code, out = run(capsys, "search", str(log_dir), "--user", "alice", "--decision", "blocked")
    assert code == 0
    rows = [l for l in out.splitlines() if l.startswith("20")]
    assert rows and all("alice" in r and "blocked" in r and "inj.override" in r for r in rows)
    assert out.strip().endswith(f"{len(rows)} record(s)")
    expected = [i for i in range(40) if i % 3 == 0 and i % 4 == 0]
    assert len(rows) == len(expected)


def test_search_json_time_window_and_rule(log_dir, capsys):
    code, out = run(capsys, "search", str(log_dir), "--since", "2d", "--rule", "inj.override", "--json")
    recs = [orjson.loads(l) for l in out.splitlines()]
    since = parse_when("2d")
    assert recs and all(r["time"] >= since and r["decision"] == "blocked" for r in recs)
    code, out = run(capsys, "search", str(log_dir), "--model", "gpt-4o", "--key", "team-key", "--json")
    assert len(out.splitlines()) == 20


def test_stats(log_dir, capsys):
    code, out = run(capsys, "stats", str(log_dir), "--json")
    stats = orjson.loads(out)
    assert stats["total"] == 40
    assert stats["decisions"] == {"allowed": 30, "blocked": 10}
    assert stats["blocking_rules"] == {"inj.override": 10}
    assert stats["users"]["alice"] == 14 and stats["models"]["gpt-4o"] == 20
    assert stats["tokens"]["prompt"] == 40 * 12 and stats["tokens"]["completion"] == 40 * 30
    code, out = run(capsys, "stats", str(log_dir))
    assert "blocking rule" in out and "inj.override" in out and "tokens: prompt 480" in out


def test_report_is_self_contained_and_escapes_log_values(log_dir, tmp_path, capsys):
    out_file = tmp_path / "report.html"
    code, _ = run(capsys, "report", str(log_dir), "--html", str(out_file))
    page = out_file.read_text()
    assert code == 0
    assert "<b>eve</b>" not in page and "&lt;b&gt;eve&lt;/b&gt;" in page
    # one inline script (the filters), admitted by its hash; nothing else may run or load
    assert page.count("<script") == 1 and "<script>" in page and " src=" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    for call in ("fetch", "XMLHttpRequest", "WebSocket", "import(", "eval("):
        assert call not in report_explore.SCRIPT
    assert f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {report_explore.script_hash()}\"" in page
    assert page.count("<svg") >= 5
    for title in ("Traffic and blocks over time", "Top blocking rules", "Top callers by requests",
                  "Token use over time"):
        assert title in page


def test_parse_when():
    assert parse_when("2025-01-31") == "2025-01-31T00:00:00.000Z"
    assert parse_when("2025-01-31T12:30") == "2025-01-31T12:30:00.000Z"
    with pytest.raises(ValueError):
        parse_when("yesterday-ish")
