"""Long-lived runtime backends shared by every compiled policy.

A policy reload builds new frozen guards, but counters, connections and writers must survive it:
guards reach them through ``CompileContext.services``. Each subsystem keeps its own attribute.
"""
from __future__ import annotations

import threading
from typing import Any


class Services:
    def __init__(self) -> None:
        # name -> object with optional async ``close()``; subsystems register lazily
        self._items: dict[str, Any] = {}
        # readiness problems reported by backends: name -> message (empty = ready)
        self.health: dict[str, str] = {}
        # backends that report into ``health``, also while they have no problem (/metrics:
        # aifw_backend_up has a series for each from the start, so an alert can compare)
        self.monitored: set[str] = set()

    def backend_up(self) -> dict[str, bool]:
        """backend name -> no problem reported now."""
        return {name: not self.health.get(name) for name in self.monitored | set(self.health)}

    def get(self, name: str) -> Any:
        return self._items.get(name)

    def set(self, name: str, value: Any) -> Any:
        self._items[name] = value
        return value

    def get_or_create(self, name: str, factory) -> Any:
        item = self._items.get(name)
        if item is None:
            item = self._items[name] = factory()
        return item

    def warm_up(self) -> threading.Thread | None:
        """Run every backend's ``warm()`` (slow loads such as tokenizer vocabularies) in one
        background thread, so a serving process is ready before they finish; a request that
        needs one first waits for it."""
        warmers = [item.warm for item in self._items.values() if hasattr(item, "warm")]
        if not warmers:
            return None

        def run() -> None:
            for warm in warmers:
                warm()
        thread = threading.Thread(target=run, name="aifw-warm-up", daemon=True)
        thread.start()
        return thread

    async def prime(self) -> None:
        """Run every backend's async ``prime()`` (connections and server-side scripts) at start,
        before the process takes traffic."""
        for item in list(self._items.values()):
            prime = getattr(item, "prime", None)
            if prime is not None:
                await prime()

    async def close(self) -> None:
        for item in list(self._items.values()):
            close = getattr(item, "close", None)
            if close is not None:
                res = close()
                if hasattr(res, "__await__"):
                    await res
        self._items.clear()
