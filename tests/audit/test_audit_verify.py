"""Tamper evidence: every kind of edit is detected and the breaking entry is named."""
from __future__ import annotations

import hashlib

import orjson
import pytest

from proxy.audit.chain import canonical
from proxy.cli import main as cli_main
from proxy.audit.signing import generate_ed25519, parse_key
from proxy.audit.verify import verify
from tests.audit.helpers import write_log

KEY = parse_key("hmac:test-key")


def lines_of(directory):
    [path] = sorted(directory.glob("audit-*.jsonl"))
    return path, path.read_bytes().splitlines(keepends=True)


def record_line(lines, request_id):
    for i, line in enumerate(lines):
        if f'"id":"{request_id}"'.encode() in line:
            return i
    raise AssertionError(request_id)


def messages(result):
    return "\n".join(str(p) for p in result.problems)


def test_intact_log_verifies_with_signatures(tmp_path):
    write_log(tmp_path, 10)
    res = verify([str(tmp_path)], KEY)
    assert res.ok, messages(res)
    assert res.records == 10 and res.checkpoints >= 3 and res.signatures_ok == res.checkpoints


def test_edited_record_is_named(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    i = record_line(lines, "req-0004")
    lines[i] = lines[i].replace(b'"user":"alice"', b'"user":"mallory"')
    path.write_bytes(b"".join(lines))
    res = verify([str(tmp_path)], KEY)
    assert not res.ok
    assert res.problems[0].request_id == "req-0004" and "edited" in res.problems[0].message
    assert f"{path}:{i + 1}" == res.problems[0].where


def rehash_from(lines, start):
    """An attacker without the key recomputes every hash after an edit."""
    prev = orjson.loads(lines[start - 1])["hash"]
    out = list(lines[:start])
    for line in lines[start:]:
        entry = orjson.loads(line)
        entry.pop("hash")
        entry["prev"] = prev
        prev = hashlib.sha256(canonical(entry)).hexdigest()
        entry["hash"] = prev
        out.append(orjson.dumps(entry) + b"\n")
    return out


def test_rewritten_chain_fails_at_the_next_signed_checkpoint(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    i = record_line(lines, "req-0002")
    entry = orjson.loads(lines[i])
    entry["user"] = "mallory"
    lines[i] = orjson.dumps(entry) + b"\n"
    path.write_bytes(b"".join(rehash_from(lines, i)))
    assert verify([str(tmp_path)]).ok                 # without the key the chain looks fine
    res = verify([str(tmp_path)], KEY)
    assert not res.ok and "does not verify" in res.problems[0].message


def test_deleted_record(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    i = record_line(lines, "req-0005")
    next_id = orjson.loads(lines[i + 1]).get("id") or "checkpoint"
    del lines[i]
    path.write_bytes(b"".join(lines))
    res = verify([str(tmp_path)], KEY)
    assert not res.ok
    assert "missing" in res.problems[0].message
    assert res.problems[0].where.endswith(f":{i + 1}")       # the entry now at that line
    assert res.problems[0].request_id == (None if next_id == "checkpoint" else next_id)


def test_inserted_record(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    i = record_line(lines, "req-0003")
    forged = orjson.loads(lines[i])
    forged["id"] = "req-forged"
    forged.pop("hash")
    forged["hash"] = hashlib.sha256(canonical(forged)).hexdigest()
    lines.insert(i + 1, orjson.dumps(forged) + b"\n")
    path.write_bytes(b"".join(lines))
    res = verify([str(tmp_path)], KEY)
    assert not res.ok
    assert res.problems[0].request_id == "req-forged"


def test_reordered_records(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    a, b = record_line(lines, "req-0005"), record_line(lines, "req-0006")
    lines[a], lines[b] = lines[b], lines[a]
    path.write_bytes(b"".join(lines))
    res = verify([str(tmp_path)], KEY)
    assert not res.ok
    assert res.problems[0].request_id == "req-0006"
    assert any("reordered" in p.message for p in res.problems)


def test_truncated_tail(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    path.write_bytes(b"".join(lines[:-3]))
    res = verify([str(tmp_path)], KEY)
    assert not res.ok and "without a closing checkpoint" in messages(res)
    assert verify([str(tmp_path)], KEY, live=True).ok     # a log still being written


def test_torn_last_line(tmp_path):
    write_log(tmp_path, 10)
    path, lines = lines_of(tmp_path)
    path.write_bytes(b"".join(lines)[:-20])
    res = verify([str(tmp_path)], KEY)
    assert not res.ok and "torn line" in messages(res)


def rotated(tmp_path, n=30):
    write_log(tmp_path, n, max_bytes=3000)
    files = sorted(tmp_path.glob("audit-*.jsonl"))
    assert len(files) >= 3
    return files


def test_rotated_files_verify_in_any_argument_order(tmp_path):
    files = rotated(tmp_path)
    assert verify([str(tmp_path)], KEY).ok
    res = verify([str(f) for f in reversed(files)], KEY)
    assert res.ok, messages(res)
    assert res.files == len(files) and res.records == 30


def test_missing_middle_file(tmp_path):
    files = rotated(tmp_path)
    files[1].unlink()
    res = verify([str(tmp_path)], KEY)
    assert not res.ok
    assert str(files[2]) in res.problems[0].where and "missing" in res.problems[0].message


def test_truncated_middle_file(tmp_path):
    files = rotated(tmp_path)
    lines = files[1].read_bytes().splitlines(keepends=True)
    files[1].write_bytes(b"".join(lines[:-2]))
    res = verify([str(tmp_path)], KEY)
    assert not res.ok
    assert any(str(files[1]) in p.where and "truncated" in p.message for p in res.problems)


def test_missing_first_file_needs_allow_partial(tmp_path):
    files = rotated(tmp_path)
    files[0].unlink()
    res = verify([str(tmp_path)], KEY)
    assert not res.ok and "not at its beginning" in res.problems[0].message
    assert verify([str(tmp_path)], KEY, allow_partial=True).ok


def test_ed25519_checkpoints_verify_with_the_public_key_only(tmp_path):
    private, public = generate_ed25519()
    write_log(tmp_path, 6, key=private)
    res = verify([str(tmp_path)], parse_key(public))
    assert res.ok and res.signatures_ok == res.checkpoints >= 2
    other_private, other_public = generate_ed25519()
    res = verify([str(tmp_path)], parse_key(other_public))
    assert not res.ok and res.signatures_ok == 0 and res.exit_code == 1
    assert "none of the keys given" in messages(res)


def test_unsigned_checkpoints_fail_when_a_key_is_expected(tmp_path):
    write_log(tmp_path, 5, key=None)
    assert verify([str(tmp_path)]).ok
    res = verify([str(tmp_path)], KEY)
    assert not res.ok and "not signed" in res.problems[0].message


@pytest.mark.parametrize("tamper, code", [(False, 0), (True, 1)])
def test_cli_verify_exit_code(tmp_path, capsys, tamper, code):
    write_log(tmp_path, 5)
    if tamper:
        path, lines = lines_of(tmp_path)
        path.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert cli_main(["audit", "verify", str(tmp_path), "--key", "hmac:test-key"]) == code
    out = capsys.readouterr().out
    assert ("OK:" in out) != tamper and ("FAIL" in out) == tamper
