"""Forgeries, not honest logs: what an attacker with write access to the files (and without the
signing key) can do, each run under HMAC and Ed25519 keys. Every one must fail `verify --key`
with words that say what failed; exit statuses as documented (1 tampered, 3 unclosed)."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil

import orjson
import pytest

from proxy.audit.chain import canonical
from proxy.audit.signing import generate_ed25519, parse_key, sign_checkpoint
from proxy.audit.verify import verify
from proxy.cli import main as cli_main
from tests.audit.helpers import write_log

ED_PRIVATE, ED_PUBLIC = generate_ed25519()
KEYS = {  # name: (key the writer holds, key the verifier is given)
    "hmac": ("hmac:the-real-secret", "hmac:the-real-secret"),
    "ed25519": (ED_PRIVATE, ED_PUBLIC),
}


@pytest.fixture(params=sorted(KEYS))
def keys(request):
    return KEYS[request.param]


def files_of(directory):
    return sorted(directory.glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def read(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write(path, entries):
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))


def rehash(entries, start=0, prev=None):
    """Recompute prev/hash from ``start`` on, as an attacker without the key can."""
    prev = entries[start - 1]["hash"] if prev is None else prev
    for entry in entries[start:]:
        entry.pop("hash", None)
        entry["prev"] = prev
        prev = entry["hash"] = hashlib.sha256(canonical(entry)).hexdigest()
    return entries


def resign(entry, key_spec):
    """Replace a checkpoint's signature with one made by ``key_spec`` over its new content."""
    entry.pop("hash", None)
    entry.pop("sig", None)
    sign_checkpoint(entry, parse_key(key_spec) if key_spec else None)


def outcome(directory, verify_key, **kw):
    res = verify([str(directory)], parse_key(verify_key), **kw)
    return res, "\n".join(str(p) for p in res.problems)


def edit_and_forge_close(directory, forge):
    """Edit a record after the last count checkpoint, rehash every later line, and let
    ``forge`` rewrite the close checkpoint's signature (then rehash it: every link holds)."""
    [path] = files_of(directory)
    entries = read(path)
    i = next(n for n, e in enumerate(entries) if e.get("id") == "req-0009")
    assert not any(e["t"] == "checkpoint" for e in entries[i:-1])
    entries[i]["user"] = "mallory"
    rehash(entries, i)
    forge(entries[-1])
    entries[-1].pop("hash", None)
    entries[-1]["hash"] = hashlib.sha256(canonical(entries[-1])).hexdigest()
    write(path, entries)
    assert verify([str(directory)]).ok          # without a key, the forgery holds together


# --- the close checkpoint re-signed ------------------------------------------------------------

def test_close_checkpoint_signed_by_another_key(tmp_path, keys):
    write_log(tmp_path, 10, key=keys[0])
    edit_and_forge_close(tmp_path, lambda e: resign(e, "hmac:the-attackers-own-key"))
    res, text = outcome(tmp_path, keys[1])
    assert res.status == "tampered" and res.exit_code == 1
    assert "none of the keys given" in text


def test_close_checkpoint_under_the_real_kid_with_another_key(tmp_path, keys):
    write_log(tmp_path, 10, key=keys[0])
    real_kid = parse_key(keys[1]).kid

    def forge(entry):
        resign(entry, ED_PRIVATE if keys[0].startswith("hmac") else "hmac:guess")
        other = parse_key(generate_ed25519()[0]) if keys[0].startswith("ed25519") else None
        entry["sig"]["kid"] = real_kid
        entry["sig"]["alg"] = parse_key(keys[1]).alg
        if other is not None:
            from proxy.audit.signing import signing_message
            entry["sig"]["value"] = other.sign(signing_message(entry))
    edit_and_forge_close(tmp_path, forge)
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and f"does not verify under key {real_kid}" in text


