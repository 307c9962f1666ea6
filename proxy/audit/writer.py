"""The synchronous core of the audit writer: queue, chain, checkpoints, rotation, failure.

``AuditLog`` (runtime.py) runs ``flush`` in a worker thread every flush interval, so file I/O
never runs on the event loop. Records enter through ``enqueue`` from the loop thread (a deque:
append and popleft are thread-safe). ``AuditLog.submit`` queues records already serialised
(chain.prepare_record: one untracked ``bytes`` per record), so this thread only splices in
``seq``/``prev`` and hashes; a queued dict is serialised here as before.

Failure handling: a sealed line is kept in ``_buf`` until ``os.write`` has taken all of it, so a
write that fails (disk full, permission lost) is retried from the exact byte where it stopped and
the chain on disk stays intact. While the sink is broken nothing new is taken from the queue.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque

from .. import __version__
from .chain import GENESIS, Chain
from .config import AuditConfig
from .reader import last_entry
from .record import RECORD_VERSION, iso_time
from .signing import Signer, sign_checkpoint
from .sinks import ChainBusy, FileSink, StdoutSink, audit_files


class Writer:
    def __init__(self, cfg: AuditConfig, signer: Signer | None, sink: FileSink | StdoutSink,
                 clock=time.time) -> None:
        self.cfg = cfg
        self.signer = signer
        self.sink = sink
        self.clock = clock
        self.chain = Chain()
        self.queue: deque[dict] = deque()
        self.broken: str | None = None
        self.lost_total = 0           # records dropped (failureMode open), ever
        self._lost_pending = 0        # dropped records not yet declared in the chain
        self._lost_lock = threading.Lock()
        self._buf = bytearray()
        self._need_open = True
        self._open_reason = "start"
        self._unclean = False
        self._since_checkpoint = 0
        self._last_checkpoint = clock()
        self._flush_lock = threading.Lock()
        self.closed = False
        self._started = False

    # --- loop thread -------------------------------------------------------------------------
    def enqueue(self, record: dict | bytes) -> bool:
        """Queue a record (a dict, or already serialised by chain.prepare_record); False when it
        was dropped (queue full with failureMode open)."""
        if len(self.queue) >= self.cfg.queue_size and self.cfg.failure_mode == "open":
            with self._lost_lock:
                self._lost_pending += 1
                self.lost_total += 1
            return False
        # failureMode closed: in-flight exchanges are still recorded (memory is bounded by
        # concurrency because refusal() turns new requests away while the queue is full)
        self.queue.append(record)
        return True

    def refusal(self) -> str | None:
        if self.cfg.failure_mode != "closed":
            return None
        if self.broken:
            # clients see this text in the 503: the details (paths) go to logs and metrics only
            return "audit log unavailable: the audit sink cannot be written"
        if len(self.queue) >= self.cfg.queue_size:
            return "audit log queue is full"
        return None

    # --- writer thread -----------------------------------------------------------------------
    def start(self) -> bool:
        """Take the chain's lock and write the ``open`` entry. Raises ChainBusy when another live
        process writes this chain (a start-up error); any other failure leaves the writer
        ``broken`` (failureMode decides what clients see) and is retried at the next flush."""
        if isinstance(self.sink, FileSink):
            try:
                self.sink.lock()
            except ChainBusy:
                raise
            except OSError:
                pass            # the flush below records why and retries later
        return self.flush()

    def _resume(self) -> None:
        """Lock the chain and continue it from the newest of its files in the directory."""
        if isinstance(self.sink, FileSink):
            self.sink.lock()
            files = audit_files(self.sink.directory, self.sink.chain)
            for path in reversed(files):
                entry, clean = last_entry(path)
                if entry is None:
                    continue        # an empty file a crash left behind: verify calls it debris
                self.chain = Chain(int(entry["seq"]) + 1, entry["hash"])
                self._open_reason = "resume"
                # anything but a close checkpoint at the end means the last writer never shut
                # down: the open entry says so, and verify tells this from tampering
                self._unclean = not (clean and entry.get("t") == "checkpoint"
                                     and entry.get("reason") == "close")
                ended_rotating = entry.get("t") == "checkpoint" and entry.get("reason") == "rotate"
                if (path == files[-1] and clean and not ended_rotating
                        and os.path.getsize(path) < self.cfg.max_bytes):
                    self.sink.open_existing(path)
                    self._need_open = False
                    self._append(self._open_entry())
                    self._open_reason = "rotate"
                break
        self._started = True

    def _open_entry(self) -> dict:
        entry = {"v": RECORD_VERSION, "t": "open", "time": iso_time(self.clock()),
                 "reason": self._open_reason, "host": socket.gethostname(), "pid": os.getpid(),
                 "aifw": __version__, "genesis": self.chain.prev == GENESIS,
                 "chain": self.sink.chain, "workers": self.sink.workers}
        if self._open_reason == "resume":
            entry["unclean"] = self._unclean
        return entry

    def _append(self, entry: dict, before_hash=None) -> None:
        self._buf += self.chain.seal(entry, before_hash)

    def _checkpoint(self, reason: str) -> None:
        entry = {"v": RECORD_VERSION, "t": "checkpoint", "time": iso_time(self.clock()),
                 "reason": reason, "records": self._since_checkpoint}
        self._append(entry, lambda e: sign_checkpoint(e, self.signer))
        self._since_checkpoint = 0
        self._last_checkpoint = self.clock()

    def _commit(self) -> None:
        if not self._buf:
            return
        # a view of an immutable copy: the bytearray stays resizable whatever the sink keeps
        view = memoryview(bytes(self._buf))
        done = 0
        try:
            while done < len(view):
                n = self.sink.write(view[done:])
                done += n
                self.sink.size += n
        finally:
            del self._buf[:done]

    def _open(self) -> None:
        if isinstance(self.sink, FileSink):
            self.sink.open_new(self.chain.seq, self.clock())
        self._need_open = False
        self._append(self._open_entry())
        self._open_reason = "rotate"

    def _rotation_due(self, now: float) -> bool:
        if not self.sink.rotates or self._need_open:
            return False
        return (self.sink.size >= self.cfg.max_bytes
                or now - self.sink.opened_at >= self.cfg.rotate_interval)

    def flush(self, closing: bool = False) -> bool:
        """Write what is queued; True when everything reached the sink."""
        with self._flush_lock:
            try:
                self._flush(closing)
            except OSError as exc:
                self.broken = exc.strerror or str(exc)
                if getattr(exc, "filename", None):
                    self.broken += f": {exc.filename}"
                return False
            self.broken = None
            return True

    def _flush(self, closing: bool) -> None:
        if self.closed:
            return
        if not self._started:
            self._resume()
        self._commit()                         # what a failed attempt left behind
        if self._need_open:
            self._open()
            self._commit()
        now = self.clock()
        if self._rotation_due(now):
            self._checkpoint("rotate")
            self._commit()
            self.sink.sync()
            self.sink.close()
            self._need_open = True
            self._open()
        with self._lost_lock:
            lost, self._lost_pending = self._lost_pending, 0
        if lost:
            self._append({"v": RECORD_VERSION, "t": "lost", "time": iso_time(now), "count": lost})
        every = self.cfg.checkpoint_every
        queue = self.queue
        chain = self.chain
        while queue:
            item = queue.popleft()
            if type(item) is bytes:         # the common case: serialised on the loop already
                self._buf += chain.seal_prepared(item)
                self._since_checkpoint += 1
                if self._since_checkpoint >= every:
                    self._checkpoint("count")
                continue
            try:
                self._append(item)
            except TypeError:           # unserialisable record: count it, keep the writer alive
                with self._lost_lock:
                    self._lost_pending += 1
                    self.lost_total += 1
                continue
            self._since_checkpoint += 1
            if self._since_checkpoint >= every:
                self._checkpoint("count")
        if self._since_checkpoint and now - self._last_checkpoint >= self.cfg.checkpoint_interval:
            self._checkpoint("interval")
        if closing:
            self._checkpoint("close")
        self._commit()
        if self.cfg.fsync:
            self.sink.sync()
        if closing:
            self.sink.close()
            if isinstance(self.sink, FileSink):
                self.sink.unlock()
            self.closed = True

    def abandon(self) -> int:
        """Give up on a sink that never recovered: release it, return the records lost."""
        # sealed lines still in the buffer are lost too (keys are sorted: "t" is spelled once)
        lost = len(self.queue) + self._lost_pending + bytes(self._buf).count(b'"t":"request"')
        self.queue.clear()
        self._buf.clear()
        self.sink.close()
        if isinstance(self.sink, FileSink):
            self.sink.unlock()
        self.closed = True
        return lost
