"""AuditLog: the per-process audit writer the core drives.

Core contract:
- ``AuditLog(config, services)`` once per process, ``await start()`` before serving;
- ``prepare(ex)`` at request start (turns on text capture for the levels that store text);
- ``refusal()`` before admitting a request: a reason means answer 503 guardrail_unavailable;
- ``submit(ex)`` exactly once per exchange after every on_complete hook (never blocks);
- ``reconfigure(config)`` on policy reload; ``await close()`` on shutdown after streams drained.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import structlog

from .config import AuditConfig
from ..durations import NOT_COMPUTED
from .record import effective_level, prepared_record
from .signing import Signer, parse_key
from .sinks import ChainBusy, FileSink, StdoutSink
from .writer import Writer

log = structlog.get_logger("aifw.audit")

CLOSE_RETRY_SECONDS = 10.0    # how long close() keeps retrying a broken sink before giving up


def load_signer(cfg: AuditConfig) -> Signer | None:
    spec = os.environ.get(cfg.signing_key_env)
    if not spec:
        return None
    try:
        return parse_key(spec)
    except ValueError as exc:
        raise ValueError(f"audit signing key in ${cfg.signing_key_env} is invalid: {exc}") from None


class AuditLog:
    def __init__(self, config: AuditConfig, services: Any = None, *, clock=time.time,
                 chain: str = "", workers: int = 1) -> None:
        self.config = config
        self.services = services
        self.clock = clock
        self.chain = chain            # this process's chain in the directory (sinks.chain_name)
        self.workers = workers        # how many chains the server writes there (verify checks)
        self._writer: Writer | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._pending_config: AuditConfig | None = None
        self._lost_logged_at = 0.0
        self._retired_lost = 0
        self.close_retry_seconds = CLOSE_RETRY_SECONDS

    # --- lifecycle -----------------------------------------------------------------------------
    def _make_writer(self, cfg: AuditConfig) -> Writer:
        signer = load_signer(cfg)
        if signer is None:
            log.warning("audit_checkpoints_unsigned", env=cfg.signing_key_env,
                        hint="set a key to sign checkpoints (aifw audit keygen)")
        sink = StdoutSink() if cfg.sink == "stdout" else FileSink(cfg.path, self.chain)
        sink.workers = self.workers
        return Writer(cfg, signer, sink, clock=self.clock)

    def check(self) -> None:
        """Start-up checks that need no chain opened: raises ValueError (a bad signing key)."""
        if self.config.enabled:
            load_signer(self.config)

    async def start(self) -> None:
        """Open the chain. Raises ChainBusy when another live process writes it (nothing is
        written then); a sink that cannot be written is retried (failureMode decides)."""
        if self.config.enabled:
            self._writer = self._make_writer(self.config)
            try:
                await asyncio.to_thread(self._writer.start)
            except ChainBusy:
                self._writer = None
                raise
            if self._writer.broken:
                log.error("audit_sink_broken", reason=self._writer.broken,
                          failure_mode=self.config.failure_mode)
        self._task = asyncio.create_task(self._run(), name="aifw-audit-writer")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.flush_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                if self._pending_config is not None:
                    await self._apply_config()
                if self._writer is not None:
                    await self._flush_once()
            except Exception as exc:  # noqa: BLE001 - the writer task must outlive any bug
                log.error("audit_writer_error", exc_info=exc)   # scrubbed: type and frames

    async def _flush_once(self, closing: bool = False) -> bool:
        writer = self._writer
        was_broken = writer.broken
        ok = await asyncio.to_thread(writer.flush, closing)
        if writer.broken and writer.broken != was_broken:
            log.error("audit_sink_broken", reason=writer.broken, failure_mode=writer.cfg.failure_mode,
                      queued=len(writer.queue))
        elif was_broken and not writer.broken:
            log.warning("audit_sink_recovered", lost=writer.lost_total)
        return ok

    async def _apply_config(self) -> None:
        cfg, self._pending_config = self._pending_config, None
        old = self._writer
        if old is not None and cfg.enabled and old.cfg.same_destination(cfg):
            old.cfg = cfg                  # same file keeps its chain
            try:
                old.signer = load_signer(cfg)
            except ValueError as exc:
                log.error("audit_signing_key_invalid", error=str(exc))
            return
        if old is not None:                # new destination: close the old chain cleanly first
            if not await self._flush_once(closing=True):
                self._retired_lost += old.abandon()
            self._writer = None
        if not cfg.enabled:
            return
        try:
            self._writer = self._make_writer(cfg)
        except ValueError as exc:
            log.error("audit_signing_key_invalid", error=str(exc))
            return
        await asyncio.to_thread(self._writer.start)

    def reconfigure(self, config: AuditConfig) -> None:
        """Take a reloaded policy's audit section; applied by the writer task (same file and
        sink: the chain continues; another path or sink: the old chain is closed with a
        checkpoint and the new location's chain is continued or started)."""
        self.config = config
        if self._task is None:
            return
        self._pending_config = config
        self._wake.set()

    async def close(self) -> None:
        """Drain the queue, write the final checkpoint, release the file."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._writer is None:
            return
        if self._pending_config is not None:
            await self._apply_config()
        deadline = time.monotonic() + self.close_retry_seconds
        while not await self._flush_once(closing=True):
            if time.monotonic() >= deadline:
                lost = self._writer.abandon()
                log.error("audit_records_lost_at_shutdown", count=lost, reason=self._writer.broken)
                break
            await asyncio.sleep(0.5)
        self._writer = None

    # --- per exchange (event loop, hot path) ------------------------------------------------------
    def level_for(self, ex: Any) -> str:
        return effective_level(ex, self.config.level)

    def prepare(self, ex: Any) -> None:
        if self._writer is not None and self.level_for(ex) != "metadata":
            ex.capture_text = True

    def refusal(self) -> str | None:
        writer = self._writer
        return writer.refusal() if writer is not None else None

    def submit(self, ex: Any, upstream: Any = NOT_COMPUTED) -> None:
        """``upstream``: ``durations.upstream_seconds(ex)``, when the caller computed it."""
        writer = self._writer
        if writer is None:
            return
        level = self.level_for(ex)
        redactor = (self.services.get("pii_redactor")
                    if level == "redacted" and self.services is not None else None)
        # serialised here, once: the writer thread only splices seq/prev in and hashes, and no
        # record dicts live on until the next flush (less work under the GIL, less GC)
        record = prepared_record(ex, level, redactor, upstream=upstream)
        if not writer.enqueue(record):
            now = time.monotonic()
            if now - self._lost_logged_at >= 10.0:
                self._lost_logged_at = now
                log.error("audit_records_lost", total=writer.lost_total, reason=writer.broken or
                          "queue full", failure_mode="open")
        elif len(writer.queue) * 2 >= writer.cfg.queue_size:
            self._wake.set()           # half full: write now instead of at the next interval

    # --- for telemetry ---------------------------------------------------------------------------
    def queue_depth(self) -> int:
        return len(self._writer.queue) if self._writer is not None else 0

    @property
    def records_lost(self) -> int:
        return self._retired_lost + (self._writer.lost_total if self._writer is not None else 0)

    @property
    def broken(self) -> str | None:
        return self._writer.broken if self._writer is not None else None