@pytest.mark.parametrize("junk", [
    "junk", 42, ["a", "b"], {"alg": "hmac-sha256"}, {"alg": None, "kid": 1, "value": 2},
    {"alg": "ed25519", "kid": "KID", "value": base64.b64encode(b"x" * 64).decode()},
    {"alg": "hmac-sha256", "kid": "KID", "value": "not base64 at all %%%"},
])
def test_close_checkpoint_with_a_junk_signature(tmp_path, keys, junk):
    write_log(tmp_path, 10, key=keys[0])
    kid = parse_key(keys[1]).kid

    def forge(entry):
        entry["sig"] = orjson.loads(orjson.dumps(junk).replace(b"KID", kid.encode()))
    edit_and_forge_close(tmp_path, forge)
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1
    assert any(w in text for w in ("malformed", "does not verify", "none of the keys given",
                                   "algorithm")), text


def test_close_checkpoint_unsigned(tmp_path, keys):
    write_log(tmp_path, 10, key=keys[0])
    edit_and_forge_close(tmp_path, lambda e: resign(e, None))
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and "not signed" in text


def test_the_wrong_key_fails_an_untouched_log(tmp_path, keys, capsys):
    write_log(tmp_path, 10, key=keys[0])
    assert verify([str(tmp_path)], parse_key(keys[1])).ok
    wrong = "hmac:wrong" if keys[0].startswith("hmac") else generate_ed25519()[1]
    assert cli_main(["audit", "verify", str(tmp_path), "--key", wrong]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "none of the keys given" in out
    assert cli_main(["audit", "verify", str(tmp_path), "--key", keys[1]]) == 0


# --- files removed, reordered, spliced, replayed -------------------------------------------------

def rotated(directory, key, n=30):
    write_log(directory, n, key=key, max_bytes=3000)
    files = files_of(directory)
    assert len(files) >= 4
    return files


def test_tail_truncated_after_the_last_checkpoint(tmp_path, keys, capsys):
    write_log(tmp_path, 10, key=keys[0])
    [path] = files_of(tmp_path)
    entries = read(path)
    last_count = max(n for n, e in enumerate(entries) if e["t"] == "checkpoint" and e["reason"] == "count")
    write(path, entries[:last_count + 1])
    res, text = outcome(tmp_path, keys[1])
    assert res.status == "unclosed" and res.exit_code == 3
    assert "without a closing checkpoint" in text and "removed" in text
    assert cli_main(["audit", "verify", str(tmp_path), "--key", keys[1]]) == 3
    out = capsys.readouterr().out
    assert "UNCLOSED" in out and "TAMPERED" not in out


def test_records_after_the_last_checkpoint_removed_and_close_replayed(tmp_path, keys):
    """An old checkpoint copied to the end to make a truncated log look closed."""
    write_log(tmp_path, 10, key=keys[0])
    [path] = files_of(tmp_path)
    entries = read(path)
    first_count = next(n for n, e in enumerate(entries) if e["t"] == "checkpoint")
    replayed = dict(entries[first_count], reason="close")     # its signature covers "count"
    write(path, entries[:first_count + 3] + [replayed])
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and ("replayed" in text or "edited" in text)


def test_old_checkpoint_signature_replayed_onto_a_rewritten_tail(tmp_path, keys):
    write_log(tmp_path, 10, key=keys[0])
    [path] = files_of(tmp_path)
    entries = read(path)
    checkpoints = [n for n, e in enumerate(entries) if e["t"] == "checkpoint"]
    i = checkpoints[0] + 1
    entries[i]["model"] = "gpt-forged"
    rehash(entries, i)
    for n in checkpoints[1:]:            # every later checkpoint gets the first one's signature
        entries[n]["sig"] = entries[checkpoints[0]]["sig"]
    rehash(entries, i)
    write(path, entries)
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and "does not verify" in text


def test_middle_file_of_a_rotated_set_dropped(tmp_path, keys):
    files = rotated(tmp_path, keys[0])
    files[2].unlink()
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and "missing before it: deleted or moved" in text


def test_files_reordered_by_renaming(tmp_path, keys):
    files = rotated(tmp_path, keys[0])
    a, b = files[1], files[2]
    tmp = a.with_name("swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and "renamed or put out of order" in text


def test_collected_files_concatenated_out_of_order(tmp_path, keys):
    files = rotated(tmp_path / "log", keys[0])
    collected = tmp_path / "collected.jsonl"
    order = [files[0], files[2], files[1], *files[3:]]
    collected.write_bytes(b"".join(f.read_bytes() for f in order))
    res = verify([str(collected)], parse_key(keys[1]))
    text = "\n".join(map(str, res.problems))
    assert res.exit_code == 1 and "reordered" in text


def test_two_logs_spliced_in_one_directory(tmp_path, keys):
    """The files of another (honest, same key) log put in with these."""
    write_log(tmp_path / "a", 6, key=keys[0])
    write_log(tmp_path / "b", 6, key=keys[0])
    for f in files_of(tmp_path / "b"):
        name = f.name.replace(f.name.split("-")[1], "20000101T000000Z")   # sorts apart, same seq
        shutil.copy(f, tmp_path / "a" / name)
    res, text = outcome(tmp_path / "a", keys[1])
    assert res.exit_code == 1 and "spliced" in text


def test_two_logs_spliced_half_and_half(tmp_path, keys):
    """The first files of one log and the last of another, both signed by the real key."""
    a = rotated(tmp_path / "a", keys[0])
    b = rotated(tmp_path / "b", keys[0])
    (tmp_path / "spliced").mkdir()
    for f in a[:2] + b[2:]:
        shutil.copy(f, tmp_path / "spliced" / f.name)
    res, text = outcome(tmp_path / "spliced", keys[1])
    assert res.exit_code == 1 and "does not link" in text


def test_spliced_and_rehashed_fails_at_the_signatures(tmp_path, keys):
    a = rotated(tmp_path / "a", keys[0])
    b = rotated(tmp_path / "b", keys[0])
    entries = read(a[0]) + read(a[1])
    tail = [e for f in b[2:] for e in read(f)]
    tail[0]["seq"] = entries[-1]["seq"] + 1
    for n, e in enumerate(tail):
        e["seq"] = tail[0]["seq"] + n
    rehash(tail, 0, prev=entries[-1]["hash"])
    (tmp_path / "s").mkdir()
    write(tmp_path / "s" / a[0].name, read(a[0]))
    write(tmp_path / "s" / a[1].name, read(a[1]))
    write(tmp_path / "s" / f"audit-20000101T000000Z-{tail[0]['seq']:010d}.jsonl", tail)
    res, text = outcome(tmp_path / "s", keys[1])
    assert res.exit_code == 1 and "does not verify" in text


# --- rotation of keys, live logs ------------------------------------------------------------------

def test_key_rotation_needs_every_key_named(tmp_path, capsys):
    old_private, old_public = generate_ed25519()
    write_log(tmp_path, 5, key=old_private)
    write_log(tmp_path, 5, key="hmac:the-new-key")           # restarted with a new key
    both = ["--key", old_public, "--key", "hmac:the-new-key"]
    assert cli_main(["audit", "verify", str(tmp_path), *both]) == 0
    out = capsys.readouterr().out
    assert f"kid {parse_key(old_public).kid}" in out and "OK" in out
    assert cli_main(["audit", "verify", str(tmp_path), "--key", old_public]) == 1
    assert "none of the keys given" in capsys.readouterr().out


def test_a_live_log_is_not_called_tampered(tmp_path, keys, capsys):
    writer = write_log(tmp_path, 5, key=keys[0], close=False)    # still holds the lock
    try:
        res, _ = outcome(tmp_path, keys[1])
        assert res.ok and "being written by pid" in " ".join(res.warnings)
        assert cli_main(["audit", "verify", str(tmp_path), "--key", keys[1]]) == 0
        assert "TAMPERED" not in capsys.readouterr().out
    finally:
        writer.flush(closing=True)
    assert verify([str(tmp_path)], parse_key(keys[1])).ok


def test_a_copy_of_an_unclosed_log_is_unclosed_not_tampered(tmp_path, keys):
    writer = write_log(tmp_path / "live", 5, key=keys[0], close=False)
    shutil.copytree(tmp_path / "live", tmp_path / "copy")
    writer.flush(closing=True)
    os.unlink(tmp_path / "copy" / ".lock")
    res, text = outcome(tmp_path / "copy", keys[1])
    assert res.status == "unclosed" and "no writer is running" in text
    assert verify([str(tmp_path / "copy")], parse_key(keys[1]), live=True).ok


# --- one chain per worker ----------------------------------------------------------------------

def two_worker_chains(directory, key):
    from proxy.audit.config import compile_section
    from proxy.audit.record import build_record
    from proxy.audit.sinks import FileSink
    from proxy.audit.writer import Writer
    from tests.audit.helpers import make_exchange
    conf = compile_section({"path": str(directory), "checkpointEvery": 3})
    for worker, chain in enumerate(("", "w1")):
        sink = FileSink(conf.path, chain)
        sink.workers = 2
        writer = Writer(conf, parse_key(key), sink)
        writer.start()
        for i in range(5):
            writer.enqueue(build_record(make_exchange(worker * 100 + i)))
        writer.flush(closing=True)


def test_each_worker_chain_verifies_on_its_own_and_together(tmp_path, keys):
    two_worker_chains(tmp_path, keys[0])
    res, _ = outcome(tmp_path, keys[1])
    assert res.ok and len(res.chains) == 2 and res.records == 10
    for pattern in ("audit-2*.jsonl", "audit-w1-*.jsonl"):
        one = verify([str(p) for p in tmp_path.glob(pattern)], parse_key(keys[1]))
        assert one.ok and one.records == 5


def test_a_worker_chain_deleted_whole(tmp_path, keys):
    two_worker_chains(tmp_path, keys[0])
    for f in tmp_path.glob("audit-w1-*.jsonl"):
        f.unlink()
    res, text = outcome(tmp_path, keys[1])
    assert res.exit_code == 1 and "chain w1 has no files there: deleted" in text


def test_interleaved_stdout_chains_verify_and_edits_fail(tmp_path, keys):
    """Two writers' lines shuffled together (as on a shared stdout), order within each kept."""
    import random
    two_worker_chains(tmp_path / "d", keys[0])
    a = files_of(tmp_path / "d")
    chains = [f.read_bytes().splitlines(keepends=True) for f in a]
    rng = random.Random(7)
    merged = []
    while any(chains):
        pick = rng.choice([c for c in chains if c])
        merged.append(pick.pop(0))
    log = tmp_path / "stdout.log"
    log.write_bytes(b"".join(merged))
    res = verify([str(log)], parse_key(keys[1]))
    assert res.ok and len(res.chains) == 2 and res.records == 10
    i = next(n for n, line in enumerate(merged) if b'"id":"req-0102"' in line)
    entry = orjson.loads(merged[i])
    entry["user"] = "mallory"
    log.write_bytes(b"".join(merged[:i] + [orjson.dumps(entry) + b"\n"] + merged[i + 1:]))
    res = verify([str(log)], parse_key(keys[1]))
    assert res.exit_code == 1 and "edited" in "\n".join(map(str, res.problems))
    log.write_bytes(b"".join(merged[:i] + merged[i + 1:]))
    res = verify([str(log)], parse_key(keys[1]))
    assert res.exit_code == 1 and "missing before it" in "\n".join(map(str, res.problems))


def test_a_collected_log_split_anywhere_into_files_verifies(tmp_path, keys):
    write_log(tmp_path / "d", 10, key=keys[0])
    [path] = files_of(tmp_path / "d")
    lines = path.read_bytes().splitlines(keepends=True)
    for n, part in enumerate((lines[:5], lines[5:9], lines[9:])):
        (tmp_path / f"pod-{n}.log").write_bytes(b"".join(part))
    res = verify([str(tmp_path / f"pod-{n}.log") for n in range(3)], parse_key(keys[1]))
    assert res.ok, [str(p) for p in res.problems]
    (tmp_path / "pod-1.log").unlink()
    res = verify([str(tmp_path / f"pod-{n}.log") for n in (0, 2)], parse_key(keys[1]))
    assert res.exit_code == 1 and "missing before it" in "\n".join(map(str, res.problems))
