"""The writer: durability, rotation, failure modes, restart and reconfigure keep the chain."""
from __future__ import annotations

import asyncio
import errno
import os
import threading
import time

import orjson
import pytest

from proxy.audit import runtime
from proxy.audit.config import compile_section
from proxy.audit.runtime import AuditLog
from proxy.audit.sinks import ChainBusy
from proxy.audit.signing import parse_key
from proxy.audit.sinks import FileSink
from proxy.audit.writer import Writer
from proxy.audit.verify import verify
from tests.audit.helpers import make_exchange

KEY_SPEC = "hmac:writer-test"
KEY = parse_key(KEY_SPEC)


@pytest.fixture(autouse=True)
def signing_key(monkeypatch):
    monkeypatch.setenv("AIFW_AUDIT_SIGNING_KEY", KEY_SPEC)


def entries(directory):
    out = []
    for path in sorted(directory.glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return out


def request_ids(directory):
    return [e["id"] for e in entries(directory) if e["t"] == "request"]


def cfg(tmp_path, **extra):
    return compile_section({"path": str(tmp_path), "flushInterval": 0.02, **extra})


async def reconfigured(log, config):
    """Reconfigure ``log`` and wait until its writer task has taken the new section (as a policy
    reload does: only that task applies it, so nothing here flushes beside it)."""
    log.reconfigure(config)
    for _ in range(1000):
        if log._pending_config is None and log._writer is not None and log._writer.cfg is config:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the audit writer task never applied the new section")


async def test_every_submitted_record_is_written_once_and_closed_with_a_checkpoint(tmp_path):
    log = AuditLog(cfg(tmp_path, flushInterval=30))   # only close() flushes: the drain matters
    await log.start()
    for i in range(50):
        log.submit(make_exchange(i))
    assert log.queue_depth() == 50
    await log.close()
    assert request_ids(tmp_path) == [f"req-{i:04d}" for i in range(50)]
    last = entries(tmp_path)[-1]
    assert last["t"] == "checkpoint" and last["reason"] == "close" and last["sig"]["alg"] == "hmac-sha256"
    assert verify([str(tmp_path)], KEY).ok


async def test_restart_resumes_the_same_chain(tmp_path):
    for round_ in range(3):
        log = AuditLog(cfg(tmp_path))
        await log.start()
        log.submit(make_exchange(round_))
        await log.close()
    opens = [e for e in entries(tmp_path) if e["t"] == "open"]
    assert [o["reason"] for o in opens] == ["start", "resume", "resume"]
    assert len(list(tmp_path.glob("audit-*.jsonl"))) == 1
    res = verify([str(tmp_path)], KEY)
    assert res.ok and res.records == 3


async def test_restart_after_a_crash_continues_after_the_last_good_line(tmp_path):
    log = AuditLog(cfg(tmp_path))
    await log.start()
    log.submit(make_exchange(1))
    await log.close()
    [path] = tmp_path.glob("audit-*.jsonl")
    with open(path, "ab") as fh:
        fh.write(b'{"v":1,"t":"request","id":"torn')          # a write cut by a crash
    log = AuditLog(cfg(tmp_path))
    await log.start()
    log.submit(make_exchange(2))
    await log.close()
    assert len(list(tmp_path.glob("audit-*.jsonl"))) == 2     # never appends after a torn line
    res = verify([str(tmp_path)], KEY)
    assert res.ok and res.records == 2                        # a crash is not tampering ...
    assert "stopped uncleanly" in " ".join(res.warnings) and "cut" in " ".join(res.warnings)
    newest = max(tmp_path.glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    opened = orjson.loads(newest.read_bytes().splitlines()[0])
    assert opened["reason"] == "resume" and opened["unclean"] is True   # ... and is recorded


async def test_size_rotation_ends_each_file_with_a_checkpoint(tmp_path):
    log = AuditLog(cfg(tmp_path, rotate={"maxBytes": 2500}))
    await log.start()
    for i in range(12):
        log.submit(make_exchange(i))
        await log._flush_once()
    await log.close()
    files = sorted(tmp_path.glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert len(files) >= 3
    for f in files[:-1]:
        last = orjson.loads(f.read_bytes().splitlines()[-1])
        assert last["t"] == "checkpoint" and last["reason"] == "rotate"
    for f in files[1:]:
        first = orjson.loads(f.read_bytes().splitlines()[0])
        assert first["t"] == "open" and first["reason"] == "rotate"
    assert verify([str(tmp_path)], KEY).ok


async def test_time_rotation(tmp_path):
    now = [1_700_000_000.0]
    log = AuditLog(cfg(tmp_path, rotate={"interval": "1h"}), clock=lambda: now[0])
    await log.start()
    log.submit(make_exchange(1))
    await log._flush_once()
    now[0] += 3601
    log.submit(make_exchange(2))
    await log._flush_once()
    await log.close()
    assert len(list(tmp_path.glob("audit-*.jsonl"))) == 2
    assert verify([str(tmp_path)], KEY).ok


class FlakyWrites:
    """Patch FileSink.write: fail with ``err`` while ``broken``; optionally write half first."""

    def __init__(self, monkeypatch, err=errno.ENOSPC, partial=False):
        self.broken = False
        self.err = err
        self.partial = partial
        real = FileSink.write
        flaky = self

        def write(sink, data):
            if flaky.broken:
                if flaky.partial and len(data) > 1:
                    flaky.partial = False
                    return real(sink, data[: len(data) // 2])
                raise OSError(flaky.err, os.strerror(flaky.err), sink.path)
            return real(sink, data)

        monkeypatch.setattr(FileSink, "write", write)


async def test_disk_full_with_failure_mode_closed_refuses_then_recovers(tmp_path, monkeypatch):
    flaky = FlakyWrites(monkeypatch, partial=True)
    log = AuditLog(cfg(tmp_path))
    await log.start()
    assert log.refusal() is None
    flaky.broken = True
    for i in range(5):
        log.submit(make_exchange(i))
    await log._flush_once()
    await log._flush_once()
    assert log.refusal() == "audit log unavailable: the audit sink cannot be written"
    assert "No space left on device" in log.broken
    flaky.broken = False
    await log._flush_once()
    assert log.refusal() is None
    log.submit(make_exchange(5))
    await log.close()
    assert request_ids(tmp_path) == [f"req-{i:04d}" for i in range(6)]
    res = verify([str(tmp_path)], KEY)
    assert res.ok, [str(p) for p in res.problems]        # the half-written line was completed


async def test_closed_mode_refuses_when_the_queue_is_full(tmp_path):
    log = AuditLog(cfg(tmp_path, queueSize=3, flushInterval=30))
    await log.start()
    for i in range(3):
        log.submit(make_exchange(i))
    assert log.refusal() == "audit log queue is full"
    log.submit(make_exchange(3))                  # an exchange already in flight is still kept
    await log.close()
    assert len(request_ids(tmp_path)) == 4


async def test_failure_mode_open_counts_lost_records_and_says_so_in_the_chain(tmp_path, monkeypatch):
    flaky = FlakyWrites(monkeypatch, err=errno.EACCES)
    log = AuditLog(cfg(tmp_path, failureMode="open", queueSize=2))
    await log.start()
    flaky.broken = True
    for i in range(6):
        log.submit(make_exchange(i))
        await log._flush_once()
    assert log.refusal() is None and log.broken
    # one record sealed before the failure is kept for retry, two wait in the queue
    assert log.records_lost == 3
    flaky.broken = False
    await log.close()
    lost = [e for e in entries(tmp_path) if e["t"] == "lost"]
    assert lost and lost[0]["count"] == 3
    assert request_ids(tmp_path) == ["req-0000", "req-0001", "req-0002"]
    assert verify([str(tmp_path)], KEY).ok


async def test_reconfigure_same_file_keeps_the_chain(tmp_path):
    log = AuditLog(cfg(tmp_path))
    await log.start()
    log.submit(make_exchange(1))
    await reconfigured(log, cfg(tmp_path, level="full", checkpointEvery=1))
    log.submit(make_exchange(2))
    await log.close()
    ents = entries(tmp_path)
    assert [e["t"] for e in ents].count("open") == 1
    assert [e["level"] for e in ents if e["t"] == "request"] == ["metadata", "full"]
    assert verify([str(tmp_path)], KEY).ok


async def test_reconfigure_to_another_directory_closes_the_old_chain(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    log = AuditLog(cfg(a))
    await log.start()
    log.submit(make_exchange(1))
    await reconfigured(log, cfg(b))
    log.submit(make_exchange(2))
    await log.close()
    assert request_ids(a) == ["req-0001"] and request_ids(b) == ["req-0002"]
    assert verify([str(a)], KEY).ok and verify([str(b)], KEY).ok


async def test_close_during_a_flush_never_writes_the_chain_from_two_threads(tmp_path, monkeypatch):
    """Shutdown while the writer task's periodic flush runs in its thread: close() must wait for
    that flush instead of cancelling the task and flushing beside the thread still writing."""
    real_flush = Writer.flush
    lock, started = threading.Lock(), threading.Event()
    inside = {"now": 0, "most": 0}

    def slow_flush(self, closing=False):
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        started.set()
        try:
            time.sleep(0.2)
            return real_flush(self, closing)
        finally:
            with lock:
                inside["now"] -= 1

    log = AuditLog(cfg(tmp_path))
    await log.start()
    monkeypatch.setattr(Writer, "flush", slow_flush)
    log.submit(make_exchange(1))
    assert await asyncio.to_thread(started.wait, 5)      # the periodic flush is under way
    log.submit(make_exchange(2))
    await log.close()
    assert inside["most"] == 1
    assert request_ids(tmp_path) == ["req-0001", "req-0002"]
    assert verify([str(tmp_path)], KEY).ok


async def test_close_gives_up_on_a_flush_that_hangs(tmp_path, monkeypatch):
    """A write stuck in the kernel: close() returns after its grace instead of hanging the
    shutdown, and still never flushes beside the stuck thread."""
    real_flush = Writer.flush
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    calls = []

    def stuck_flush(self, closing=False):
        calls.append(closing)
        started.set()
        try:
            release.wait(5)
            return real_flush(self, closing)
        finally:
            finished.set()

    monkeypatch.setattr(runtime, "STEP_GRACE_SECONDS", 0.05)
    log = AuditLog(cfg(tmp_path))
    log.close_retry_seconds = 0
    await log.start()
    monkeypatch.setattr(Writer, "flush", stuck_flush)
    log.submit(make_exchange(1))
    assert await asyncio.to_thread(started.wait, 5)
    await log.close()
    assert not finished.is_set() and calls == [False] and log._writer is None
    release.set()
    assert await asyncio.to_thread(finished.wait, 5)
    assert calls == [False]                 # no closing flush was started beside it


async def test_a_second_writer_on_the_same_directory_is_refused(tmp_path):
    first = AuditLog(cfg(tmp_path))
    await first.start()
    second = AuditLog(cfg(tmp_path))
    try:
        with pytest.raises(ChainBusy, match="another process"):   # a start-up error
            await second.start()
    finally:
        await first.close()
    assert verify([str(tmp_path)], KEY).ok                   # the refused writer wrote nothing


async def test_stdout_sink(tmp_path, capfd):
    log = AuditLog(compile_section({"sink": "stdout", "flushInterval": 0.02}))
    await log.start()
    log.submit(make_exchange(1))
    await log.close()
    out = capfd.readouterr().out
    collected = tmp_path / "collected.jsonl"
    collected.write_text("some other log line\n" + out)
    assert verify([str(collected)], KEY, mixed=True).ok
    assert b'"id":"req-0001"' in out.encode()


async def test_disabled_writes_nothing(tmp_path):
    log = AuditLog(cfg(tmp_path, enabled=False))
    await log.start()
    log.submit(make_exchange(1))
    assert log.refusal() is None
    await log.close()
    assert not list(tmp_path.glob("audit-*"))


async def test_odd_values_in_findings_still_verify(tmp_path):
    import numpy as np
    from proxy.verdict import Finding
    log = AuditLog(cfg(tmp_path))
    await log.start()
    ex = make_exchange(1)
    ex.findings.append(Finding("detector", ("d.1",), np.float64(0.75), "observed", "request",
                               {1: 2, "set": 3}))
    ex.model = "gpt-4o\u00e9\u2603"
    log.submit(ex)
    await log.close()
    [rec] = [e for e in entries(tmp_path) if e["t"] == "request"]
    assert rec["findings"][-1]["counts"] == {"1": 2, "set": 3}
    assert verify([str(tmp_path)], KEY).ok


async def test_an_unserialisable_record_is_counted_as_lost_and_the_chain_says_so(tmp_path):
    log = AuditLog(cfg(tmp_path))
    await log.start()
    bad = make_exchange(1)
    bad.guard_seconds = {1: 0.5}          # a non-string key: orjson cannot serialise it
    log.submit(bad)
    log.submit(make_exchange(2))
    await log._flush_once()
    assert log.records_lost == 1
    await log.close()
    es = entries(tmp_path)
    assert [e["id"] for e in es if e["t"] == "request"] == ["req-0002"]
    assert [e["count"] for e in es if e["t"] == "lost"] == [1]
    assert verify([str(tmp_path)], KEY).ok


def test_stdout_sink_writes_whole_lines_a_pipe_keeps_whole():
    """Workers share stdout: each write is whole lines of at most PIPE_BUF bytes (atomic on a
    pipe) unless one line alone is longer."""
    from proxy.audit.sinks import PIPE_BUF, StdoutSink
    r, w = os.pipe()
    try:
        sink = StdoutSink(fd=w)
        data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * 90) for i in range(100))
        n = sink.write(memoryview(data))
        assert 0 < n <= PIPE_BUF and data[n - 1:n] == b"\n"
        long_line = b"y" * (PIPE_BUF + 100) + b"\n"
        assert sink.write(memoryview(long_line + data)) == len(long_line)
    finally:
        os.close(r)
        os.close(w)
