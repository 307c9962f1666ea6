"""The audit chain across real `aifw serve` processes: a failed start leaves nothing behind, a
SIGKILL is an unclean end (not tampering) that the next start records, and a live log is not
called tampered."""
from __future__ import annotations

import signal
import socket

import orjson
import pytest

from proxy.audit.signing import parse_key
from proxy.audit.verify import verify
from proxy.cli import main as cli_main
from tests.serve_proc import Served, policy_file, wait_for

KEY = "hmac:serve-test-key"
ENV = {"AIFW_AUDIT_SIGNING_KEY": KEY}


def entries(directory):
    out = []
    for path in sorted(directory.glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]
    return out


def records(directory):
    return [e for e in entries(directory) if e["t"] == "request"]


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_taken_port_is_one_line_and_opens_no_chain(fake, tmp_path, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        served = Served(policy_file(tmp_path, fake), "--workers", workers,
                        port=taken.getsockname()[1], env=ENV)
        code, out, err = await served.wait()
    assert code == 1
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "cannot listen on 127.0.0.1" in err and "in use" in err
    assert not list(tmp_path.glob("audit/audit-*.jsonl"))      # no open entry, no file at all


async def test_a_bad_signing_key_is_one_line_and_opens_no_chain(fake, tmp_path):
    served = Served(policy_file(tmp_path, fake), env={"AIFW_AUDIT_SIGNING_KEY": "ed25519:not-a-key"})
    code, out, err = await served.wait()
    assert code == 1 and "Traceback" not in err and "signing key" in err
    assert not (tmp_path / "audit").exists() or not list((tmp_path / "audit").glob("audit-*"))


async def test_a_second_server_on_the_same_audit_chain_is_refused_cleanly(fake, tmp_path):
    first = Served(policy_file(tmp_path, fake), env=ENV)
    await first.ready()
    second = Served(policy_file(tmp_path, fake), env=ENV)
    code, out, err = await second.wait()
    assert code == 1 and "Traceback" not in err and "another process is writing" in err
    assert await first.chat() == 200
    code, _, err = await first.stop()
    assert code == 0, err
    res = verify([str(tmp_path / "audit")], parse_key(KEY))
    assert res.ok and res.records == 1


async def test_sigkill_is_an_unclean_end_and_the_next_start_records_it(fake, tmp_path, capsys):
    audit = tmp_path / "audit"
    policy = policy_file(tmp_path, fake)
    served = Served(policy, env=ENV)
    await served.ready()
    for _ in range(3):
        assert await served.chat() == 200
    await wait_for(lambda: len(records(audit)) == 3)
    # a live log, verified without --live: being written, not tampered
    assert cli_main(["audit", "verify", str(audit), "--key", KEY]) == 0
    out = capsys.readouterr().out
    assert "being written by pid" in out and "TAMPERED" not in out
    await served.stop(signal.SIGKILL)

    assert cli_main(["audit", "verify", str(audit), "--key", KEY]) == 3
    out = capsys.readouterr().out
    assert "UNCLOSED" in out and "TAMPERED" not in out and "no writer is running" in out

    again = Served(policy, env=ENV)
    await again.ready()
    assert await again.chat() == 200
    code, _, err = await again.stop()
    assert code == 0, err
    opened = [e for e in entries(audit) if e["t"] == "open"]
    assert opened[-1]["reason"] == "resume" and opened[-1]["unclean"] is True
    assert cli_main(["audit", "verify", str(audit), "--key", KEY]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "stopped uncleanly" in out and "resumed" in out
    assert len(records(audit)) == 4


async def test_a_clean_restart_is_not_called_unclean(fake, tmp_path):
    audit = tmp_path / "audit"
    policy = policy_file(tmp_path, fake)
    for _ in range(2):
        served = Served(policy, env=ENV)
        await served.ready()
        assert await served.chat() == 200
        code, _, err = await served.stop()
        assert code == 0, err
    opened = [e for e in entries(audit) if e["t"] == "open"]
    assert [o["reason"] for o in opened] == ["start", "resume"] and opened[1]["unclean"] is False
    res = verify([str(audit)], parse_key(KEY))
    assert res.ok and not any("uncleanly" in w for w in res.warnings)
